"""Consent is decided in one place, by one gate every path calls, with the register read live."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from relay_helpers import auth, make_settings

from fhir_iapt.consent import (
    NOT_CARRIED,
    ConsentFiles,
    ConsentRegister,
    outcome_consent_gate,
)
from fhir_iapt.errors import ConfigError
from fhir_iapt.pipeline import convert_bytes, convert_files
from fhir_iapt.relay.app import create_app
from fhir_iapt.results import Converted, Skipped

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
QR_EXAMPLE = EXAMPLES / "phq9-lhcforms-response.json"
FHIR_JSON = {"Content-Type": "application/fhir+json"}
EPISODE_HEADER = (EXAMPLES / "iapt-outcomes.csv").read_text().splitlines()[0]
#: The example QR's patient (subject) and the referral it is basedOn.
QR_NHS = "9000000009"


def _qr(authored: str) -> bytes:
    """The example PHQ-9 response, made distinct by its authored time (a new session)."""
    resource = json.loads(QR_EXAMPLE.read_text())
    resource["authored"] = authored
    return json.dumps(resource).encode()


def _register_text(code: str) -> str:
    return f"nhs_number,consent_share_outcomes\n{QR_NHS},{code}\n"


def _replace(path: Path, text: str) -> None:
    """Rewrite a register the way an operator's tool would: a new file renamed over the old."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


@pytest.fixture
def register_file(tmp_path: Path) -> Path:
    path = tmp_path / "consent.csv"
    path.write_text(_register_text("Y"), encoding="utf-8")
    return path


@pytest.fixture
def relay(tmp_path: Path, register_file: Path) -> Iterator[TestClient]:
    settings = make_settings(
        tmp_path / "data",
        intake={"warm_up": False, "validation": "once", "consent_registers": [str(register_file)]},
        outcomes={"default_destination": "clinic"},
    )
    with TestClient(create_app(settings)) as client:
        yield client


def test_running_relay_honours_a_withdrawal_without_a_restart(
    relay: TestClient, register_file: Path
) -> None:
    """After the register records W, the running relay sends no more of that patient's QRs."""
    first = relay.post(
        "/outcomes", content=_qr("2024-03-01T10:00:00Z"), headers={**FHIR_JSON, **auth("iapt")}
    )
    assert first.status_code == 202, first.text
    assert len(first.json()["accepted"]) == 1

    _replace(register_file, _register_text("W"))
    second = relay.post(
        "/outcomes", content=_qr("2024-03-08T10:00:00Z"), headers={**FHIR_JSON, **auth("iapt")}
    )
    assert second.status_code == 200, second.text
    body = second.json()
    assert body["accepted"] == []
    assert [s["reason"] for s in body["skipped"]] == ["outcomes-consent-withdrawn"]


def test_running_relay_refuses_to_decide_on_a_broken_register(
    relay: TestClient, register_file: Path
) -> None:
    """A register that became malformed stops outcome intake with 503 (fails closed)."""
    _replace(register_file, "nhs_number,consent_share_outcomes\n123,Y\n")
    response = relay.post(
        "/outcomes", content=_qr("2024-03-01T10:00:00Z"), headers={**FHIR_JSON, **auth("iapt")}
    )
    assert response.status_code == 503
    assert response.headers["retry-after"]
    assert response.json()["resourceType"] == "OperationOutcome"
    assert QR_NHS not in response.text


def test_episode_rows_through_the_relay_follow_a_register_withdrawal(
    relay: TestClient, register_file: Path
) -> None:
    """An episode row saying Y is withheld when the live register records W for the patient."""
    row = (EXAMPLES / "iapt-outcomes.csv").read_text().splitlines()[1]
    assert QR_NHS in row.split(",")
    body = f"{EPISODE_HEADER}\n{row}\n".encode()
    _replace(register_file, _register_text("W"))
    response = relay.post(
        "/outcomes?mapping=iapt-outcomes",
        content=body,
        headers={"Content-Type": "text/csv", **auth("iapt")},
    )
    assert response.status_code == 200, response.text
    assert [s["reason"] for s in response.json()["skipped"]] == ["outcomes-consent-withdrawn"]


def test_library_and_relay_share_the_gate(register_file: Path) -> None:
    """The library path with ConsentFiles reads a change on disk for the next record."""
    files = ConsentFiles([register_file])
    [sent] = convert_bytes(
        _qr("2024-03-01T10:00:00Z"),
        name="qr.json",
        mapping="questionnaire-response",
        consent=files,
        validation="none",
    )
    assert isinstance(sent, Converted)
    _replace(register_file, _register_text("N"))
    [held] = convert_bytes(
        _qr("2024-03-08T10:00:00Z"),
        name="qr.json",
        mapping="questionnaire-response",
        consent=files,
        validation="none",
    )
    assert isinstance(held, Skipped)
    assert held.reason == "outcomes-consent-withheld"


