"""The referral ledger: recording referral bundles, the matching rule, re-sends, purge, the file."""

from __future__ import annotations

import copy
import csv
import sqlite3
import threading
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_iapt.ledger import (
    NO_REFERRAL,
    SEVERAL_REFERRALS,
    Ledger,
    LedgerEntry,
    LedgerError,
    entry_from_bundle,
    entry_from_json,
)
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import convert_bytes, convert_file
from fhir_iapt.results import Converted

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "data" / "golden"
SYSTEM = "https://example-trust.nhs.uk/Id/referral"
AUTHORED = date(2026, 3, 2)


def _entry(
    identifier: str = "R-1",
    *,
    nhs: str = "9990000018",
    authored: date = AUTHORED,
    ods: str | None = "RZZ10",
    ltc: str | None = "44054006",
    share: bool | None = True,
) -> LedgerEntry:
    return LedgerEntry(SYSTEM, identifier, nhs, authored, ods, ltc, share)


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    with Ledger(tmp_path / "ledger.sqlite") as opened:
        yield opened


# --- matching ------------------------------------------------------------------------------


def test_one_referral_for_the_patient_provider_and_window_matches(ledger: Ledger) -> None:
    """A pathway for the patient, at the referral's provider, received a week later: matched."""
    sent = _entry()
    ledger.record(sent)
    ledger.record(_entry("R-other", nhs="9990379149"))
    found = ledger.match(
        nhs_number="9990000018", provider_ods="RZZ10", received=AUTHORED + timedelta(days=7)
    )
    assert found.reason is None
    assert found.entry == sent


def test_no_referral_for_the_patient_is_no_referral_in_ledger(ledger: Ledger) -> None:
    """A pathway for a patient the ledger has no referral for is not matched, with the reason."""
    ledger.record(_entry())
    found = ledger.match(nhs_number="9990379149", provider_ods="RZZ10", received=AUTHORED)
    assert found.entry is None
    assert found.reason == NO_REFERRAL == "no-referral-in-ledger"
    assert "9990379149" not in found.detail


def test_two_referrals_in_the_window_are_several_referrals_in_ledger(ledger: Ledger) -> None:
    """Two referrals for the patient within the window: nothing matched, neither is guessed."""
    ledger.record(_entry("R-1", authored=AUTHORED))
    ledger.record(_entry("R-2", authored=AUTHORED + timedelta(days=10)))
    found = ledger.match(
        nhs_number="9990000018", provider_ods="RZZ10", received=AUTHORED + timedelta(days=20)
    )
    assert found.entry is None
    assert found.reason == SEVERAL_REFERRALS == "several-referrals-in-ledger"
    assert "9990000018" not in found.detail


@pytest.mark.parametrize(
    ("days_after", "window", "matched"),
    [
        (0, 90, True),  # received the day it was authored
        (90, 90, True),  # the window's last day
        (91, 90, False),  # a day past the window
        (-1, 90, False),  # received before the referral was authored
        (30, 30, True),
        (31, 30, False),
        (0, 0, True),
        (1, 0, False),
    ],
)
def test_window_edges(ledger: Ledger, days_after: int, window: int, matched: bool) -> None:
    """received must be on or after authoredOn and at most window_days after it."""
    ledger.record(_entry())
    found = ledger.match(
        nhs_number="9990000018",
        provider_ods="RZZ10",
        received=AUTHORED + timedelta(days=days_after),
        window_days=window,
    )
    assert (found.reason is None) is matched
    assert found.reason in (None, NO_REFERRAL)


def test_the_default_window_is_90_days(ledger: Ledger) -> None:
    """Without window_days, day 90 matches and day 91 does not."""
    ledger.record(_entry())
    day90 = ledger.match(
        nhs_number="9990000018", provider_ods=None, received=AUTHORED + timedelta(days=90)
    )
    day91 = ledger.match(
        nhs_number="9990000018", provider_ods=None, received=AUTHORED + timedelta(days=91)
    )
    assert day90.reason is None
    assert day91.reason == NO_REFERRAL


def test_another_provider_does_not_match(ledger: Ledger) -> None:
    """A pathway at another Talking Therapies service is not the referral's answer."""
    ledger.record(_entry(ods="RZZ10"))
    found = ledger.match(nhs_number="9990000018", provider_ods="RXX99", received=AUTHORED)
    assert found.reason == NO_REFERRAL


