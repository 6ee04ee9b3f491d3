"""Mapping the bundled layouts to ReferralRecords: examples, and every bad value located."""

from __future__ import annotations

import csv
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from fhir_iapt.errors import Location, RecordError
from fhir_iapt.mapping import load_mapping, map_record, read_source
from fhir_iapt.records import (
    ConditionData,
    ContextValue,
    PatientData,
    ReferralData,
    ReferralRecord,
    Screening,
)
from fhir_iapt.sources import SourceRecord

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def _records(mapping_name: str, raw: bytes, name: str) -> list[SourceRecord]:
    mapping = load_mapping(mapping_name)
    items = list(read_source(io.BytesIO(raw), name=name, mapping=mapping))
    assert all(isinstance(i, SourceRecord) for i in items), items
    return [i for i in items if isinstance(i, SourceRecord)]


def _map_all(mapping_name: str, path: Path) -> list[ReferralRecord]:
    mapping = load_mapping(mapping_name)
    return [map_record(r, mapping) for r in _records(mapping_name, path.read_bytes(), path.name)]


# --- the examples: every branch, checked against hand-written expectations -------------------

#: record id -> (decision, consent to refer, consent to share outcomes, instruments)
BRANCHES: dict[str, tuple[bool, bool | None, bool | None, tuple[str, ...]]] = {
    "DM-1001": (True, True, True, ("PHQ-9", "GAD-7")),
    "DM-1002": (True, True, True, ("PHQ-2", "GAD-2")),
    "DM-1003": (True, True, True, ()),
    "DM-1004": (False, None, None, ("PHQ-2", "GAD-2")),
    "DM-1005": (True, False, None, ("PHQ-9", "GAD-7")),
    "DM-1006": (True, True, False, ("PHQ-9", "GAD-7")),
    "RV-2001": (True, True, True, ("PHQ-9", "GAD-7")),
    "RV-2002": (True, True, True, ("PHQ-2", "GAD-2")),
    "RV-2003": (True, True, True, ()),
    "RV-2004": (False, None, None, ("PHQ-2", "GAD-2")),
    "RV-2005": (True, False, None, ("PHQ-9", "GAD-7")),
    "RV-2006": (True, True, False, ("PHQ-9", "GAD-7")),
    "CV-3001": (True, True, True, ("PHQ-9", "GAD-7")),
    "CV-3002": (True, True, True, ("PHQ-2", "GAD-2")),
    "CV-3003": (True, True, True, ()),
    "CV-3004": (False, None, None, ("PHQ-2", "GAD-2")),
    "CV-3005": (True, False, None, ("PHQ-9", "GAD-7")),
    "CV-3006": (True, True, False, ("PHQ-9", "GAD-7")),
}


@pytest.mark.parametrize(
    ("mapping", "file", "count"),
    [
        ("diabetes-csv", "diabetes.csv", 10),
        ("respiratory-xml", "respiratory.xml", 8),
        ("cardiac-json", "cardiac.json", 9),
        ("cardiac-json", "cardiac.ndjson", 9),
    ],
)
def test_examples_map_cleanly_and_show_every_branch(mapping: str, file: str, count: int) -> None:
    """Every example record maps; the branch records carry the decision, consents and screens."""
    records = _map_all(mapping, EXAMPLES / file)
    assert len(records) == count
    seen = 0
    for record in records:
        expected = BRANCHES.get(record.record_id)
        if expected is None:
            continue
        seen += 1
        got = (
            record.referral.decision,
            record.referral.consent_to_refer,
            record.referral.consent_to_share_outcomes,
            tuple(s.instrument for s in record.screenings),
        )
        assert got == expected, record.record_id
    assert seen == 6