def test_worker_processes_read_the_register_live(tmp_path: Path, register_file: Path) -> None:
    """ConsentFiles crosses to worker processes as paths, so workers gate like the parent."""
    export = tmp_path / "qrs.ndjson"
    lines = [json.loads(_qr(f"2024-03-{day:02d}T10:00:00Z")) for day in range(1, 4)]
    export.write_text("\n".join(json.dumps(r) for r in lines) + "\n", encoding="utf-8")
    _replace(register_file, _register_text("W"))
    results = list(
        convert_files(
            [export],
            mapping="questionnaire-response",
            consent=ConsentFiles([register_file]),
            validation="none",
            workers=2,
        )
    )
    assert [type(r) for r in results] == [Skipped, Skipped, Skipped]
    assert {r.reason for r in results if isinstance(r, Skipped)} == {"outcomes-consent-withdrawn"}


def test_cli_reads_consent_through_the_same_gate(tmp_path: Path, register_file: Path) -> None:
    """fhir-iapt outcomes with --consent withholds what the register withholds (CLI path)."""
    qr = tmp_path / "qr.json"
    qr.write_bytes(_qr("2024-03-01T10:00:00Z"))
    _replace(register_file, _register_text("N"))
    out = tmp_path / "out"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "fhir_iapt.cli",
            "outcomes",
            str(qr),
            "--consent",
            str(register_file),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skipped"] == {"outcomes-consent-withheld": 1}
    assert summary["converted"] == 0


GATE_CASES: list[tuple[str, Any, str | None, str | None]] = [
    # (case, carried, register's code for the record or None = no row, expected skip reason)
    ("QR, register Y", NOT_CARRIED, "Y", None),
    ("QR, register N", NOT_CARRIED, "N", "outcomes-consent-withheld"),
    ("QR, register W", NOT_CARRIED, "W", "outcomes-consent-withdrawn"),
    ("QR, register blank", NOT_CARRIED, "", "outcomes-consent-not-recorded"),
    ("QR, register has no row", NOT_CARRIED, None, "outcomes-consent-not-recorded"),
    ("episode Y, no row", "Y", None, None),
    ("episode Y, register W", "Y", "W", "outcomes-consent-withdrawn"),
    ("episode Y, register blank", "Y", "", "outcomes-consent-not-recorded"),
    ("episode N, register Y", "N", "Y", "outcomes-consent-withheld"),
    ("episode blank, register Y", None, "Y", "outcomes-consent-not-recorded"),
    ("episode W, no row", "W", None, "outcomes-consent-withdrawn"),
]


@pytest.mark.parametrize(
    ("case", "carried", "recorded", "expected"), GATE_CASES, ids=[c[0] for c in GATE_CASES]
)
def test_gate_rule_table(
    case: str, carried: Any, recorded: str | None, expected: str | None
) -> None:
    """Only Y lets an outcome out; a register row can only make the decision stricter."""
    register = ConsentRegister({QR_NHS: recorded} if recorded is not None else {"9912003888": "Y"})
    decision = outcome_consent_gate(register, carried=carried, nhs_number=QR_NHS)
    assert (decision[0] if decision else None) == expected, case


def test_no_register_sends_no_questionnaire_response() -> None:
    """Without any register a QuestionnaireResponse is never sent, and the detail says why."""
    decision = outcome_consent_gate(None, carried=NOT_CARRIED, nhs_number=QR_NHS)
    assert decision is not None
    assert decision[0] == "outcomes-consent-not-recorded"
    assert "no consent register" in decision[1]


def test_broken_register_file_raises_rather_than_deciding(register_file: Path) -> None:
    """ConsentFiles fails closed: a malformed file is a ConfigError, not an empty register."""
    files = ConsentFiles([register_file])
    _replace(register_file, "nhs_number,consent_share_outcomes\n9000000009,maybe\n")
    with pytest.raises(ConfigError):
        convert_bytes(
            _qr("2024-03-01T10:00:00Z"),
            name="qr.json",
            mapping="questionnaire-response",
            consent=files,
            validation="none",
        )


def test_a_register_broken_after_start_fails_closed_in_a_worker_not_at_unpickling(
    register_file: Path,
) -> None:
    """ConsentFiles sent to a worker reads its files on first use: a register broken after the
    run began is that task's ConfigError (fail closed), never an error while unpickling the
    task, which would end the worker process."""
    files = ConsentFiles([register_file])
    _replace(register_file, "no,such,columns\n")
    arrived = pickle.loads(pickle.dumps(files))  # noqa: S301 - our own bytes, as a worker gets its task
    with pytest.raises(ConfigError):
        arrived.current()
    _replace(register_file, _register_text("W"))
    assert arrived.current().decide(nhs_number=QR_NHS, referrals=[]) == "W"


def test_questionnaire_responses_by_named_mapping_take_the_same_path(relay: TestClient) -> None:
    """?mapping=questionnaire-response with NDJSON is the same pipeline as fhir+json; on
    /referrals the same mapping is refused (it makes outcomes, not referrals)."""
    body = _qr("2024-04-01T10:00:00Z") + b"\n"
    taken = relay.post(
        "/outcomes?mapping=questionnaire-response",
        content=body,
        headers={"Content-Type": "application/x-ndjson", **auth("iapt")},
    )
    assert taken.status_code == 202, taken.text
    assert len(taken.json()["accepted"]) == 1
    refused = relay.post(
        "/referrals?mapping=questionnaire-response",
        content=body,
        headers={"Content-Type": "application/x-ndjson", **auth("clinic")},
    )
    assert refused.status_code == 422
    assert "not referrals" in refused.text