def test_provider_decides_between_two_referrals(ledger: Ledger) -> None:
    """Two referrals in the window to different services: the pathway's provider picks one."""
    ledger.record(_entry("R-1", ods="RZZ10"))
    ledger.record(_entry("R-2", ods="RXX99"))
    found = ledger.match(nhs_number="9990000018", provider_ods="rxx99", received=AUTHORED)
    assert found.entry is not None
    assert found.entry.identifier == "R-2"


@pytest.mark.parametrize(("recorded", "asked"), [(None, "RZZ10"), ("RZZ10", None)])
def test_an_unknown_provider_on_either_side_does_not_exclude(
    ledger: Ledger, recorded: str | None, asked: str | None
) -> None:
    """The provider is compared only when both the referral's and the pathway's are known."""
    ledger.record(_entry(ods=recorded))
    found = ledger.match(nhs_number="9990000018", provider_ods=asked, received=AUTHORED)
    assert found.reason is None


def test_a_negative_window_is_refused(ledger: Ledger) -> None:
    """window_days below 0 is a caller's mistake, not an empty match."""
    with pytest.raises(ValueError, match="window_days"):
        ledger.match(nhs_number="9990000018", provider_ods=None, received=AUTHORED, window_days=-1)


# --- recording -----------------------------------------------------------------------------


def test_a_resent_referral_updates_its_entry_never_duplicates(ledger: Ledger) -> None:
    """Recording the same ServiceRequest identifier again replaces the entry (one row)."""
    ledger.record(_entry(share=True, ltc="44054006"))
    corrected = _entry(share=False, ltc="46635009", authored=AUTHORED + timedelta(days=1))
    ledger.record(corrected)
    ledger.record_all([corrected, corrected])
    assert ledger.count() == 1
    assert ledger.get(SYSTEM, "R-1") == corrected
    found = ledger.match(
        nhs_number="9990000018", provider_ods="RZZ10", received=AUTHORED + timedelta(days=5)
    )
    assert found.entry == corrected


def test_the_same_value_under_another_system_is_another_referral(ledger: Ledger) -> None:
    """The key is (system, value): two clinics' R-1 are two entries."""
    ledger.record(_entry())
    ledger.record(
        LedgerEntry("https://other.example/Id/r", "R-1", "9990000018", AUTHORED, *3 * (None,))
    )
    assert ledger.count() == 2


def test_entries_survive_closing_and_reopening(tmp_path: Path) -> None:
    """A ledger is a file: what one run recorded, the next run reads."""
    with Ledger(tmp_path / "l.sqlite") as first:
        first.record(_entry(share=None, ods=None, ltc=None))
    with Ledger(tmp_path / "l.sqlite") as second:
        assert second.get(SYSTEM, "R-1") == _entry(share=None, ods=None, ltc=None)


def test_several_threads_record_into_one_ledger(ledger: Ledger) -> None:
    """One Ledger shared by threads (the relay's threadpool) loses no entry."""

    def work(n: int) -> None:
        for i in range(50):
            ledger.record(_entry(f"T{n}-{i}"))

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert ledger.count() == 200


def test_purge_removes_entries_authored_before_the_date(tmp_path: Path) -> None:
    """purge(before=D) removes exactly the entries authored before D and says how many; the
    purged NHS number is not left in the file's bytes."""
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.record(_entry("old-1", nhs="9993791318", authored=date(2024, 1, 1)))
        ledger.record(_entry("old-2", nhs="9993791318", authored=date(2024, 12, 31)))
        ledger.record(_entry("kept", authored=date(2025, 1, 1)))
        assert ledger.purge(before=date(2025, 1, 1)) == 2
        assert ledger.count() == 1
        assert ledger.get(SYSTEM, "kept") is not None
        assert ledger.purge(before=date(2025, 1, 1)) == 0
    files = [p for p in tmp_path.iterdir() if p.name.startswith("ledger.sqlite")]
    assert all(b"9993791318" not in p.read_bytes() for p in files)


# --- reading referral bundles --------------------------------------------------------------


def _csv_rows() -> dict[str, dict[str, str]]:
    with (EXAMPLES / "diabetes.csv").open(newline="", encoding="utf-8") as fh:
        return {row["clinic_record_id"]: row for row in csv.DictReader(fh)}