def test_cardiac_array_and_ndjson_give_the_same_records() -> None:
    """The two JSON layouts of the same export map to equal records (locations aside)."""
    array = _map_all("cardiac-json", EXAMPLES / "cardiac.json")
    lines = _map_all("cardiac-json", EXAMPLES / "cardiac.ndjson")
    strip = [(r.key, r.patient, r.referral, r.conditions, r.context, r.screenings) for r in array]
    assert strip == [
        (r.key, r.patient, r.referral, r.conditions, r.context, r.screenings) for r in lines
    ]


def test_first_diabetes_row_is_exactly_the_hand_written_record() -> None:
    """DM-1001 maps to this record, written out by hand from the CSV row and DOMAIN.md codes."""
    record = _map_all("diabetes-csv", EXAMPLES / "diabetes.csv")[0]
    expected = ReferralRecord(
        source_system="https://fhir-iapt.github.io/fhir/Id/example-diabetes-clinic-record",
        record_id="DM-1001",
        clinic_ods="RZZ50",
        event_date=date(2026, 2, 11),
        patient=PatientData(
            nhs_number="9990000018",
            family="Hartley",
            given=("Amelia",),
            birth_date=date(1958, 3, 14),
            sex="female",
            gp_practice_ods="Z99001",
            nhs_number_verification="02",
        ),
        referral=ReferralData(
            decision=True,
            consent_to_refer=True,
            consent_to_share_outcomes=True,
            referrer_id="555000000101",
            referrer_id_system="https://fhir.nhs.uk/Id/sds-user-id",
            referrer_name="Dr Example Clinician 1",
            source_snomed=None,
            reason="Low mood and worry about managing a long-term condition, agreed to IAPT-LTC"
            " referral",
            performer_ods="RZZ10",
        ),
        conditions=(ConditionData("44054006", "Type 2 diabetes mellitus", None),),
        context=(ContextValue("hba1c", Decimal("58"), date(2026, 2, 11)),),
        screenings=(
            Screening("PHQ-9", (2, 2, 1, 3, 1, 2, 1, 0, 0, 1), date(2026, 2, 11)),
            Screening("GAD-7", (2, 3, 2, 1, 1, 2, 1), date(2026, 2, 11)),
        ),
        location=Location(file="diabetes.csv", row=1, line=2),
    )
    assert record == expected
    assert record.key == expected.source_system + "|DM-1001"


def test_spaced_nhs_number_and_uk_dates_are_normalised() -> None:
    """DM-1007 writes '999 227 4794' and DD/MM/YYYY: mapped to digits and real dates."""
    record = _map_all("diabetes-csv", EXAMPLES / "diabetes.csv")[6]
    assert record.patient.nhs_number == "9992274794"
    assert record.patient.birth_date == date(1975, 5, 17)
    assert record.event_date == date(2026, 8, 17)


def test_respiratory_visit_reads_root_clinic_and_two_diagnoses() -> None:
    """RV-2003: clinic from the root element, COPD + hypertension with DOMAIN.md codes."""
    record = _map_all("respiratory-xml", EXAMPLES / "respiratory.xml")[2]
    assert record.clinic_ods == "RZZ60"
    assert [c.snomed for c in record.conditions] == ["13645005", "38341003"]
    assert [c.text for c in record.conditions] == ["COPD", "Hypertension"]
    assert record.context == (
        ContextValue("fev1", Decimal("1.10"), record.event_date),
        ContextValue("fev1_percent_predicted", Decimal("44"), record.event_date),
        ContextValue("mrc_grade", 4, record.event_date),
    )


# --- bad values: table-driven, exact locations ---------------------------------------------------

_DIABETES_HEADER, _DIABETES_ROW = list(
    csv.reader(io.StringIO((EXAMPLES / "diabetes.csv").read_text(encoding="utf-8")))
)[:2]


