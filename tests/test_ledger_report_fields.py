"""The ledger fields the pathway report needs: the sending clinic (ServiceRequest.requester's
ODS code) and whether a screening was sent (a PHQ / GAD QuestionnaireResponse), read alike
from the builder's bytes and from the parsed bundle, and a schema 1 ledger migrated with its
old rows unknown."""

from __future__ import annotations

import copy
import csv
import sqlite3
from datetime import date
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_iapt.ledger import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    Ledger,
    LedgerEntry,
    _fast_row,
    entry_from_bundle,
    entry_from_json,
    ledger_row,
)
from fhir_iapt.mapping import load_mapping
from fhir_iapt.pipeline import convert_bytes, convert_file
from fhir_iapt.results import Converted

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ODS = "https://fhir.nhs.uk/Id/ods-organization-code"
#: every bundled layout with the clinic ODS column its records name (the requester's clinic)
LAYOUTS = [
    ("diabetes.csv", "diabetes-csv"),
    ("respiratory.xml", "respiratory-xml"),
    ("cardiac.json", "cardiac-json"),
]


def _converted(example: str, mapping: str) -> list[Converted]:
    return [
        r for r in convert_file(EXAMPLES / example, mapping=mapping) if isinstance(r, Converted)
    ]


def _diabetes_clinics() -> dict[str, str]:
    """clinic_record_id -> clinic_ods, read from the example CSV itself."""
    with (EXAMPLES / "diabetes.csv").open(newline="", encoding="utf-8") as fh:
        return {row["clinic_record_id"]: row["clinic_ods"] for row in csv.DictReader(fh)}


def _answered(row: dict[str, str]) -> bool:
    return any(value.strip() for key, value in row.items() if key.startswith(("phq", "gad")))


def _diabetes_screened() -> dict[str, bool]:
    """clinic_record_id -> whether the row answers any PHQ / GAD item."""
    with (EXAMPLES / "diabetes.csv").open(newline="", encoding="utf-8") as fh:
        return {row["clinic_record_id"]: _answered(row) for row in csv.DictReader(fh)}


def test_each_diabetes_referral_records_its_clinic_and_its_screening() -> None:
    """The requester ODS is the row's clinic_ods (the PractitionerRole's organization), and
    screening_sent says whether the row answered any PHQ / GAD item (both kinds are there)."""
    clinics, screened = _diabetes_clinics(), _diabetes_screened()
    for result in _converted("diabetes.csv", "diabetes-csv"):
        entry = entry_from_bundle(result.bundle)
        assert entry is not None
        assert entry.requester_ods == clinics[entry.identifier]
        assert entry.screening_sent is screened[entry.identifier]
    assert set(screened.values()) == {True, False}


@pytest.mark.parametrize(("example", "mapping"), LAYOUTS)
def test_the_builders_bytes_are_read_without_parsing(example: str, mapping: str) -> None:
    """Every bundled layout's referral is read on the fast byte path (not the parse fallback),
    and what it reads is what the parsed bundle gives, new fields included."""
    for result in _converted(example, mapping):
        row = _fast_row(result.json())
        assert row is not None
        assert entry_from_json(result.json()) == entry_from_bundle(result.bundle)
        has_response = any(
            e["resource"]["resourceType"] == "QuestionnaireResponse" for e in result.bundle["entry"]
        )
        assert row[7] is not None
        assert row[8] == int(has_response)


def _no_clinician_bytes() -> bytes:
    """A diabetes row with no referrer named: the clinic (by ODS) is the requester itself."""
    lines = (EXAMPLES / "diabetes.csv").read_bytes().splitlines()
    header = lines[0].split(b",")
    cells = lines[1].split(b",")
    for column in (b"referrer_code", b"referrer_name"):
        cells[header.index(column)] = b""
    [result] = convert_bytes(
        lines[0] + b"\n" + b",".join(cells) + b"\n",
        name="t.csv",
        mapping=load_mapping("diabetes-csv"),
    )
    assert isinstance(result, Converted)
    return result.json()