def _golden(folder: str) -> list[dict[str, Any]]:
    lines = (GOLDEN / folder / "bundles.ndjson").read_bytes().splitlines()
    return [orjson.loads(line) for line in lines]


#: diabetes_type -> SNOMED (mappings/tables/diabetes-type.yaml; shared/DOMAIN.md)
_DIABETES_SNOMED = {"T1": "46635009", "T2": "44054006"}


def test_record_bundle_reads_each_golden_diabetes_referral(ledger: Ledger) -> None:
    """Every golden diabetes bundle gives the entry its CSV row says: record id, NHS number
    (spaces removed), review date, the mapping's IAPT service RZZ10, the diabetes type's
    SNOMED code, the share-outcomes answer (Y permit True, N deny False), the clinic that sent
    it and whether any PHQ / GAD item was answered (a screening went with it)."""
    rows = _csv_rows()
    bundles = _golden("diabetes-csv")
    for bundle in bundles:
        entry = ledger.record_bundle(bundle)
        assert entry is not None
        row = rows[entry.identifier]
        raw_date = row["review_date"]
        authored = (
            date.fromisoformat(raw_date)
            if "-" in raw_date
            else datetime.strptime(raw_date, "%d/%m/%Y").date()
        )
        assert entry == LedgerEntry(
            identifier_system="https://fhir-iapt.github.io/fhir/Id/example-diabetes-clinic-record",
            identifier=row["clinic_record_id"],
            nhs_number=row["nhs_number"].replace(" ", ""),
            authored_on=authored,
            performer_ods="RZZ10",
            ltc_snomed=_DIABETES_SNOMED[row["diabetes_type"]],
            share_outcomes={"Y": True, "N": False}[row["consent_share_outcomes"]],
            requester_ods=row["clinic_ods"],
            screening_sent=any(v.strip() for k, v in row.items() if k.startswith(("phq", "gad"))),
        )
    assert ledger.count() == len(bundles)
    assert {e.share_outcomes for b in bundles if (e := entry_from_bundle(b))} == {True, False}


def test_a_bundle_without_consent_records_share_outcomes_none(ledger: Ledger) -> None:
    """A referral with no Consent entry (the patient was not asked) records None, not False."""
    bundle = copy.deepcopy(_golden("diabetes-csv")[0])
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Consent"]
    entry = ledger.record_bundle(bundle)
    assert entry is not None
    assert entry.share_outcomes is None


@pytest.mark.parametrize("folder", ["diabetes-csv", "respiratory-xml", "cardiac-json"])
def test_every_golden_bundle_is_recordable_with_its_performer_and_ltc(folder: str) -> None:
    """Each bundled layout's golden referrals carry what the ledger needs."""
    for bundle in _golden(folder):
        entry = entry_from_bundle(bundle)
        assert entry is not None
        request = next(
            e["resource"]
            for e in bundle["entry"]
            if e["resource"]["resourceType"] == "ServiceRequest"
        )
        assert entry.identifier == request["identifier"][0]["value"]
        assert entry.performer_ods == request["performer"][0]["identifier"]["value"]
        assert entry.ltc_snomed is not None
        assert entry.ltc_snomed.isdigit()


def test_a_bundle_without_a_service_request_records_nothing(ledger: Ledger) -> None:
    """record_bundle of an outcome-style bundle (no ServiceRequest) is None and adds nothing."""
    bundle = copy.deepcopy(_golden("diabetes-csv")[0])
    bundle["entry"] = [
        e for e in bundle["entry"] if e["resource"]["resourceType"] != "ServiceRequest"
    ]
    assert ledger.record_bundle(bundle) is None
    assert ledger.count() == 0


def test_a_referral_without_an_nhs_number_is_not_recordable_and_names_no_value() -> None:
    """FI831 names the element, not the patient's data."""
    bundle = copy.deepcopy(_golden("diabetes-csv")[0])
    for e in bundle["entry"]:
        if e["resource"]["resourceType"] == "Patient":
            e["resource"]["identifier"] = []
    with pytest.raises(LedgerError) as caught:
        entry_from_bundle(bundle)
    assert caught.value.error_code == "FI831"
    assert "ServiceRequest.subject" in str(caught.value)
    assert "Hartley" not in str(caught.value.to_operation_outcome())