def _diabetes_csv(*rows: dict[str, str]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(_DIABETES_HEADER)
    for changes in rows:
        row = dict(zip(_DIABETES_HEADER, _DIABETES_ROW, strict=True))
        row.update(changes)
        writer.writerow(row.values())
    return out.getvalue().encode()


def _issues(mapping_name: str, raw: bytes, name: str, index: int = 0) -> list[tuple[Any, ...]]:
    record = _records(mapping_name, raw, name)[index]
    with pytest.raises(RecordError) as caught:
        map_record(record, load_mapping(mapping_name))
    out = []
    for issue in caught.value.issues:
        loc = issue.location
        assert loc is not None
        out.append((issue.error_code, loc.row, loc.line, loc.element, loc.field))
    return out


CSV_CASES = [
    pytest.param({"nhs_number": "9990000019"}, [("FI301", "nhs_number")], id="bad-check-digit"),
    pytest.param({"nhs_number": "99900000"}, [("FI301", "nhs_number")], id="nhs-not-10-digits"),
    pytest.param({"nhs_number": " "}, [("FI302", "nhs_number")], id="nhs-blank"),
    pytest.param(
        {"review_date": "2099-01-01"}, [("FI301", "review_date")], id="future-date-reported-once"
    ),
    pytest.param({"birth_date": "31/02/1960"}, [("FI301", "birth_date")], id="impossible-31-feb"),
    pytest.param({"birth_date": "1960-13-01"}, [("FI301", "birth_date")], id="month-13"),
    pytest.param({"birth_date": "14 March 1958"}, [("FI301", "birth_date")], id="unknown-format"),
    pytest.param({"phq9_q3": "4"}, [("FI303", "phq9_q3")], id="answer-4"),
    pytest.param({"gad7_q1": "-1"}, [("FI303", "gad7_q1")], id="answer-negative"),
    pytest.param(
        {"phq9_q2": "", "phq9_q7": ""},
        [("FI303", "phq9_q2"), ("FI303", "phq9_q7")],
        id="partial-phq9",
    ),
    pytest.param({"phq9_q10": ""}, [], id="phq9-item-10-optional"),
    pytest.param({"diabetes_type": "T3"}, [("FI301", "diabetes_type")], id="unknown-diabetes-type"),
    pytest.param({"diabetes_type": ""}, [("FI302", "diabetes_type")], id="diabetes-type-blank"),
    pytest.param({"sex": "X"}, [("FI301", "sex")], id="unknown-sex-term"),
    pytest.param({"refer": "maybe"}, [("FI301", "refer")], id="unknown-yes-no-term"),
    pytest.param({"hba1c_mmol_mol": "900"}, [("FI301", "hba1c_mmol_mol")], id="hba1c-range"),
    pytest.param({"hba1c_mmol_mol": "5O"}, [("FI301", "hba1c_mmol_mol")], id="hba1c-not-number"),
    pytest.param({"clinic_ods": "R!"}, [("FI301", "clinic_ods")], id="bad-ods"),
    pytest.param(
        {"nhs_number": "9990000019", "review_date": "31/02/2026", "gad7_q7": "9", "sex": "?"},
        [("FI301", "review_date"), ("FI301", "nhs_number"), ("FI301", "sex"), ("FI303", "gad7_q7")],
        id="all-issues-collected",
    ),
    pytest.param(
        {"refer": "N", "consent_refer": "", "nhs_number": "123"},
        [("FI301", "nhs_number")],
        id="not-referred-but-bad-still-rejected",
    ),
]


@pytest.mark.parametrize(("changes", "expected"), CSV_CASES)
def test_diabetes_row_issues(changes: dict[str, str], expected: list[tuple[str, str]]) -> None:
    """Row 2 (line 3) of a CSV with these cells is rejected naming exactly these columns."""
    raw = _diabetes_csv({}, changes)
    record = _records("diabetes-csv", raw, "bad.csv")[1]
    if not expected:
        map_record(record, load_mapping("diabetes-csv"))
        return
    issues = _issues("diabetes-csv", raw, "bad.csv", index=1)
    assert [(code, field) for code, _row, _line, _el, field in issues] == expected
    assert {(row, line) for _code, row, line, _el, _field in issues} == {(2, 3)}


def test_messages_name_the_rule_not_the_value() -> None:
    """A rejected record's OperationOutcome never contains the patient's values."""
    raw = _diabetes_csv({"nhs_number": "9990000019", "birth_date": "31/02/1960"})
    record = _records("diabetes-csv", raw, "bad.csv")[0]
    with pytest.raises(RecordError) as caught:
        map_record(record, load_mapping("diabetes-csv"))
    text = json.dumps(caught.value.to_operation_outcome()) + str(caught.value)
    for value in ("9990000019", "31/02/1960", "Hartley", "Amelia"):
        assert value not in text
    assert "modulus 11" in text


def test_birth_after_visit_is_rejected() -> None:
    """A birth date after the review date is rejected by the referral target."""
    raw = _diabetes_csv({"birth_date": "2026-03-01", "review_date": "2026-02-11"})
    issues = _issues("diabetes-csv", raw, "bad.csv")
    assert [i[4] for i in issues] == ["patient.birth_date"]


_RESP = (EXAMPLES / "respiratory.xml").read_text(encoding="utf-8")


def _resp_first_visit(old: str, new: str) -> bytes:
    assert old in _RESP
    return _RESP.replace(old, new, 1).encode()


XML_CASES = [
    pytest.param(
        'code="13645005">COPD',
        'code="35489007">Depression',
        [("FI301", 1, 7, "/RespiratoryClinicExport/Visit[1]/Diagnosis[1]", "@code")],
        id="unknown-condition-code",
    ),
    pytest.param(
        'scheme="SNOMED" code="13645005"',
        'scheme="READ" code="13645005"',
        [("FI301", 1, 7, "/RespiratoryClinicExport/Visit[1]/Diagnosis[1]", "@scheme")],
        id="diagnosis-not-snomed",
    ),
    pytest.param(
        '<Answer item="4">3</Answer>',
        '<Answer item="4">4</Answer>',
        [("FI303", 1, 14, "/RespiratoryClinicExport/Visit[1]/Screening[1]", ".")],
        id="answer-4",
    ),
    pytest.param(
        '      <Answer item="3">1</Answer>\n',
        "",
        [("FI303", 1, 10, "/RespiratoryClinicExport/Visit[1]/Screening[1]", "item 3")],
        id="partial-phq9-names-missing-item",
    ),
    pytest.param(
        '<Answer item="4">3</Answer>',
        '<Answer item="11">3</Answer>',
        [("FI303", 1, 14, "/RespiratoryClinicExport/Visit[1]/Screening[1]", "@item")],
        id="item-number-out-of-range",
    ),
    pytest.param(
        'instrument="GAD-7"',
        'instrument="BDI"',
        [("FI301", 1, 22, "/RespiratoryClinicExport/Visit[1]/Screening[2]", "@instrument")],
        id="unknown-instrument",
    ),
    pytest.param(
        '<MRCDyspnoea grade="3"/>',
        '<MRCDyspnoea grade="6"/>',
        [("FI301", 1, 9, "/RespiratoryClinicExport/Visit[1]", "MRCDyspnoea/@grade")],
        id="mrc-grade-6",
    ),
    pytest.param(
        'nhsNumber="9990000018"',
        'nhsNumber="9990000010"',
        [("FI301", 1, 4, "/RespiratoryClinicExport/Visit[1]", "Patient/@nhsNumber")],
        id="bad-nhs-number-on-patient-line",
    ),
    pytest.param(
        'decision="refer"',
        'decision="yes please"',
        [("FI301", 1, 31, "/RespiratoryClinicExport/Visit[1]", "Referral/@decision")],
        id="unknown-decision-term",
    ),
]


@pytest.mark.parametrize(("old", "new", "expected"), XML_CASES)
def test_respiratory_visit_issues(old: str, new: str, expected: list[tuple[Any, ...]]) -> None:
    """The first visit with this change is rejected at exactly this element, line and field."""
    assert _issues("respiratory-xml", _resp_first_visit(old, new), "respiratory.xml") == expected


def _cardiac(change: dict[str, Any]) -> bytes:
    records = json.loads((EXAMPLES / "cardiac.json").read_text(encoding="utf-8"))
    first = records[0]
    for path, value in change.items():
        target = first
        *parents, last = path.split(".")
        for key in parents:
            target = target[key]
        target[last] = value
    return json.dumps(records).encode()


JSON_CASES = [
    pytest.param(
        {"patient": "9990000018"},
        [
            ("FI304", "$[0]", f"patient.{key}")
            for key in (
                "nhsNumber",
                "name.family",
                "name.given",
                "birthDate",
                "sex",
                "gpPracticeOds",
            )
        ],
        id="patient-is-a-string",
    ),
    pytest.param({"lvefPercent": "high"}, [("FI301", "$[0]", "lvefPercent")], id="lvef-text"),
    pytest.param({"lvefPercent": 150}, [("FI301", "$[0]", "lvefPercent")], id="lvef-range"),
    pytest.param({"nyhaClass": "V"}, [("FI301", "$[0]", "nyhaClass")], id="nyha-v"),
    pytest.param(
        {"referral.decision": "perhaps"},
        [("FI301", "$[0]", "referral.decision")],
        id="decision-unknown-term",
    ),
    pytest.param(
        {"referral.decision": None}, [("FI302", "$[0]", "referral.decision")], id="decision-null"
    ),
    pytest.param(
        {"screening.phq9": [1, 2, 3, 1, 0, 0, 1, 2]},
        [("FI303", "$[0]", "screening.phq9")],
        id="phq9-eight-items",
    ),
    pytest.param(
        {"screening.phq9": [1, 2, None, 1, 0, 0, 1, 2, 0]},
        [("FI303", "$[0]", "screening.phq9")],
        id="phq9-partial",
    ),
    pytest.param(
        {"screening.gad7": [1, 2, 3, 1, 0, True, 1]},
        [("FI303", "$[0]", "screening.gad7")],
        id="gad7-boolean-answer",
    ),
    pytest.param(
        {"screening.gad7": "2,3"}, [("FI304", "$[0]", "screening.gad7")], id="gad7-not-array"
    ),
    pytest.param(
        {"conditions": [{"snomed": "35489007", "text": "Depression"}]},
        [("FI301", "$[0].conditions[0]", "snomed")],
        id="unknown-condition-code",
    ),
    pytest.param(
        {"conditions": {"snomed": "84114007"}},
        [("FI304", "$[0]", "conditions")],
        id="conditions-not-array",
    ),
    pytest.param({"visitDate": 20250401}, [("FI301", "$[0]", "visitDate")], id="date-as-number"),
]


@pytest.mark.parametrize(("change", "expected"), JSON_CASES)
def test_cardiac_visit_issues(change: dict[str, Any], expected: list[tuple[Any, ...]]) -> None:
    """The first visit with this change is rejected at exactly this JSON path and key."""
    issues = _issues("cardiac-json", _cardiac(change), "cardiac.json")
    assert [(code, element, field) for code, _r, _l, element, field in issues] == expected
    assert {row for _c, row, _l, _e, _f in issues} == {1}


def test_export_missing_a_column_is_one_read_error_naming_it() -> None:
    """A diabetes export without consent_refer gives one FI102 naming it, and no records."""
    text = (EXAMPLES / "diabetes.csv").read_text(encoding="utf-8")
    rows = list(csv.reader(io.StringIO(text)))
    drop = rows[0].index("consent_refer")
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows([r[:drop] + r[drop + 1 :] for r in rows])
    mapping = load_mapping("diabetes-csv")
    items = list(read_source(io.BytesIO(out.getvalue().encode()), name="d.csv", mapping=mapping))
    assert len(items) == 1
    error = items[0]
    assert not isinstance(error, SourceRecord)
    assert error.error_code == "FI102"
    assert "consent_refer" in error.message
    assert error.location is not None
    assert (error.location.file, error.location.line) == ("d.csv", 1)
