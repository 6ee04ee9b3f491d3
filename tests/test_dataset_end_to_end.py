"""The loop closed on a real FHIR server: referrals out, the national data set back (issue 11).

convert a clinic export (recording each referral in the ledger) and push it; build the month's
NHS Talking Therapies Data Set for those patients; run ``outcomes DIR --dataset tt-v2.1
--ledger`` and push the outcomes. Every outcome's ``basedOn`` resolves to a ServiceRequest on
the server, nothing is sent for the patient who said no, and a pathway with no referral in the
ledger is counted, not sent.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from dataset_helpers import GAD7, PHQ9, contact, referral, s606, write_submission

from fhir_iapt.cli import main
from fhir_iapt.client import FhirClient

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
#: The IAPT service the example clinic refers to (the referrals' ServiceRequest.performer).
SERVICE = "RZZ10"
#: A patient the data set has and the ledger does not (never referred by the adapter).
STRANGER = "9434765919"


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code in (0, 1), result.output
    return result


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]


def _ledger_rows(ledger: Path) -> list[tuple[str, str, str, date, bool | None]]:
    with sqlite3.connect(ledger) as db:
        rows = db.execute(
            "SELECT identifier_system, identifier, nhs_number, authored_on, share_outcomes"
            " FROM referral ORDER BY identifier"
        ).fetchall()
    return [
        (s, i, n, date.fromisoformat(a), None if share is None else bool(share))
        for s, i, n, a, share in rows
    ]


def _dataset(
    folder: Path, referred: list[tuple[str, date]], *, month: str = "2026-12", last_phq9: str = "6"
) -> Path:
    """One month: a finished pathway per (NHS number, referral authored day), PHQ-9 18 ->
    ``last_phq9``; a later ``month`` is a later submission restating the same pathways."""
    referrals, contacts, scores, patients = [], [], [], []
    for index, (nhs, authored) in enumerate([*referred, (STRANGER, date(2026, 1, 5))]):
        srid, lpid = f"SR{index}", f"LP{index}"
        received = authored + timedelta(days=7)
        discharge = received + timedelta(days=120)
        patients.append({"LocalPatientId": lpid, "NHSNumber": nhs})
        referrals.append(
            referral(
                srid,
                lpid=lpid,
                received=received.isoformat(),
                disch=discharge.isoformat(),
                end="46",
            )
        )
        for n in range(3):
            when = received + timedelta(days=20 + 30 * n)
            contacts.append(contact(f"CC{index}-{n}", when.isoformat(), srid=srid))
        first, last = received + timedelta(days=20), received + timedelta(days=80)
        scores += [
            s606(PHQ9, "18", first.isoformat(), srid=srid),
            s606(PHQ9, last_phq9, last.isoformat(), srid=srid),
            s606(GAD7, "15", first.isoformat(), srid=srid),
            s606(GAD7, "5", last.isoformat(), srid=srid),
        ]
    year, number = (int(part) for part in month.split("-"))
    start = date(year, number, 1)
    end = (start + timedelta(days=32)).replace(day=1) - timedelta(days=1)
    write_submission(
        folder / month,
        provider=SERVICE,
        start=start.isoformat(),
        end=end.isoformat(),
        created=f"{(end + timedelta(days=8)).isoformat()}T09:00:00",
        patients=patients,
        referrals=referrals,
        contacts=contacts,
        refer_scores=scores,
    )
    return folder


def test_outcomes_from_the_dataset_answer_the_referrals_on_the_server(
    fhir_server_factory: Any, tmp_path: Path
) -> None:
    """Referral out and pushed; data set in; outcomes pushed: each basedOn resolves, none for
    the patient who said no, the stranger counted as no-referral-in-ledger."""
    server = fhir_server_factory().url
    ledger = tmp_path / "ledger.sqlite"
    clinic_out = tmp_path / "clinic-out"
    _cli(
        "convert", str(EXAMPLES / "diabetes.csv"), "--mapping", "diabetes-csv",
        "--out", str(clinic_out), "--ledger", str(ledger),
    )  # fmt: skip
    pushed = _cli("push", str(clinic_out), "--server", server)
    assert pushed.exit_code == 0, pushed.output

    rows = _ledger_rows(ledger)
    said_no = [r for r in rows if r[4] is False]
    assert len(said_no) == 1  # the example export's DM-1006
    referred = [(nhs, authored) for _, _, nhs, authored, _ in rows]
    dataset = _dataset(tmp_path / "dataset", referred)

    outcomes_out = tmp_path / "outcomes-out"
    ran = _cli(
        "outcomes", str(dataset), "--dataset", "tt-v2.1", "--ledger", str(ledger),
        "--out", str(outcomes_out),
    )  # fmt: skip
    summary = json.loads((outcomes_out / "summary.json").read_text("utf-8"))
    assert summary["records"] == len(rows) + 1
    assert summary["converted"] == len(rows) - 1
    assert summary["skipped"] == {"outcomes-consent-withheld": 1, "no-referral-in-ledger": 1}
    assert summary["rejected_total"] == 0, (outcomes_out / "rejects.ndjson").read_text()
    assert ran.exit_code == 0
    assert summary["dataset"]["pathways"] == len(rows) + 1

    bundles = _lines(outcomes_out / "bundles.ndjson")
    text = json.dumps(bundles)
    assert said_no[0][2] not in text  # nothing of the patient who said no
    assert STRANGER not in text
    sent = _cli("push", str(outcomes_out), "--server", server)
    assert sent.exit_code == 0, sent.output

    answered: set[tuple[str, str]] = set()
    with FhirClient(server) as client:
        for bundle in bundles:
            refs = {
                (ref["identifier"]["system"], ref["identifier"]["value"])
                for entry in bundle["entry"]
                for ref in entry["resource"].get("basedOn", [])
                if "identifier" in ref
            }
            assert len(refs) == 1, refs
            [(system, value)] = refs
            found = client.search("ServiceRequest", {"identifier": f"{system}|{value}"})
            assert len(found.get("entry", [])) == 1, (system, value)
            answered.add((system, value))
    expected = {(s, i) for s, i, _, _, share in rows if share is not False}
    assert answered == expected


def _last_phq9_on_server(server: str, bundles: list[dict[str, Any]]) -> list[list[float]]:
    """Per bundle, the values of every Observation on the server with its last-PHQ-9 identifier."""
    values = []
    with FhirClient(server) as client:
        for bundle in bundles:
            [identifier] = [
                entry["resource"]["identifier"][0]
                for entry in bundle["entry"]
                if entry["resource"]["identifier"][0]["value"].endswith("/score/PHQ-9/last")
            ]
            found = client.search(
                "Observation", {"identifier": f"{identifier['system']}|{identifier['value']}"}
            )
            values.append([e["resource"]["valueQuantity"]["value"] for e in found.get("entry", [])])
    return values


def test_a_later_months_dataset_updates_the_outcome_it_sent_before(
    fhir_server_factory: Any, tmp_path: Path
) -> None:
    """The same pathways restated next month with a new last PHQ-9: pushed again, each
    outcome Observation on the server is updated in place (one per identifier), not kept as it
    was and not duplicated."""
    server = fhir_server_factory().url
    ledger = tmp_path / "ledger.sqlite"
    clinic_out = tmp_path / "clinic-out"
    _cli(
        "convert", str(EXAMPLES / "diabetes.csv"), "--mapping", "diabetes-csv",
        "--out", str(clinic_out), "--ledger", str(ledger),
    )  # fmt: skip
    referred = [(nhs, authored) for _, _, nhs, authored, _ in _ledger_rows(ledger)]
    months = []
    for month, last in (("2026-12", "6"), ("2027-01", "4")):
        dataset = _dataset(tmp_path / f"dataset-{month}", referred, month=month, last_phq9=last)
        out = tmp_path / f"outcomes-{month}"
        _cli(
            "outcomes", str(dataset), "--dataset", "tt-v2.1", "--ledger", str(ledger),
            "--out", str(out),
        )  # fmt: skip
        bundles = _lines(out / "bundles.ndjson")
        assert all(e["request"]["method"] == "PUT" for b in bundles for e in b["entry"])
        pushed = _cli("push", str(out), "--server", server)
        assert pushed.exit_code == 0, pushed.output
        months.append(bundles)
    assert [b["id"] for b in months[0]] == [b["id"] for b in months[1]]
    assert _last_phq9_on_server(server, months[1]) == [[4]] * len(months[1])