def _converted(example: str, mapping: str) -> list[Converted]:
    return [
        r for r in convert_file(EXAMPLES / example, mapping=mapping) if isinstance(r, Converted)
    ]


@pytest.mark.parametrize(
    ("example", "mapping"),
    [
        ("diabetes.csv", "diabetes-csv"),
        ("respiratory.xml", "respiratory-xml"),
        ("cardiac.json", "cardiac-json"),
    ],
)
def test_entry_from_the_builders_bytes_equals_the_parsed_bundles(
    example: str, mapping: str
) -> None:
    """entry_from_json (read from the bytes without parsing) agrees with entry_from_bundle."""
    for result in _converted(example, mapping):
        assert entry_from_json(result.json()) == entry_from_bundle(orjson.loads(result.json()))


def _variants() -> list[tuple[str, dict[str, Any]]]:
    base = _converted("diabetes.csv", "diabetes-csv")[0].bundle

    def changed(change: Any) -> dict[str, Any]:
        bundle = copy.deepcopy(base)
        for entry in bundle["entry"]:
            change(entry["resource"], bundle)
        return bundle

    def escaped_id(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "ServiceRequest":
            r["identifier"][0]["value"] = 'DM-"1001"\\x'

    def no_performer(r: dict[str, Any], _: Any) -> None:
        r.pop("performer", None) if r["resourceType"] == "ServiceRequest" else None

    def second_coding(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "Condition":
            r["code"]["coding"].insert(0, {"system": "http://example.org/local", "code": "x"})

    def deny(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "Consent":
            r["provision"]["type"] = "deny"

    def datetime_authored(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "ServiceRequest":
            r["authoredOn"] = "2026-02-11T09:30:00+00:00"

    def performer_reference(r: dict[str, Any], bundle: dict[str, Any]) -> None:
        if r["resourceType"] == "ServiceRequest":
            r["performer"] = [{"reference": "urn:uuid:org-1"}]
            bundle["entry"].append(
                {
                    "fullUrl": "urn:uuid:org-1",
                    "resource": {
                        "resourceType": "Organization",
                        "identifier": [
                            {
                                "system": "https://fhir.nhs.uk/Id/ods-organization-code",
                                "value": "RQ3",
                            }
                        ],
                    },
                }
            )

    def contained_patient(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "ServiceRequest":
            r["contained"] = [
                {
                    "resourceType": "Patient",
                    "id": "p",
                    "identifier": [{"system": "https://example.org/other", "value": "X"}],
                }
            ]

    consent_after = copy.deepcopy(base)
    [consent] = [e for e in base["entry"] if e["resource"]["resourceType"] == "Consent"]
    denied = copy.deepcopy(consent)
    denied["fullUrl"] = "urn:uuid:consent-2"
    denied["resource"]["provision"]["type"] = "deny"
    consent_after["entry"].append(denied)
    no_consent = copy.deepcopy(base)
    no_consent["entry"] = [e for e in base["entry"] if e["resource"]["resourceType"] != "Consent"]
    no_condition = copy.deepcopy(base)
    no_condition["entry"] = [
        e for e in base["entry"] if e["resource"]["resourceType"] != "Condition"
    ]
    reordered = copy.deepcopy(base)
    reordered["entry"].reverse()
    return [
        ("escaped identifier", changed(escaped_id)),
        ("no performer", changed(no_performer)),
        ("SNOMED not the first coding", changed(second_coding)),
        ("consent deny", changed(deny)),
        ("authoredOn a dateTime", changed(datetime_authored)),
        ("performer an Organization entry", changed(performer_reference)),
        ("no Consent", no_consent),
        ("no Condition", no_condition),
        ("entries reversed", reordered),
        ("a second Consent after the ServiceRequest", consent_after),
        ("a contained resource in the ServiceRequest", changed(contained_patient)),
    ]


@pytest.mark.parametrize(("name", "bundle"), _variants(), ids=[n for n, _ in _variants()])
def test_entry_from_json_agrees_on_bundles_laid_out_otherwise(
    name: str, bundle: dict[str, Any]
) -> None:
    """Escapes, missing or reordered parts, and sorted or indented JSON give the parsed answer."""
    expected = entry_from_bundle(bundle)
    assert expected is not None
    for data in (
        orjson.dumps(bundle),
        orjson.dumps(bundle, option=orjson.OPT_SORT_KEYS),
        orjson.dumps(bundle, option=orjson.OPT_INDENT_2),
    ):
        assert entry_from_json(data) == expected


def test_a_request_without_identifier_is_fi831_from_the_bytes_too() -> None:
    """A ServiceRequest with no identifier of its own cannot be recorded, read from bytes or
    parsed, even when a resource contained in it has one."""
    bundle = copy.deepcopy(_converted("diabetes.csv", "diabetes-csv")[0].bundle)
    for entry in bundle["entry"]:
        request = entry["resource"]
        if request["resourceType"] == "ServiceRequest":
            request.pop("identifier")
            contained = [
                {
                    "resourceType": "Organization",
                    "id": "o",
                    "identifier": [{"system": "https://example.org/org", "value": "O-1"}],
                }
            ]
            entry["resource"] = {"resourceType": "ServiceRequest", "contained": contained} | {
                k: v for k, v in request.items() if k != "resourceType"
            }
    with pytest.raises(LedgerError) as parsed:
        entry_from_bundle(bundle)
    with pytest.raises(LedgerError) as read:
        entry_from_json(orjson.dumps(bundle))
    assert read.value.error_code == parsed.value.error_code == "FI831"


def test_entry_from_json_of_a_blank_consent_answer_is_none() -> None:
    """A row with consent_share_outcomes blank makes no Consent: the entry says None."""
    lines = (EXAMPLES / "diabetes.csv").read_bytes().splitlines()
    row = lines[1].replace(b",Y,Y,Y,", b",Y,Y,,")
    [result] = convert_bytes(
        lines[0] + b"\n" + row + b"\n", name="t.csv", mapping=load_mapping("diabetes-csv")
    )
    assert isinstance(result, Converted)
    entry = entry_from_json(result.json())
    assert entry is not None
    assert entry.share_outcomes is None


# --- the file ------------------------------------------------------------------------------


def test_a_file_that_is_not_sqlite_is_fi830(tmp_path: Path) -> None:
    """Pointing the ledger at a non-database file is a located LedgerError, not a traceback."""
    path = tmp_path / "notes.txt"
    path.write_bytes(b"not a database, just words\n" * 100)
    with pytest.raises(LedgerError) as caught:
        Ledger(path)
    assert caught.value.error_code == "FI830"
    assert "notes.txt" in str(caught.value)


def test_another_applications_database_is_not_taken_as_a_ledger(tmp_path: Path) -> None:
    """A SQLite file with other tables (e.g. the relay's outbox) is refused, never migrated."""
    path = tmp_path / "outbox.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE message (id TEXT)")
    with pytest.raises(LedgerError, match="not a ledger"):
        Ledger(path)
    with sqlite3.connect(path) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")}
    assert tables == {"message"}


def test_a_ledger_from_a_newer_adapter_is_refused(tmp_path: Path) -> None:
    """A schema version above this code's is FI830 (never read with the wrong columns)."""
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 99")
    with pytest.raises(LedgerError, match="newer"):
        Ledger(path)


def test_the_file_is_in_wal_mode_and_marked_as_a_ledger(tmp_path: Path) -> None:
    """WAL (an outcomes run reads while a convert writes) and application_id set."""
    path = tmp_path / "ledger.sqlite"
    with Ledger(path) as ledger:
        ledger.record(_entry())
        with sqlite3.connect(path) as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA application_id").fetchone()[0] != 0
            assert db.execute("SELECT count(*) FROM referral").fetchone()[0] == 1


def test_the_ledger_holds_only_the_entry_fields(tmp_path: Path) -> None:
    """The table's columns are the entry's fields: nothing else about the patient is kept."""
    path = tmp_path / "ledger.sqlite"
    Ledger(path).close()
    with sqlite3.connect(path) as db:
        columns = [r[1] for r in db.execute("PRAGMA table_info(referral)")]
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_schema WHERE type='table'")]
    assert tables == ["referral"]
    assert columns == [
        "identifier_system",
        "identifier",
        "nhs_number",
        "authored_on",
        "performer_ods",
        "ltc_snomed",
        "share_outcomes",
        "requester_ods",
        "screening_sent",
    ]
