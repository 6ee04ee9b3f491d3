"""A table of deliberately invalid resources: each fault is an error at the right FHIRPath.

One or more rows per fault category of issue 9 (wrong type, unknown element, bad code in a
required binding, missing required element, bad date, broken reference, a profile's fixed or
pattern value violated) and per category today's fhircraft validator let through (dateTimes
with a time but no timezone, ids breaking the id pattern, empty strings, nulls and empty
arrays, removed required elements, wrong JSON types inside nested elements, references to a
resource type the element does not allow, ``#`` references without a contained resource, a
Quantity code without a system).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from validate_helpers import fresh, transaction_bundle

from fhir_iapt.fhir.validate import default_validator

Mutator = Callable[[dict[str, Any]], None]
OUTCOMES = Path(__file__).resolve().parent / "data" / "outcomes" / "iapt-outcomes.expected.json"


def _episode_outcome() -> dict[str, Any]:
    """The first episode-outcome Observation of the outcomes golden file."""
    for bundle in json.loads(OUTCOMES.read_text(encoding="utf-8")).values():
        for entry in bundle["entry"]:
            resource = entry["resource"]
            if "IaptEpisodeOutcomeObservation" in str(resource.get("meta")):
                return copy.deepcopy(resource)
    raise AssertionError("the outcomes golden file holds an episode outcome")


def _sample(name: str) -> dict[str, Any]:
    return _episode_outcome() if name == "EpisodeOutcome" else fresh(name)


def _at(path: str, value: Any) -> Mutator:
    """Set the value at a dotted path (``name.0.family``); ``...`` deletes it."""

    def mutate(resource: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = resource
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        key: Any = int(last) if last.isdigit() else last
        if value is ...:
            del node[key]
        else:
            node[key] = value

    return mutate


def _both(*mutators: Mutator) -> Mutator:
    def mutate(resource: dict[str, Any]) -> None:
        for mutator in mutators:
            mutator(resource)

    return mutate


VERIFICATION = "identifier.0.extension.0"

#: (case, sample, mutation, FHIRPath of the error, FIxxx code)
FAULTS: list[tuple[str, str, Mutator, str, str]] = [
    # -- bad date / primitive formats
    (
        "dateTime with a time but no timezone",
        "ServiceRequest",
        _at("authoredOn", "2024-03-01T10:00:00"),
        "ServiceRequest.authoredOn",
        "FI401",
    ),
    (
        "dateTime with hours and minutes only",
        "Observation",
        _at("effectiveDateTime", "2024-03-01T10:00Z"),
        "Observation.effectiveDateTime",
        "FI401",
    ),
    (
        "date of 30 February",
        "Condition",
        _at("recordedDate", "2024-02-30"),
        "Condition.recordedDate",
        "FI401",
    ),
    (
        "date with a time",
        "Patient",
        _at("birthDate", "1970-05-17T00:00:00Z"),
        "Patient.birthDate",
        "FI401",
    ),
    (
        "instant without a time",
        "Patient",
        _at("meta.lastUpdated", "2024-03-01"),
        "Patient.meta.lastUpdated",
        "FI401",
    ),
    ("id breaking the id pattern", "Patient", _at("id", "not a valid id!"), "Patient.id", "FI401"),
    ("id longer than 64 characters", "Condition", _at("id", "a" * 65), "Condition.id", "FI401"),
    (
        "uri with a space",
        "Patient",
        _at("identifier.0.system", "https://x.example/a b"),
        "Patient.identifier[0].system",
        "FI401",
    ),
    # -- empty strings, nulls, empty arrays and objects
    ("empty string", "Patient", _at("name.0.family", ""), "Patient.name[0].family", "FI401"),
    ("empty code", "ServiceRequest", _at("status", ""), "ServiceRequest.status", "FI401"),
    ("null value", "Patient", _at("birthDate", None), "Patient.birthDate", "FI401"),
    (
        "null inside an array",
        "Patient",
        _at("name.0.given", [None]),
        "Patient.name[0].given[0]",
        "FI401",
    ),
    ("empty array", "Patient", _at("name", []), "Patient.name", "FI401"),
    ("empty object (ele-1)", "Condition", _at("code", {}), "Condition.code", "FI406"),
    (
        "object with only an id (ele-1)",
        "Condition",
        _at("code", {"id": "a"}),
        "Condition.code",
        "FI406",
    ),
    # -- missing required elements
    (
        "ServiceRequest.intent removed",
        "ServiceRequest",
        _at("intent", ...),
        "ServiceRequest.intent",
        "FI401",
    ),
    (
        "an extension's url removed",
        "Patient",
        _at(f"{VERIFICATION}.url", ...),
        "Patient.identifier[0].extension[0].url",
        "FI401",
    ),
    ("Observation.code removed", "Observation", _at("code", ...), "Observation.code", "FI401"),
    (
        "QuestionnaireResponse.status removed",
        "QuestionnaireResponse",
        _at("status", ...),
        "QuestionnaireResponse.status",
        "FI401",
    ),
    (
        "a Coding inside a required Reference's identifier removed by profile",
        "ServiceRequest",
        _at("authoredOn", ...),
        "ServiceRequest.authoredOn",
        "FI401",
    ),
    # -- wrong JSON types, nested too
    (
        "string where a decimal goes",
        "Observation",
        _at("valueQuantity.value", "12"),
        "Observation.valueQuantity.value",
        "FI401",
    ),
    (
        "boolean where a decimal goes",
        "Observation",
        _at("valueQuantity.value", True),
        "Observation.valueQuantity.value",
        "FI401",
    ),
    (
        "number where a uri goes, three levels down",
        "Patient",
        _at(f"{VERIFICATION}.valueCodeableConcept.coding.0.system", 5),
        "Patient.identifier[0].extension[0].valueCodeableConcept.coding[0].system",
        "FI401",
    ),
    (
        "string where a Coding goes",
        "Condition",
        _at("code.coding.0", "44054006"),
        "Condition.code.coding[0]",
        "FI401",
    ),
    (
        "array where one value goes",
        "Observation",
        _at("code", [{"coding": [{"system": "http://loinc.org", "code": "44261-6"}]}]),
        "Observation.code",
        "FI401",
    ),
    (
        "single value where an array goes",
        "Patient",
        _at("name", {"family": "Example"}),
        "Patient.name",
        "FI401",
    ),
    (
        "number where a string goes in an answer",
        "QuestionnaireResponse",
        _at("item.0.answer.0.valueCoding.code", 3),
        "QuestionnaireResponse.item[0].answer[0].valueCoding.code",
        "FI401",
    ),
    (
        "value[x] of a type R4 does not have",
        "Observation",
        _both(_at("valueQuantity", ...), _at("valueBanana", 1)),
        "Observation.valueBanana",
        "FI401",
    ),
    (
        "two types of value[x]",
        "Condition",
        _both(_at("onsetDateTime", "2024-01-01"), _at("onsetString", "last year")),
        "Condition.onset",
        "FI401",
    ),
    (
        "primitive extension holder that is not an object",
        "Patient",
        _at("_birthDate", "x"),
        "Patient._birthDate",
        "FI401",
    ),
    # -- unknown elements
    (
        "unknown top-level element",
        "Condition",
        _at("severityScore", 3),
        "Condition.severityScore",
        "FI401",
    ),
    (
        "unknown element inside a data type",
        "Patient",
        _at("name.0.nickname", "Al"),
        "Patient.name[0].nickname",
        "FI401",
    ),
    (
        "unknown element inside a backbone element",
        "QuestionnaireResponse",
        _at("item.0.score", 1),
        "QuestionnaireResponse.item[0].score",
        "FI401",
    ),
    # -- bad codes in required bindings
    (
        "HumanName.use not in name-use",
        "Patient",
        _at("name.0.use", "banana"),
        "Patient.name[0].use",
        "FI402",
    ),
    (
        "Quantity.comparator not in quantity-comparator",
        "Observation",
        _at("valueQuantity.comparator", "~"),
        "Observation.valueQuantity.comparator",
        "FI402",
    ),
    (
        "NHS number verification status 99",
        "Patient",
        _at(f"{VERIFICATION}.valueCodeableConcept.coding.0.code", "99"),
        "Patient.identifier[0].extension[0].valueCodeableConcept",
        "FI402",
    ),
    # -- references
    (
        "subject pointing at a Practitioner",
        "Observation",
        _at("subject.reference", "Practitioner/abc"),
        "Observation.subject.reference",
        "FI409",
    ),
    (
        "profile's Patient-only subject pointing at a Group",
        "QuestionnaireResponse",
        _at("subject.reference", "Group/abc"),
        "QuestionnaireResponse.subject.reference",
        "FI409",
    ),
    (
        "Reference.type a type the element does not allow",
        "Condition",
        _at("subject", {"type": "Medication", "identifier": {"value": "x"}}),
        "Condition.subject.type",
        "FI409",
    ),
    (
        "# reference with no contained resource (ref-1)",
        "Condition",
        _at("subject.reference", "#nope"),
        "Condition.subject.reference",
        "FI404",
    ),
    # -- invariants
    (
        "Quantity code without a system (qty-3)",
        "ServiceRequest",
        _at("quantityQuantity", {"value": 1, "code": "mg"}),
        "ServiceRequest.quantityQuantity",
        "FI406",
    ),
    (
        "comparator on a SimpleQuantity (sqty-1)",
        "Observation",
        _at("referenceRange", [{"low": {"value": 5, "comparator": "<"}}]),
        "Observation.referenceRange[0].low",
        "FI406",
    ),
    (
        "Period ending before it starts (per-1)",
        "Observation",
        _both(
            _at("effectiveDateTime", ...),
            _at("effectivePeriod", {"start": "2024-03-02", "end": "2024-03-01"}),
        ),
        "Observation.effectivePeriod",
        "FI406",
    ),
    (
        "extension with a value and extensions (ext-1)",
        "Patient",
        _at(f"{VERIFICATION}.extension", [{"url": "http://x.example/e", "valueString": "x"}]),
        "Patient.identifier[0].extension[0]",
        "FI406",
    ),
    (
        "value and dataAbsentReason together (obs-6)",
        "Observation",
        _at("dataAbsentReason", {"text": "not asked"}),
        "Observation",
        "FI406",
    ),
    (
        "orderDetail without code (prr-1)",
        "ServiceRequest",
        _both(_at("code", ...), _at("orderDetail", [{"text": "x"}])),
        "ServiceRequest",
        "FI406",
    ),
    (
        "answer and item on one response item (qrs-1)",
        "QuestionnaireResponse",
        _at("item.0.item", [{"linkId": "x"}]),
        "QuestionnaireResponse.item[0]",
        "FI406",
    ),
    (
        "profile invariant: outcome component with value and absent reason",
        "EpisodeOutcome",
        _at("component.0.dataAbsentReason", {"text": "x"}),
        "Observation",
        "FI406",
    ),
    # -- a profile's fixed and pattern values
    (
        "fixed intent violated",
        "ServiceRequest",
        _at("intent", "plan"),
        "ServiceRequest.intent",
        "FI401",
    ),
    (
        "fixed UCUM system violated",
        "Observation",
        _at("valueQuantity.system", "http://example.org/units"),
        "Observation.valueQuantity.system",
        "FI401",
    ),
    (
        "pattern category violated",
        "EpisodeOutcome",
        _at("category.0.coding.0.code", "exam"),
        "Observation.category[0]",
        "FI401",
    ),
    (
        "pattern code violated",
        "EpisodeOutcome",
        _at("code.coding.0.code", "other"),
        "Observation.code",
        "FI401",
    ),
    (
        "profile max 0 violated",
        "EpisodeOutcome",
        _at("valueString", "x"),
        "Observation.valueString",
        "FI401",
    ),
    (
        "profile component count violated",
        "EpisodeOutcome",
        lambda r: r["component"].pop(),
        "Observation.component",
        "FI401",
    ),
    (
        "profile choice type violated",
        "Observation",
        _both(_at("valueQuantity", ...), _at("valueInteger", 12)),
        "Observation.valueInteger",
        "FI401",
    ),
    (
        "profile slice: NHS number without value",
        "Patient",
        _at("identifier.0.value", ...),
        "Patient.identifier",
        "FI401",
    ),
]


@pytest.mark.parametrize(
    ("case", "sample", "mutate", "expression", "code"), FAULTS, ids=[f[0] for f in FAULTS]
)
def test_fault_is_an_error_at_its_element(
    case: str, sample: str, mutate: Mutator, expression: str, code: str
) -> None:
    """The mutated resource is invalid, with an error of this code at this FHIRPath."""
    resource = _sample(sample)
    assert default_validator().validate(copy.deepcopy(resource)) == [], "valid before"
    mutate(resource)
    errors = [
        (i.expression, i.error_code)
        for i in default_validator().validate(resource)
        if i.severity == "error"
    ]
    assert any(e is not None and e.startswith(expression) and c == code for e, c in errors), (
        case,
        errors,
    )


def test_reference_to_an_entry_of_the_wrong_type_is_rejected_in_a_bundle() -> None:
    """A urn:uuid subject naming the bundle's Condition entry (not a Patient) is FI409."""
    bundle = transaction_bundle()
    condition = bundle["entry"][1]["fullUrl"]
    bundle["entry"][3]["resource"]["subject"]["reference"] = condition
    errors = [(i.expression, i.error_code) for i in default_validator().validate_bundle(bundle)]
    assert ("Bundle.entry[3].resource.subject.reference", "FI409") in errors


def test_contained_reference_resolves_to_the_container() -> None:
    """A # reference to a resource the container holds is valid, and checked by its type."""
    resource = fresh("Condition")
    resource["contained"] = [{"resourceType": "Patient", "id": "p1"}]
    resource["subject"] = {"reference": "#p1"}
    assert default_validator().validate(resource) == []
    resource["contained"] = [{"resourceType": "Medication", "id": "p1"}]
    errors = [(i.expression, i.error_code) for i in default_validator().validate(resource)]
    assert ("Condition.subject.reference", "FI409") in errors


def test_issue_messages_never_carry_the_value() -> None:
    """A bad value is named by its element and rule, never echoed (patient data)."""
    resource = fresh("Patient")
    resource["name"][0]["family"] = 12345
    resource["birthDate"] = "1970-02-31"
    resource["id"] = "Secret Name!"
    issues = default_validator().validate(resource)
    assert issues
    text = " ".join(i.diagnostics for i in issues)
    for value in ("12345", "1970-02-31", "Secret"):
        assert value not in text
