"""The validator accepts valid UK Core / project resources and rejects each kind of fault."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from validate_helpers import RESOURCES, fresh, transaction_bundle

from fhir_iapt.errors import Location
from fhir_iapt.fhir.validate import default_validator, has_errors

Mutator = Callable[[dict[str, Any]], None]


def _drop(key: str) -> Mutator:
    return lambda r: r.pop(key)


def _set(key: str, value: Any) -> Mutator:
    return lambda r: r.__setitem__(key, value)


def _value_string(r: dict[str, Any]) -> None:
    del r["valueQuantity"]
    r["valueString"] = "twelve"


def _verification(r: dict[str, Any]) -> None:
    r["identifier"][0]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] = "99"


def _answer(r: dict[str, Any]) -> None:
    r["item"][0]["answer"][0]["valueCoding"]["code"] = "LA6575-0"  # a difficulty answer


def _link(r: dict[str, Any]) -> None:
    r["item"][0]["linkId"] = "99999-9"


def _missing_item(r: dict[str, Any]) -> None:
    del r["item"][3]


def _answer_type(r: dict[str, Any]) -> None:
    r["item"][1]["answer"] = [{"valueInteger": 2}]


def _unit(r: dict[str, Any]) -> None:
    r["valueQuantity"]["code"] = "kg"


def _no_resource_type(r: dict[str, Any]) -> None:
    del r["resourceType"]


INVALID: list[tuple[str, str, Mutator, str]] = [
    ("observation without subject", "Observation", _drop("subject"), "Observation.subject"),
    ("observation without status", "Observation", _drop("status"), "Observation.status"),
    ("intent is not order", "ServiceRequest", _set("intent", "plan"), "ServiceRequest.intent"),
    ("value[x] of the wrong type", "Observation", _value_string, "Observation.value"),
    ("month 13", "ServiceRequest", _set("authoredOn", "2024-13-01"), "ServiceRequest.authoredOn"),
    ("30 February", "Patient", _set("birthDate", "2024-02-30"), "Patient.birthDate"),
    ("unknown element", "Patient", _set("favouriteColour", "blue"), "Patient.favouriteColour"),
    ("status banana", "ServiceRequest", _set("status", "banana"), "ServiceRequest.status"),
    ("gender banana", "Patient", _set("gender", "banana"), "Patient.gender"),
    (
        "NHS number verification code 99",
        "Patient",
        _verification,
        "Patient.identifier[0].extension[0].valueCodeableConcept",
    ),
    (
        "answer not offered by the question",
        "QuestionnaireResponse",
        _answer,
        "QuestionnaireResponse.item[0].answer[0].valueCoding",
    ),
    (
        "linkId not in the Questionnaire",
        "QuestionnaireResponse",
        _link,
        "QuestionnaireResponse.item[0].linkId",
    ),
    (
        "required question unanswered",
        "QuestionnaireResponse",
        _missing_item,
        "QuestionnaireResponse.item",
    ),
    (
        "integer answer to a choice question",
        "QuestionnaireResponse",
        _answer_type,
        "QuestionnaireResponse.item[1].answer[0].valueInteger",
    ),
    (
        "QR without questionnaire",
        "QuestionnaireResponse",
        _drop("questionnaire"),
        "QuestionnaireResponse.questionnaire",
    ),
    ("score unit is not {score}", "Observation", _unit, "Observation.valueQuantity.code"),
    (
        "referral without identifier",
        "ServiceRequest",
        _drop("identifier"),
        "ServiceRequest.identifier",
    ),
    (
        "referral without requester",
        "ServiceRequest",
        _drop("requester"),
        "ServiceRequest.requester",
    ),
    ("no resourceType", "Patient", _no_resource_type, "resourceType"),
]


@pytest.mark.parametrize("name", sorted(RESOURCES))
def test_valid_minimal_resource_is_accepted(name: str) -> None:
    """Each hand-written minimal resource (UK Core / project profile) has no issue at all."""
    assert default_validator().validate(fresh(name)) == []


def test_transaction_bundle_is_accepted() -> None:
    """A transaction Bundle of the valid resources, linked by urn:uuid, has no issue."""
    assert default_validator().validate_bundle(transaction_bundle()) == []


@pytest.mark.parametrize(
    ("case", "name", "mutate", "expression"), INVALID, ids=[c[0] for c in INVALID]
)
def test_invalid_resource_is_rejected_at_the_element(
    case: str, name: str, mutate: Mutator, expression: str
) -> None:
    """Each fault is an error whose FHIRPath expression names the broken element."""
    resource = fresh(name)
    mutate(resource)
    issues = default_validator().validate(resource)
    assert has_errors(issues), case
    expressions = [i.expression or "" for i in issues if i.severity == "error"]
    assert any(e.startswith(expression) for e in expressions), expressions


def test_error_codes_are_the_validators() -> None:
    """Binding errors carry FI402 and structure errors FI401 in details."""
    resource = fresh("ServiceRequest")
    resource["status"] = "banana"
    del resource["subject"]
    codes = {i.error_code for i in default_validator().validate(resource)}
    assert {"FI401", "FI402"} <= codes


def test_bundle_entry_errors_name_the_entry() -> None:
    """An error inside an entry is reported as Bundle.entry[i].resource.<element>."""
    bundle = transaction_bundle()
    bundle["entry"][2]["resource"]["status"] = "banana"
    expressions = [i.expression for i in default_validator().validate_bundle(bundle)]
    assert "Bundle.entry[2].resource.status" in expressions


def test_unresolved_bundle_reference_is_rejected() -> None:
    """A urn:uuid reference that no entry's fullUrl carries is an error."""
    bundle = transaction_bundle()
    bundle["entry"][1]["resource"]["subject"]["reference"] = "urn:uuid:0000"
    issues = default_validator().validate_bundle(bundle)
    assert [i.expression for i in issues] == ["Bundle.entry[1].resource.subject.reference"]
    assert issues[0].error_code == "FI404"