def test_a_clinic_requester_without_a_clinician_is_read_from_the_bytes() -> None:
    """requester = the clinic's logical Organization reference: its ODS, on the fast path."""
    data = _no_clinician_bytes()
    request = next(
        e["resource"]
        for e in orjson.loads(data)["entry"]
        if e["resource"]["resourceType"] == "ServiceRequest"
    )
    assert request["requester"]["identifier"]["system"] == ODS
    row = _fast_row(data)
    assert row is not None
    assert row[7] == request["requester"]["identifier"]["value"]
    assert entry_from_json(data) == entry_from_bundle(orjson.loads(data))


def _variants() -> list[tuple[str, dict[str, Any]]]:
    base = _converted("diabetes.csv", "diabetes-csv")[0].bundle
    clinic_only = orjson.loads(_no_clinician_bytes())

    def edited(bundle: dict[str, Any], change: Any) -> dict[str, Any]:
        out = copy.deepcopy(bundle)
        for entry in list(out["entry"]):
            change(entry["resource"], out)
        return out

    def without(resource_type: str) -> dict[str, Any]:
        out = copy.deepcopy(base)
        out["entry"] = [e for e in out["entry"] if e["resource"]["resourceType"] != resource_type]
        return out

    def other_questionnaire(r: dict[str, Any], _: Any) -> None:  # every response
        if r["resourceType"] == "QuestionnaireResponse":
            r["questionnaire"] = "http://example.org/Questionnaire/local-wellbeing"

    def versioned_questionnaire(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "QuestionnaireResponse":
            r["questionnaire"] += "|1.0.0"

    def role_without_organization(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "PractitionerRole":
            r.pop("organization")

    def role_organization_entry(r: dict[str, Any], bundle: dict[str, Any]) -> None:
        if r["resourceType"] == "PractitionerRole":
            r["organization"] = {"reference": "urn:uuid:org-clinic"}
            bundle["entry"].append(
                {
                    "fullUrl": "urn:uuid:org-clinic",
                    "resource": {
                        "resourceType": "Organization",
                        "identifier": [{"system": ODS, "value": "RQ9"}],
                    },
                }
            )

    def requester_organization_entry(r: dict[str, Any], bundle: dict[str, Any]) -> None:
        if r["resourceType"] == "ServiceRequest":
            r["requester"] = {"reference": "urn:uuid:org-req"}
            bundle["entry"].append(
                {
                    "fullUrl": "urn:uuid:org-req",
                    "resource": {
                        "resourceType": "Organization",
                        "identifier": [{"system": ODS, "value": "RQ8"}],
                    },
                }
            )

    def no_requester(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "ServiceRequest":
            r.pop("requester")

    def escaped_clinic(r: dict[str, Any], _: Any) -> None:
        if r["resourceType"] == "PractitionerRole":
            r["organization"]["identifier"]["value"] = 'RZ"Z'

    return [
        ("no QuestionnaireResponse", without("QuestionnaireResponse")),
        ("a QuestionnaireResponse to another Questionnaire", edited(base, other_questionnaire)),
        ("a versioned screening Questionnaire", edited(base, versioned_questionnaire)),
        ("a PractitionerRole without organization", edited(base, role_without_organization)),
        ("the role's organization an entry", edited(base, role_organization_entry)),
        ("the requester an Organization entry", edited(base, requester_organization_entry)),
        ("no requester", edited(base, no_requester)),
        ("an escaped clinic code", edited(base, escaped_clinic)),
        (
            "the clinic as requester, entries reversed",
            {**clinic_only, "entry": clinic_only["entry"][::-1]},
        ),
    ]


@pytest.mark.parametrize(("name", "bundle"), _variants(), ids=[n for n, _ in _variants()])
def test_bytes_and_parsed_bundle_agree_on_the_new_fields(name: str, bundle: dict[str, Any]) -> None:
    """Layouts other than the builder's give the parsed answer for clinic and screening too."""
    expected = entry_from_bundle(bundle)
    assert expected is not None
    for data in (
        orjson.dumps(bundle),
        orjson.dumps(bundle, option=orjson.OPT_SORT_KEYS),
        orjson.dumps(bundle, option=orjson.OPT_INDENT_2),
    ):
        assert entry_from_json(data) == expected


def test_the_variants_give_the_expected_clinic_and_screening() -> None:
    """What each variant should read (written from the variant, not from the code)."""
    clinic = _diabetes_clinics()["DM-1001"]
    expected = {
        "no QuestionnaireResponse": (clinic, False),
        # every response answers a local Questionnaire: no PHQ / GAD screening went
        "a QuestionnaireResponse to another Questionnaire": (clinic, False),
        "a versioned screening Questionnaire": (clinic, True),
        "a PractitionerRole without organization": (None, True),
        "the role's organization an entry": ("RQ9", True),
        "the requester an Organization entry": ("RQ8", True),
        "no requester": (None, True),
        "an escaped clinic code": ('RZ"Z', True),
    }
    got = {}
    for name, bundle in _variants():
        entry = entry_from_bundle(bundle)
        assert entry is not None
        got[name] = (entry.requester_ods, entry.screening_sent)
    assert {k: got[k] for k in expected} == expected


_SCHEMA_1 = """
CREATE TABLE referral (
    identifier_system TEXT NOT NULL, identifier TEXT NOT NULL, nhs_number TEXT NOT NULL,
    authored_on TEXT NOT NULL, performer_ods TEXT, ltc_snomed TEXT, share_outcomes INTEGER,
    PRIMARY KEY (identifier_system, identifier));
CREATE INDEX referral_by_patient ON referral (nhs_number, authored_on);
"""


def test_a_schema_1_ledger_is_migrated_and_its_old_rows_read_unknown(tmp_path: Path) -> None:
    """A ledger written before the report fields opens: its rows keep what they had and read
    requester and screening as None (unknown), new entries record both; the version moves on."""
    path = tmp_path / "ledger.sqlite"
    with sqlite3.connect(path) as db:
        db.executescript(_SCHEMA_1)
        db.execute(
            "INSERT INTO referral VALUES (?, ?, ?, ?, ?, ?, ?)",
            ("urn:sys", "OLD-1", "9990000018", "2025-01-06", "RZZ10", "44054006", 1),
        )
        db.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        db.execute("PRAGMA user_version = 1")
    with Ledger(path) as ledger:
        old = ledger.get("urn:sys", "OLD-1")
        assert old == LedgerEntry(
            "urn:sys",
            "OLD-1",
            "9990000018",
            date(2025, 1, 6),
            "RZZ10",
            "44054006",
            True,
            None,
            None,
        )
        entry = ledger.record_bundle(_converted("diabetes.csv", "diabetes-csv")[0].bundle)
        assert entry is not None
        stored = ledger.get(entry.identifier_system, entry.identifier)
        assert stored == entry
        assert stored is not None
        assert stored.requester_ods is not None
        assert stored.screening_sent is True
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


def test_entries_lists_every_referral_in_the_ledger(tmp_path: Path) -> None:
    """Ledger.entries() yields every entry (the report's referrals sent), in identifier order,
    whatever the page size it reads with."""
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        results = _converted("diabetes.csv", "diabetes-csv")
        for result in results:
            ledger.record_bundle(result.bundle)
        listed = list(ledger.entries())
        assert list(ledger.entries(batch=2)) == listed  # read in pages: the same entries
    assert [e.identifier for e in listed] == sorted(
        e.identifier for r in results if (e := entry_from_bundle(r.bundle))
    )
    assert listed == sorted(
        (e for r in results if (e := entry_from_bundle(r.bundle))),
        key=lambda e: (e.identifier_system, e.identifier),
    )


def test_a_relay_row_pending_from_before_schema_2_is_recorded_as_unknown(tmp_path: Path) -> None:
    """The relay's outbox may hold 7-value rows written by the previous version: recorded with
    the clinic and the screening unknown, not refused."""
    old = ["urn:sys", "OLD-2", "9990000018", "2025-02-03", "RZZ10", None, 0]
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        ledger.record_rows([ledger_row(old)])
        entry = ledger.get("urn:sys", "OLD-2")
    assert entry == LedgerEntry(
        "urn:sys", "OLD-2", "9990000018", date(2025, 2, 3), "RZZ10", None, False, None, None
    )
