"""Context Observations (each kind) and screenings (each instrument) in the referral bundle."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from typing import Any

import pytest
from build_helpers import record_id, resources, sample_record

from fhir_iapt.errors import RecordError, ScoringError
from fhir_iapt.fhir import build_referral_bundle
from fhir_iapt.records import ContextValue, Screening

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"


def _context_observation(value: ContextValue) -> dict[str, Any]:
    bundle = build_referral_bundle(sample_record(context=(value,), screenings=()))
    found = [r for r in resources(bundle) if r["resourceType"] == "Observation"]
    assert len(found) == 1
    return found[0]


# Expected codes: DOMAIN.md (HbA1c 59261-8, FEV1 20150-9, MRC grades, NYHA 88020-3 + LA codes);
# FEV1 % predicted and LVEF codes are the UNVERIFIED defaults of mappings/tables/context.yaml.
QUANTITY_CASES = [
    (
        "hba1c",
        Decimal("48"),
        "59261-8",
        "laboratory",
        {"value": 48, "unit": "mmol/mol", "system": UCUM, "code": "mmol/mol"},
    ),
    (
        "fev1",
        Decimal("1.8"),
        "20150-9",
        "exam",
        {"value": 1.8, "unit": "L", "system": UCUM, "code": "L"},
    ),
    (
        "fev1_percent_predicted",
        Decimal("65"),
        "20152-5",
        "exam",
        {"value": 65, "unit": "%", "system": UCUM, "code": "%"},
    ),
    ("lvef", 35, "10230-1", "imaging", {"value": 35, "unit": "%", "system": UCUM, "code": "%"}),
]


@pytest.mark.parametrize(("kind", "value", "code", "category", "quantity"), QUANTITY_CASES)
def test_quantity_context_kinds(
    kind: Any, value: Any, code: str, category: str, quantity: dict[str, Any]
) -> None:
    """Numeric context kinds become UCUM Quantities with their LOINC code and category."""
    observation = _context_observation(ContextValue(kind, value))
    assert observation["code"]["coding"][0]["system"] == LOINC
    assert observation["code"]["coding"][0]["code"] == code
    assert observation["category"][0]["coding"][0]["code"] == category
    assert observation["valueQuantity"] == quantity
    assert observation["effectiveDateTime"] == "2024-03-05"
    assert observation["id"] == record_id(f"Observation/{kind}/0")


@pytest.mark.parametrize(
    ("grade", "code"),
    [(1, "391120009"), (2, "391123006"), (3, "391124000"), (4, "391125004"), (5, "391126003")],
)
def test_mrc_grade_is_coded(grade: int, code: str) -> None:
    """MRC breathlessness grades 1-5 become the SNOMED CT grade concepts (DOMAIN.md)."""
    observation = _context_observation(ContextValue("mrc_grade", grade, date(2024, 1, 9)))
    assert observation["valueCodeableConcept"]["coding"][0]["system"] == SNOMED
    assert observation["valueCodeableConcept"]["coding"][0]["code"] == code
    assert observation["effectiveDateTime"] == "2024-01-09"
    assert "valueQuantity" not in observation


@pytest.mark.parametrize(("nyha", "code"), [("I", "LA28404-4"), ("IV", "LA28407-7")])
def test_nyha_class_is_coded(nyha: str, code: str) -> None:
    """NYHA class is LOINC 88020-3 with the LA answer of the class (DOMAIN.md: I and IV)."""
    observation = _context_observation(ContextValue("nyha_class", nyha))
    assert observation["code"]["coding"][0]["code"] == "88020-3"
    assert observation["valueCodeableConcept"]["coding"][0] == {
        "system": LOINC,
        "code": code,
        "display": f"Class {nyha}",
    }


def test_unknown_coded_value_is_rejected_without_the_value() -> None:
    """An NYHA class outside the table is a RecordError naming the field, not the value."""
    with pytest.raises(RecordError) as info:
        _context_observation(ContextValue("nyha_class", "VII"))
    assert info.value.error_code == "FI391"
    assert info.value.issues[0].location is not None
    assert info.value.issues[0].location.field == "nyha_class"
    assert "VII" not in str(info.value.to_operation_outcome())


def test_two_values_of_one_kind_get_their_own_roles() -> None:
    """Two HbA1c values in one record get roles hba1c/0 and hba1c/1."""
    bundle = build_referral_bundle(
        sample_record(context=(ContextValue("hba1c", 50), ContextValue("hba1c", 52)), screenings=())
    )
    ids = [r["id"] for r in resources(bundle) if r["resourceType"] == "Observation"]
    assert ids == [record_id("Observation/hba1c/0"), record_id("Observation/hba1c/1")]


# Totals are added up by hand; codes from DOMAIN.md / instruments.yaml.
INSTRUMENT_CASES = [
    ("PHQ-9", (3, 3, 2, 2, 1, 1, 0, 0, 3), 15, "phq-9", ["44261-6", "720433000"], 9),
    ("GAD-7", (0, 1, 2, 3, 0, 1, 2), 9, "gad-7", ["70274-6", "445455005"], 7),
    ("PHQ-2", (2, 1), 3, "phq-2", ["55758-7"], 2),
    # GAD-2: no verified total code (DOMAIN.md U; 70272-0 is the PHQ-4 total): our own code.
    ("GAD-2", (3, 3), 6, "gad-2", ["gad2-total"], 2),
]


@pytest.mark.parametrize(
    ("instrument", "answers", "total", "slug", "codes", "n_items"), INSTRUMENT_CASES
)
def test_each_instrument(
    instrument: Any,
    answers: tuple[int, ...],
    total: int,
    slug: str,
    codes: list[str],
    n_items: int,
) -> None:
    """Each instrument gives a QuestionnaireResponse and a survey score Observation from it."""
    bundle = build_referral_bundle(
        sample_record(context=(), screenings=(Screening(instrument, answers),))
    )
    by_type = {r["resourceType"]: r for r in resources(bundle)}
    qr = by_type["QuestionnaireResponse"]
    score = by_type["Observation"]
    assert qr["questionnaire"] == f"https://fhir-iapt.github.io/fhir/Questionnaire/{slug}"
    assert qr["status"] == "completed"
    assert len(qr["item"]) == n_items
    assert [i["answer"][0]["valueCoding"]["code"] for i in qr["item"]] == [
        ["LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"][a] for a in answers
    ]
    assert [c["code"] for c in score["code"]["coding"]] == codes
    assert score["category"][0]["coding"][0]["code"] == "survey"
    assert score["valueQuantity"]["value"] == total
    assert score["valueQuantity"]["code"] == "{score}"
    assert score["derivedFrom"] == [{"reference": f"urn:uuid:{qr['id']}"}]
    assert {"reference": f"urn:uuid:{qr['id']}"} in by_type["ServiceRequest"]["supportingInfo"]


def test_phq9_without_item_10_and_repeated_instrument() -> None:
    """PHQ-9 with 9 answers has 9 items; a second PHQ-9 in the record gets its own role."""
    first = Screening("PHQ-9", (0,) * 9)
    second = Screening("PHQ-9", (1,) * 9 + (None,))
    bundle = build_referral_bundle(sample_record(context=(), screenings=(first, second)))
    qrs = [r for r in resources(bundle) if r["resourceType"] == "QuestionnaireResponse"]
    assert [len(q["item"]) for q in qrs] == [9, 9]
    assert [q["id"] for q in qrs] == [
        record_id("QuestionnaireResponse/PHQ-9"),
        record_id("QuestionnaireResponse/PHQ-9/1"),
    ]
    scores = [
        r["valueQuantity"]["value"] for r in resources(bundle) if r["resourceType"] == "Observation"
    ]
    assert scores == [0, 9]


def test_out_of_range_answer_is_a_scoring_error() -> None:
    """An answer of 4 on a 0-3 item rejects the record with a ScoringError."""
    record = sample_record(screenings=(Screening("GAD-7", (4, 0, 0, 0, 0, 0, 0)),))
    with pytest.raises(ScoringError):
        build_referral_bundle(record)


# PHQ-9 item 10 (difficulty), a 0-3 value in the export -> the LOINC answer (DOMAIN.md, V: the
# LHC-Forms PHQ-9): 2 is "Very difficult" LA6575-0, 3 "Extremely difficult" LA6574-3.
@pytest.mark.parametrize(
    ("value", "code", "display"),
    [
        (0, "LA6572-7", "Not difficult at all"),
        (1, "LA6573-5", "Somewhat difficult"),
        (2, "LA6575-0", "Very difficult"),
        (3, "LA6574-3", "Extremely difficult"),
    ],
)
def test_phq9_item10_value_is_sent_as_its_loinc_answer(value: int, code: str, display: str) -> None:
    """A PHQ-9 item 10 value is sent as the LOINC answer code of that difficulty."""
    screening = Screening("PHQ-9", (1,) * 9 + (value,))
    bundle = build_referral_bundle(sample_record(context=(), screenings=(screening,)))
    [qr] = [r for r in resources(bundle) if r["resourceType"] == "QuestionnaireResponse"]
    [item10] = [i for i in qr["item"] if i["linkId"] == "69722-7"]
    assert item10["answer"] == [
        {"valueCoding": {"system": LOINC, "code": code, "display": display}}
    ]


def test_gad2_total_is_our_own_code_not_the_phq4_total() -> None:
    """The GAD-2 score Observation is coded gad2-total of our CodeSystem, never LOINC 70272-0."""
    bundle = build_referral_bundle(
        sample_record(context=(), screenings=(Screening("GAD-2", (1, 2)),))
    )
    [score] = [r for r in resources(bundle) if r["resourceType"] == "Observation"]
    assert score["code"]["coding"] == [
        {
            "system": "https://fhir-iapt.github.io/fhir/CodeSystem/iapt-measure",
            "code": "gad2-total",
            "display": "Generalized anxiety disorder 2 item (GAD-2) total score",
        }
    ]
    assert "70272-0" not in json.dumps(bundle)