def test_bundle_type_is_checked() -> None:
    """Bundle.type is a required binding too."""
    bundle = transaction_bundle()
    bundle["type"] = "pile"
    expressions = [i.expression for i in default_validator().validate_bundle(bundle)]
    assert "Bundle.type" in expressions


def test_validate_routes_a_bundle_through_bundle_checks() -> None:
    """validate() on a Bundle also checks its references."""
    bundle = transaction_bundle()
    bundle["entry"][0]["fullUrl"] = "urn:uuid:elsewhere"
    assert has_errors(default_validator().validate(bundle))


def test_unknown_profile_is_a_warning_only() -> None:
    """A claimed profile the validator lacks is reported but does not make it invalid."""
    resource = fresh("Condition")
    resource["meta"]["profile"].append("http://example.org/StructureDefinition/Other")
    issues = default_validator().validate(resource)
    assert [i.severity for i in issues] == ["warning"]
    assert not has_errors(issues)


def test_project_profile_applies_without_meta_profile() -> None:
    """A ServiceRequest is held to IaptLtcServiceRequest even when it claims nothing."""
    resource = fresh("ServiceRequest")
    del resource["meta"]
    resource["intent"] = "proposal"
    expressions = [i.expression for i in default_validator().validate(resource)]
    assert "ServiceRequest.intent" in expressions


def test_location_is_carried_into_issues() -> None:
    """The caller's file/line location is attached to every issue."""
    resource = fresh("Observation")
    del resource["subject"]
    where = Location(file="in.ndjson", line=3)
    issues = default_validator().validate(resource, location=where)
    assert issues
    assert all(i.location == where for i in issues)


def test_lhc_forms_answer_codes_without_system_are_checked_by_code() -> None:
    """An answer coding with the right code but another system is not accepted."""
    resource = fresh("QuestionnaireResponse")
    resource["item"][0]["answer"][0]["valueCoding"]["system"] = "http://snomed.info/sct"
    issues = default_validator().validate(resource)
    assert any(
        i.expression == "QuestionnaireResponse.item[0].answer[0].valueCoding" for i in issues
    )
