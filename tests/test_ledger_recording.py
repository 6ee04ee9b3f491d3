"""Recording into the referral ledger: ``fhir-iapt convert``, ``ledger purge``, the relay."""

from __future__ import annotations

import csv
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient
from relay_helpers import (
    FAMILY_NAME,
    GIVEN_NAME,
    auth,
    diabetes_csv,
    make_settings,
    nhs_number,
)

from fhir_iapt.cli import _run, main
from fhir_iapt.errors import Location
from fhir_iapt.ledger import Ledger, LedgerError
from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.runtime import RelayRuntime

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DIABETES_SYSTEM = "https://fhir-iapt.github.io/fhir/Id/example-diabetes-clinic-record"


def _rows() -> list[dict[str, str]]:
    with (EXAMPLES / "diabetes.csv").open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _referred(row: dict[str, str]) -> bool:
    """The example rows that become referrals: referred, with consent to refer."""
    return row["refer"] == "Y" and row["consent_refer"] == "Y"


def _identifiers(path: Path) -> set[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return set(db.execute("SELECT identifier_system, identifier FROM referral"))


def _convert(tmp_path: Path, *extra: str) -> Any:
    return CliRunner().invoke(
        main,
        [
            "convert",
            str(EXAMPLES / "diabetes.csv"),
            "--mapping",
            "diabetes-csv",
            "--out",
            str(tmp_path / "out"),
            *extra,
        ],
    )


# --- fhir-iapt convert ---------------------------------------------------------------------


def test_convert_records_every_converted_referral_and_no_skipped_one(tmp_path: Path) -> None:
    """convert --ledger records each referred, consented row of examples/diabetes.csv (by its
    record id) and none of the rows skipped as not referred or without consent to refer."""
    ledger = tmp_path / "ledger.sqlite"
    result = _convert(tmp_path, "--ledger", str(ledger))
    assert result.exit_code == 0, result.output
    rows = _rows()
    referred = {(DIABETES_SYSTEM, r["clinic_record_id"]) for r in rows if _referred(r)}
    assert referred  # the example has both kinds
    assert len(referred) < len(rows)
    assert _identifiers(ledger) == referred
    skipped_numbers = {r["nhs_number"].replace(" ", "") for r in rows if not _referred(r)}
    with Ledger(ledger) as opened:
        for row in rows:
            if _referred(row):
                entry = opened.get(DIABETES_SYSTEM, row["clinic_record_id"])
                assert entry is not None
                assert entry.nhs_number == row["nhs_number"].replace(" ", "")
                assert (
                    entry.share_outcomes is {"Y": True, "N": False}[row["consent_share_outcomes"]]
                )
    with sqlite3.connect(ledger) as db:
        numbers = {n for (n,) in db.execute("SELECT nhs_number FROM referral")}
    assert numbers.isdisjoint(skipped_numbers)
    summary = json.loads((tmp_path / "out" / "summary.json").read_text(encoding="utf-8"))
    assert summary["converted"] == len(referred)


def test_the_ledger_file_holds_no_name_birth_date_or_score(tmp_path: Path) -> None:
    """No byte of the ledger file (nor its WAL) is a patient's or referrer's name, a birth date,
    the free-text reason or a questionnaire code: it keeps only the entry's fields."""
    ledger = tmp_path / "ledger.sqlite"
    assert _convert(tmp_path, "--ledger", str(ledger)).exit_code == 0
    files = [p for p in tmp_path.iterdir() if p.name.startswith("ledger.sqlite")]
    data = b"".join(p.read_bytes() for p in files)
    assert b"DM-1001" in data  # the check sees the file's content
    rows = [r for r in _rows() if _referred(r)]
    forbidden = {"PHQ-9", "GAD-7", "44261-6", "70274-6", "Observation"}
    for row in rows:
        forbidden |= {row["family_name"], row["birth_date"], row["referrer_name"], row["reason"]}
        forbidden |= set(row["given_name"].split())
    found = sorted(word for word in forbidden if word and word.encode() in data)
    assert found == []


def test_converting_again_updates_the_entries_never_duplicates(tmp_path: Path) -> None:
    """Re-running convert on the same export leaves one entry per referral."""
    ledger = tmp_path / "ledger.sqlite"
    assert _convert(tmp_path, "--ledger", str(ledger)).exit_code == 0
    first = _identifiers(ledger)
    assert _convert(tmp_path, "--ledger", str(ledger), "--overwrite").exit_code == 0
    with Ledger(ledger) as opened:
        assert opened.count() == len(first)


def test_the_default_ledger_is_in_the_users_data_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --ledger: $FHIR_IAPT_LEDGER, else $XDG_DATA_HOME/fhir-iapt/ledger.sqlite, a file
    that outlives the --out folder (the next month's run and the outcomes run find it)."""
    monkeypatch.delenv("FHIR_IAPT_LEDGER", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert _convert(tmp_path).exit_code == 0
    default = tmp_path / "data" / "fhir-iapt" / "ledger.sqlite"
    assert len(_identifiers(default)) == sum(_referred(r) for r in _rows())
    monkeypatch.setenv("FHIR_IAPT_LEDGER", str(tmp_path / "named.sqlite"))
    assert _convert(tmp_path, "--overwrite").exit_code == 0
    assert _identifiers(tmp_path / "named.sqlite") == _identifiers(default)


def test_an_unusable_ledger_stops_convert_before_anything_is_written(tmp_path: Path) -> None:
    """--ledger naming a file that is not a ledger: exit 2, an FI830 OperationOutcome, no
    bundles written (nothing would be sent unrecorded)."""
    bad = tmp_path / "notes.txt"
    bad.write_text("not a database\n" * 200, encoding="utf-8")
    result = _convert(tmp_path, "--ledger", str(bad))
    assert result.exit_code == 2
    assert "FI830" in result.output
    assert not (tmp_path / "out" / "bundles.ndjson").exists()


def test_a_referral_the_ledger_cannot_record_is_rejected_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A converted referral whose entry cannot be made (FI831) is rejected and left out of
    bundles.ndjson; the others are written and recorded."""
    real = _run.referral_row

    def refuse_dm1002(data: bytes) -> Any:
        if b'"value":"DM-1002"' in data:
            raise LedgerError(
                "cannot record", location=Location(element="Bundle"), error_code="FI831"
            )
        return real(data)

    monkeypatch.setattr(_run, "referral_row", refuse_dm1002)
    ledger = tmp_path / "ledger.sqlite"
    result = _convert(tmp_path, "--ledger", str(ledger))
    assert result.exit_code == 1
    bundles = (tmp_path / "out" / "bundles.ndjson").read_text(encoding="utf-8")
    assert "DM-1002" not in bundles
    assert "DM-1001" in bundles
    rejects = (tmp_path / "out" / "rejects.ndjson").read_text(encoding="utf-8")
    assert "FI831" in rejects
    ids = {value for _, value in _identifiers(ledger)}
    assert "DM-1002" not in ids
    assert "DM-1001" in ids


def test_entries_are_inserted_in_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a batch of 2, seven referrals take four inserts (2+2+2+1), all recorded."""
    monkeypatch.setattr(_run, "LEDGER_BATCH", 2)
    calls: list[int] = []
    real = Ledger.record_rows

    def counting(self: Ledger, rows: Any) -> int:
        calls.append(len(rows))
        return real(self, rows)

    monkeypatch.setattr(Ledger, "record_rows", counting)
    ledger = tmp_path / "ledger.sqlite"
    assert _convert(tmp_path, "--ledger", str(ledger)).exit_code == 0
    referred = sum(_referred(r) for r in _rows())
    assert [c for c in calls if c] == [2] * (referred // 2) + [1] * (referred % 2)
    assert len(_identifiers(ledger)) == referred


# --- fhir-iapt ledger purge -----------------------------------------------------------------


def test_ledger_purge_removes_entries_authored_before_the_date(tmp_path: Path) -> None:
    """purge --before D removes the referrals whose review date (authoredOn) is before D, says
    how many, and keeps the rest."""
    ledger = tmp_path / "ledger.sqlite"
    assert _convert(tmp_path, "--ledger", str(ledger)).exit_code == 0
    rows = [r for r in _rows() if _referred(r)]
    before = "2026-04-01"
    # review dates are ISO except one dd/mm/yyyy (17/08/2026, after the cut-off)
    older = {
        r["clinic_record_id"] for r in rows if "-" in r["review_date"] and r["review_date"] < before
    }
    assert older
    result = CliRunner().invoke(
        main, ["ledger", "purge", "--ledger", str(ledger), "--before", before]
    )
    assert result.exit_code == 0, result.output
    assert f"{len(older)} entries" in result.output
    left = {value for _, value in _identifiers(ledger)}
    assert left == {r["clinic_record_id"] for r in rows} - older


def test_ledger_purge_of_a_missing_ledger_is_exit_2_and_creates_nothing(tmp_path: Path) -> None:
    """A mistyped --ledger is an FI830 error, not a new empty ledger that 'purged 0'."""
    missing = tmp_path / "typo.sqlite"
    result = CliRunner().invoke(
        main, ["ledger", "purge", "--ledger", str(missing), "--before", "2026-01-01"]
    )
    assert result.exit_code == 2
    assert "FI830" in result.output
    assert not missing.exists()


def test_ledger_purge_needs_an_iso_date(tmp_path: Path) -> None:
    """--before is YYYY-MM-DD; anything else is a usage error."""
    result = CliRunner().invoke(
        main, ["ledger", "purge", "--ledger", str(tmp_path / "l"), "--before", "01/02/2026"]
    )
    assert result.exit_code == 2
    assert "--before" in result.output
    assert "YYYY-MM-DD" in result.output or "%Y-%m-%d" in result.output


# --- the relay -----------------------------------------------------------------------------

CSV = {"Content-Type": "text/csv"}


@pytest.fixture
def relay(tmp_path: Path) -> Iterator[TestClient]:
    settings = make_settings(tmp_path / "data", intake={"warm_up": False})
    with TestClient(create_app(settings)) as client:
        yield client


def _runtime(client: TestClient) -> RelayRuntime:
    runtime: RelayRuntime = client.app.state.relay  # type: ignore[attr-defined]
    return runtime


def _drain(client: TestClient) -> int:
    """Move what the feed has pending now (it would within half a second anyway)."""
    feed = _runtime(client).ledger_feed
    assert feed is not None
    return feed.drain()


def _post(client: TestClient, data: bytes) -> Any:
    return client.post(
        "/referrals?mapping=diabetes-csv", content=data, headers={**CSV, **auth("clinic")}
    )


def test_the_relay_records_each_accepted_referral_in_its_data_dir(
    relay: TestClient, tmp_path: Path
) -> None:
    """Referrals accepted into the outbox are in <data_dir>/ledger.sqlite with their NHS
    number; a row skipped as not referred is not."""
    data = diabetes_csv(
        [
            {"record_id": "L1", "nhs": nhs_number(41)},
            {"record_id": "L2", "nhs": nhs_number(42), "refer": "N"},
            {"record_id": "L3", "nhs": nhs_number(43)},
        ]
    )
    response = _post(relay, data)
    assert response.status_code == 202
    assert len(response.json()["accepted"]) == 2
    _drain(relay)
    ledger = _runtime(relay).ledger
    assert ledger is not None
    assert ledger.path == tmp_path / "data" / "ledger.sqlite"
    recorded = {
        value: entry.nhs_number
        for value in ("L1", "L2", "L3")
        if (entry := ledger.get(DIABETES_SYSTEM, value)) is not None
    }
    assert recorded == {"L1": nhs_number(41), "L3": nhs_number(43)}


def test_the_relay_records_a_resent_referral_once(relay: TestClient) -> None:
    """Posting the same record twice (a duplicate message) leaves one ledger entry."""
    data = diabetes_csv([{"record_id": "D1", "nhs": nhs_number(51)}])
    assert _post(relay, data).status_code == 202
    assert _post(relay, data).json()["accepted"][0]["duplicate"] is True
    _drain(relay)
    ledger = _runtime(relay).ledger
    assert ledger is not None
    assert ledger.count() == 1


def test_the_relay_ledger_path_setting_is_used(tmp_path: Path) -> None:
    """[ledger] path puts the ledger where the settings say, and the app closes it at exit."""
    target = tmp_path / "elsewhere" / "referrals.sqlite"
    settings = make_settings(
        tmp_path / "data", intake={"warm_up": False}, ledger={"path": str(target)}
    )
    with TestClient(create_app(settings)) as client:
        assert (
            _post(client, diabetes_csv([{"record_id": "P1", "nhs": nhs_number(61)}])).status_code
            == 202
        )
        runtime = _runtime(client)
    assert runtime.ledger is None  # closed by the app's shutdown
    assert {value for _, value in _identifiers(target)} == {"P1"}
    assert not (tmp_path / "data" / "ledger.sqlite").exists()


def test_building_the_app_opens_no_ledger_until_it_starts(tmp_path: Path) -> None:
    """create_app alone writes nothing (a config check must not leave a ledger beside the
    config); the ledger is opened when the app starts."""
    settings = make_settings(tmp_path / "data", intake={"warm_up": False})
    app = create_app(settings)
    assert not (tmp_path / "data").exists()
    with TestClient(app) as client:
        assert _runtime(client).ledger is not None
    assert (tmp_path / "data" / "ledger.sqlite").is_file()


def test_the_relay_ledger_holds_no_patient_name(relay: TestClient, tmp_path: Path) -> None:
    """The relay's ledger file has the NHS number but not the patient's name."""
    assert (
        _post(relay, diabetes_csv([{"record_id": "N1", "nhs": nhs_number(71)}])).status_code == 202
    )
    _drain(relay)
    relay.close()
    files = [p for p in (tmp_path / "data").iterdir() if p.name.startswith("ledger.sqlite")]
    data = b"".join(p.read_bytes() for p in files)
    assert nhs_number(71).encode() in data
    assert FAMILY_NAME.encode() not in data
    assert GIVEN_NAME.encode() not in data


def test_a_ledger_that_cannot_be_written_keeps_the_entries_pending_until_it_can(
    relay: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The outbox committed the message and its ledger entry together; the ledger failing
    does not fail the POST (202, no patient data anywhere) and the entry stays pending until
    the ledger can be written again."""
    ledger = _runtime(relay).ledger
    assert ledger is not None
    real = Ledger.record_rows

    def broken(self: Ledger, rows: Any) -> int:
        raise LedgerError("the referral ledger cannot be written", location=Location(file="x"))

    monkeypatch.setattr(Ledger, "record_rows", broken)
    data = diabetes_csv([{"record_id": "F1", "nhs": nhs_number(81)}])
    accepted = _post(relay, data)
    assert accepted.status_code == 202
    with pytest.raises(LedgerError):
        _drain(relay)
    assert ledger.count() == 0
    assert len(_runtime(relay).outbox.pending_ledger_rows()) == 1
    monkeypatch.setattr(Ledger, "record_rows", real)
    assert _drain(relay) == 1
    assert ledger.count() == 1
    assert _runtime(relay).outbox.pending_ledger_rows() == []


def test_entries_pending_at_a_stop_are_recorded_by_the_next_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A relay stopped while its ledger could not be written (the entries still pending in the
    outbox) records them when it starts again: nothing accepted is left out of the ledger."""
    settings = make_settings(tmp_path / "data", intake={"warm_up": False})
    real = Ledger.record_rows

    def broken(self: Ledger, rows: Any) -> int:
        raise LedgerError("the referral ledger cannot be written", location=Location(file="x"))

    monkeypatch.setattr(Ledger, "record_rows", broken)
    with TestClient(create_app(settings)) as client:
        data = diabetes_csv([{"record_id": f"S{i}", "nhs": nhs_number(90 + i)} for i in range(3)])
        assert _post(client, data).status_code == 202
    monkeypatch.setattr(Ledger, "record_rows", real)
    with TestClient(create_app(settings)) as client:
        ledger = _runtime(client).ledger
        assert ledger is not None
        assert ledger.count() == 3
        assert _runtime(client).outbox.pending_ledger_rows() == []


def test_outcomes_are_not_recorded(tmp_path: Path) -> None:
    """Only referrals go in the ledger: an outcome accepted by the relay adds no entry."""
    settings = make_settings(
        tmp_path / "data",
        intake={"warm_up": False, "consent_registers": [str(EXAMPLES / "iapt-outcomes.csv")]},
        outcomes={"default_destination": "iapt"},
    )
    with TestClient(create_app(settings)) as client:
        response = client.post(
            "/outcomes?mapping=iapt-outcomes",
            content=(EXAMPLES / "iapt-outcomes.csv").read_bytes(),
            headers={**CSV, **auth("iapt")},
        )
        assert response.status_code == 202
        _drain(client)
        ledger = _runtime(client).ledger
        assert ledger is not None
        assert ledger.count() == 0
