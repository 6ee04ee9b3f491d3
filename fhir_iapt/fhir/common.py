"""Shared FHIR builders: plain dicts, built directly, reused by the referral and outcome bundles.

Resources are plain ``dict`` trees ready for ``orjson.dumps`` (no pydantic on the hot path: a
model round-trip costs more than the whole conversion). Every builder here is pure and
deterministic: same arguments, same dict, no timestamps, no random values.

Conventions every builder follows:

* ``id`` comes from :mod:`fhir_iapt.fhir.ids`; references inside a bundle are
  ``{"reference": "urn:uuid:<id>"}`` and each entry's ``fullUrl`` is that same URN;
* every resource carries a business ``identifier`` and its entry a ``request``: conditional
  create (``POST <Type>`` + ``ifNoneExist``) or ``PUT <Type>/<id>`` (:func:`entry`);
* organisations are logical references by ODS code (:func:`ods_reference`), never resources;
* ``meta.profile`` names the UK Core profile, or the project's own profile where it has one
  (Consent has neither: no UK Core Consent profile is shipped, so it is base R4 with no
  ``meta.profile``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from decimal import Decimal
from functools import cache
from typing import Any

import orjson

from fhir_iapt.errors import Location
from fhir_iapt.fhir.ids import if_none_exist
from fhir_iapt.fhir.options import RequestMethod
from fhir_iapt.records import PatientData
from fhir_iapt.scoring.instruments import InstrumentSpec
from fhir_iapt.systems import (
    LOINC,
    NHS_NUMBER,
    NHS_NUMBER_VERIFICATION_CS,
    NHS_NUMBER_VERIFICATION_EXT,
    OBSERVATION_CATEGORY,
    ODS_ORGANIZATION,
    UCUM,
    project_url,
    ukcore_profile,
)

Resource = dict[str, Any]
Reference = dict[str, Any]

#: The project's profiles (StructureDefinitions shipped in ``profiles/``).
SERVICE_REQUEST_PROFILE = project_url("StructureDefinition", "IaptLtcServiceRequest")
QUESTIONNAIRE_RESPONSE_PROFILE = project_url("StructureDefinition", "IaptLtcQuestionnaireResponse")
SCORE_OBSERVATION_PROFILE = project_url("StructureDefinition", "IaptScoreObservation")
_UKCORE_PATIENT = ukcore_profile("Patient")
_UKCORE_PRACTITIONER = ukcore_profile("Practitioner")
_UKCORE_PRACTITIONERROLE = ukcore_profile("PractitionerRole")

# Consent codes. Checked (V) against the R4 (4.0.1) spec's own Consent examples
# (consent-example-notThis, consent-example-pkb): scope consentscope#patient-privacy, category
# LOINC 59284-0, policyRule v3-ActCode OPTIN / OPTOUT, provision.action from consentaction.
# "disclose" ("Transfer retrieved information") is one of the five consentaction codes (HL7
# Terminology CodeSystem consentaction). IRCP "information recipient" is a v3-ParticipationType
# code (the root of THO ValueSet v3-ParticipationInformationRecipient).
CONSENT_SCOPE = "http://terminology.hl7.org/CodeSystem/consentscope"
CONSENT_ACTION = "http://terminology.hl7.org/CodeSystem/consentaction"
V3_ACT_CODE = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
V3_PARTICIPATION_TYPE = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
#: LOINC 59284-0 "Patient Consent". No display is sent: the R4 examples carry none, and LOINC's
#: display for this code has changed between releases ("Patient Consent", "Consent Document").
CONSENT_CATEGORY_LOINC = "59284-0"


# --- small values -------------------------------------------------------------------------------


def frozen(value: Any) -> orjson.Fragment:
    """``value`` serialised once, for a constant part that many bundles repeat.

    A bundle holding fragments is only ever serialised (``orjson.dumps`` copies the bytes
    in), never handed out as a dict: :func:`fhir_iapt.fhir.referral.build_referral_bundle`
    parses the serialised bundle back. ``orjson.dumps`` of a dict holding ``frozen(v)`` is the
    same bytes as of the dict holding ``v`` (tests/test_build_fast_paths.py).
    """
    return orjson.Fragment(orjson.dumps(value))


def urn(resource_id: str) -> str:
    """``urn:uuid:<id>``: the fullUrl of an entry and the target of in-bundle references."""
    return f"urn:uuid:{resource_id}"


def reference(resource: Mapping[str, Any]) -> Reference:
    """A reference to a resource of the same bundle (by its ``urn:uuid`` fullUrl)."""
    return {"reference": f"urn:uuid:{resource['id']}"}


def ods_reference(ods_code: str) -> Reference:
    """A logical reference to an organisation by its ODS code."""
    return {"type": "Organization", "identifier": {"system": ODS_ORGANIZATION, "value": ods_code}}


def coding(system: str, code: str, display: str | None = None) -> dict[str, str]:
    """A Coding dict (``display`` left out when not known)."""
    out = {"system": system, "code": code}
    if display:
        out["display"] = display
    return out


def concept(codings: Iterable[Mapping[str, Any]], text: str | None = None) -> dict[str, Any]:
    """A CodeableConcept from Coding dicts (copied, so bundles never share mutable parts)."""
    out: dict[str, Any] = {"coding": [dict(c) for c in codings]}
    if text:
        out["text"] = text
    return out


def meta(profile: str) -> dict[str, list[str]]:
    """``meta`` claiming one profile."""
    return {"profile": [profile]}


def fhir_date(value: date) -> str:
    """A FHIR ``date`` (also a valid ``dateTime``): ``YYYY-MM-DD``."""
    return value.isoformat()


def json_number(value: Decimal | int | float) -> int | float:
    """A JSON number for a Decimal or int (integral values stay ints: ``48``, not ``48.0``)."""
    if isinstance(value, Decimal):
        if value == value.to_integral_value():
            return int(value)
        return float(value)
    return value


def observation_category(code: str) -> dict[str, Any]:
    """An ``Observation.category`` entry from the HL7 observation-category code system."""
    return {"coding": [{"system": OBSERVATION_CATEGORY, "code": code}]}


def score_quantity(total: int) -> dict[str, Any]:
    """A score as a Quantity in UCUM ``{score}`` (DOMAIN.md: scores use UCUM ``{score}``)."""
    return {"value": total, "unit": "{score}", "system": UCUM, "code": "{score}"}


# --- bundle entries -----------------------------------------------------------------------------


def entry(
    resource: Resource,
    *,
    identifier: Mapping[str, str],
    method: RequestMethod = "conditional-create",
) -> dict[str, Any]:
    """A transaction entry for ``resource``.

    ``conditional-create``: ``POST <Type>`` with ``ifNoneExist: identifier=<system>|<value>``,
    so a resource already on the server (same business identifier) is reused, not duplicated.
    ``put``: ``PUT <Type>/<id>`` (create or overwrite under our deterministic id).
    """
    return keyed_entry(resource, None if method == "put" else if_none_exist(identifier), method)


def keyed_entry(
    resource: Resource, key: str | None, method: RequestMethod = "conditional-create"
) -> dict[str, Any]:
    """:func:`entry` with the ``ifNoneExist`` key already worked out (``None`` under ``put``).

    For builders that mint the key with :class:`~fhir_iapt.fhir.ids.RecordIds`, which gives
    the same key as :func:`~fhir_iapt.fhir.ids.if_none_exist` of the identifier (tested).
    """
    resource_type = resource["resourceType"]
    resource_id = resource["id"]
    request: dict[str, str]
    if method == "put":
        request = {"method": "PUT", "url": f"{resource_type}/{resource_id}"}
    else:
        if key is None:
            raise ValueError("a conditional-create entry needs its ifNoneExist key")
        request = {"method": "POST", "url": resource_type, "ifNoneExist": key}
    return {"fullUrl": f"urn:uuid:{resource_id}", "resource": resource, "request": request}


def transaction_bundle(bundle_id: str, entries: Sequence[Mapping[str, Any]]) -> Resource:
    """A transaction Bundle (no ``timestamp``: the bytes must not depend on when we ran)."""
    return {
        "resourceType": "Bundle",
        "id": bundle_id,
        "type": "transaction",
        "entry": list(entries),
    }


# --- resources ----------------------------------------------------------------------------------


def nhs_number_identifier(nhs_number: str, verification: str | None = None) -> dict[str, Any]:
    """The UK Core NHS number identifier, with its verification status when known."""
    out: dict[str, Any] = {}
    if verification:
        out["extension"] = [
            {
                "url": NHS_NUMBER_VERIFICATION_EXT,
                "valueCodeableConcept": {
                    "coding": [{"system": NHS_NUMBER_VERIFICATION_CS, "code": verification}]
                },
            }
        ]
    out["system"] = NHS_NUMBER
    out["value"] = nhs_number
    return out


def patient_resource(patient: PatientData, resource_id: str) -> Resource:
    """A UK Core Patient: NHS number (+ verification status), name, gender, birth date, GP.

    ``resource_id`` is normally ``shared_resource_id(ns, "Patient", NHS_NUMBER, nhs_number)``
    (one patient, one id across records; see :mod:`fhir_iapt.fhir.ids` for the privacy note).
    The GP practice is a logical reference by ODS code.
    """
    resource: Resource = {
        "resourceType": "Patient",
        "id": resource_id,
        "meta": {"profile": [_UKCORE_PATIENT]},
        "identifier": [nhs_number_identifier(patient.nhs_number, patient.nhs_number_verification)],
    }
    if patient.family or patient.given:
        name: dict[str, Any] = {}
        if patient.family:
            name["family"] = patient.family
        if patient.given:
            name["given"] = list(patient.given)
        resource["name"] = [name]
    if patient.sex:
        resource["gender"] = patient.sex
    if patient.birth_date:
        resource["birthDate"] = fhir_date(patient.birth_date)
    if patient.gp_practice_ods:
        resource["generalPractitioner"] = [ods_reference(patient.gp_practice_ods)]
    return resource


def practitioner_resource(
    resource_id: str,
    *,
    identifier: Mapping[str, str],
    name: str | None = None,
) -> Resource:
    """A UK Core Practitioner with one identifier and the name as free text."""
    resource: Resource = {
        "resourceType": "Practitioner",
        "id": resource_id,
        "meta": {"profile": [_UKCORE_PRACTITIONER]},
        "identifier": [dict(identifier)],
    }
    if name:
        resource["name"] = [{"text": name}]
    return resource


def practitioner_role_resource(
    resource_id: str,
    *,
    identifier: Mapping[str, str],
    practitioner: Reference,
    organization: Reference,
) -> Resource:
    """A UK Core PractitionerRole: this practitioner, acting for this organisation."""
    return {
        "resourceType": "PractitionerRole",
        "id": resource_id,
        "meta": {"profile": [_UKCORE_PRACTITIONERROLE]},
        "identifier": [dict(identifier)],
        "practitioner": practitioner,
        "organization": organization,
    }


@cache
def _answer_codings(instrument: str) -> tuple[dict[int, dict[str, str]], ...]:
    """Per item (scored then unscored), score -> answer valueCoding, from instruments.yaml."""
    from fhir_iapt.scoring.instruments import instrument_spec

    spec = instrument_spec(instrument)
    return tuple(
        {opt.score: coding(LOINC, opt.code, opt.display) for opt in item.answers}
        for item in spec.all_items
    )


def _item(link_id: str, found: Mapping[str, str]) -> dict[str, Any]:
    """One answered QuestionnaireResponse item (its answer coding copied)."""
    return {"linkId": link_id, "answer": [{"valueCoding": dict(found)}]}


_ItemPlan = tuple[tuple[str, bool, dict[int, dict[str, str]], dict[int, orjson.Fragment]], ...]


@cache
def _item_plan(instrument: str) -> _ItemPlan:
    """Per item (scored then unscored): its linkId, whether it is scored, its answer codings,
    and each answer's whole item already serialised (:func:`frozen` of :func:`_item`)."""
    from fhir_iapt.scoring.instruments import instrument_spec

    spec = instrument_spec(instrument)
    return tuple(
        (
            item.code,
            item.scored,
            codings,
            {score: frozen(_item(item.code, found)) for score, found in codings.items()},
        )
        for item, codings in zip(spec.all_items, _answer_codings(instrument), strict=True)
    )


def answered_items(
    spec: InstrumentSpec,
    answers: Sequence[int | None],
    *,
    location: Location | None = None,
    fragments: bool = False,
) -> tuple[list[Any], int]:
    """A QuestionnaireResponse's ``item`` list for ``answers`` and the instrument's total.

    One pass over the answers builds the items (``None`` answers left out) and adds the scored
    ones up. Anything that is not plainly a valid answer (wrong count, a missing scored item, not
    an int, a score with no answer code) goes to :func:`fhir_iapt.scoring.score_instrument`,
    which raises the ScoringError that names it; the total always equals its total (tested).
    With ``fragments`` each item is its pre-serialised :func:`frozen` form (for a bundle that
    is only serialised), the same bytes once dumped.
    """
    plan = _item_plan(spec.name)
    n_answers = len(answers)
    if n_answers != len(spec.items) and n_answers != len(plan):
        return _scored_slowly(spec, answers, location, fragments)
    items: list[Any] = []
    total = 0
    for (link_id, scored, codings, made), value in zip(plan, answers, strict=False):
        if value is None:
            if scored:
                return _scored_slowly(spec, answers, location, fragments)
            continue
        found = codings.get(value) if type(value) is int else None
        if found is None:
            return _scored_slowly(spec, answers, location, fragments)
        if scored:
            total += value
        items.append(made[value] if fragments else _item(link_id, found))
    return items, total


def _scored_slowly(
    spec: InstrumentSpec,
    answers: Sequence[int | None],
    location: Location | None,
    fragments: bool,
) -> tuple[list[Any], int]:
    """:func:`answered_items` for answers it could not take at a glance: scored in full first."""
    from fhir_iapt.scoring.instruments import score_instrument

    total = score_instrument(spec.name, answers, location=location).total
    plan = _item_plan(spec.name)
    items = [
        plan[index][3][value] if fragments else _item(plan[index][0], plan[index][2][value])
        for index, value in enumerate(answers)
        if value is not None
    ]
    return items, total


def questionnaire_url(spec: InstrumentSpec) -> str:
    """The canonical Questionnaire the project ships for an instrument."""
    return project_url("Questionnaire", spec.slug)


def questionnaire_response(
    resource_id: str,
    *,
    identifier: Mapping[str, str],
    spec: InstrumentSpec,
    answers: Sequence[int | None],
    subject: Reference,
    authored: date,
    author: Reference | None = None,
    items: list[Any] | None = None,
    fragments: bool = False,
) -> Resource:
    """A completed QuestionnaireResponse for an instrument, one item per answered question.

    ``answers[i]`` is the score of item ``i`` in the table order (scored items, then unscored
    ones such as PHQ-9 item 10); ``None`` answers are left out. Each item's ``linkId`` is the
    item's LOINC code (the shipped Questionnaire uses the same linkIds) and its answer the LOINC
    answer (``LA…``) whose score it is. ``items``, when given, is :func:`answered_items`'
    list for these answers (a caller that also needs the total builds it once). With
    ``fragments`` the items and ``meta`` are pre-serialised (:func:`frozen`).
    """
    if items is None:
        items = answered_items(spec, answers, fragments=fragments)[0]
    resource: Resource = {
        "resourceType": "QuestionnaireResponse",
        "id": resource_id,
        "meta": _QR_META if fragments else meta(QUESTIONNAIRE_RESPONSE_PROFILE),
        "identifier": dict(identifier),
        "questionnaire": questionnaire_url(spec),
        "status": "completed",
        "subject": subject,
        "authored": fhir_date(authored),
    }
    if author is not None:
        resource["author"] = author
    resource["item"] = items
    return resource


_QR_META = frozen(meta(QUESTIONNAIRE_RESPONSE_PROFILE))


@cache
def _total_codings(instrument: str) -> tuple[dict[str, str], ...]:
    """An instrument's total-score codings (copied into each Observation, never shared)."""
    from fhir_iapt.scoring.instruments import instrument_spec

    return tuple(t.to_fhir() for t in instrument_spec(instrument).totals)


@cache
def _score_constants(instrument: str) -> tuple[orjson.Fragment, orjson.Fragment, orjson.Fragment]:
    """A score Observation's ``meta``, ``category`` and ``code``, each :func:`frozen`."""
    return (
        frozen(meta(SCORE_OBSERVATION_PROFILE)),
        frozen([observation_category("survey")]),
        frozen({"coding": [dict(c) for c in _total_codings(instrument)]}),
    )


def score_observation(
    resource_id: str,
    *,
    identifier: Mapping[str, str],
    spec: InstrumentSpec,
    total: int,
    subject: Reference,
    effective: date,
    performer: Reference | None = None,
    derived_from: Reference | None = None,
    fragments: bool = False,
) -> Resource:
    """A final ``survey`` Observation of an instrument's total score.

    ``code`` carries every total-score coding of the instrument (LOINC, and SNOMED CT where the
    table has one); the value is a UCUM ``{score}`` Quantity; ``derivedFrom`` points at the
    QuestionnaireResponse the total was computed from. With ``fragments`` the constant parts
    are pre-serialised (:func:`frozen`; for a bundle that is only serialised).
    """
    if fragments:
        constant = _score_constants(spec.name)
        resource: Resource = {
            "resourceType": "Observation",
            "id": resource_id,
            "meta": constant[0],
            "identifier": [dict(identifier)],
            "status": "final",
            "category": constant[1],
            "code": constant[2],
            "subject": subject,
            "effectiveDateTime": fhir_date(effective),
        }
    else:
        resource = {
            "resourceType": "Observation",
            "id": resource_id,
            "meta": meta(SCORE_OBSERVATION_PROFILE),
            "identifier": [dict(identifier)],
            "status": "final",
            "category": [observation_category("survey")],
            "code": {"coding": [dict(c) for c in _total_codings(spec.name)]},
            "subject": subject,
            "effectiveDateTime": fhir_date(effective),
        }
    if performer is not None:
        resource["performer"] = [performer]
    resource["valueQuantity"] = score_quantity(total)
    if derived_from is not None:
        resource["derivedFrom"] = [derived_from]
    return resource


def consent_resource(
    resource_id: str,
    *,
    identifier: Mapping[str, str],
    patient: Reference,
    recorded: date,
    custodian: Reference,
    recipient: Reference,
    permit: bool,
) -> Resource:
    """A base R4 privacy Consent: ``recipient`` may (``permit``) or may not be sent data.

    ``status`` active; ``scope`` patient-privacy; ``category`` LOINC 59284-0; ``dateTime`` the
    day it was recorded; ``organization`` the custodian; ``policyRule`` v3-ActCode ``OPTIN``
    (permit) or ``OPTOUT`` (deny), which satisfies R4 invariant ppc-1 (policy or policyRule);
    ``provision`` of type ``permit``/``deny`` for the action ``disclose`` with ``recipient`` as
    the information recipient (``IRCP``). No purpose, data or period: which information is
    meant is the caller's to document, and the consent has no end date. No ``meta.profile``
    (no UK Core Consent profile is shipped).
    """
    return {
        "resourceType": "Consent",
        "id": resource_id,
        "identifier": [dict(identifier)],
        "status": "active",
        "scope": {"coding": [{"system": CONSENT_SCOPE, "code": "patient-privacy"}]},
        "category": [{"coding": [{"system": LOINC, "code": CONSENT_CATEGORY_LOINC}]}],
        "patient": dict(patient),
        "dateTime": fhir_date(recorded),
        "organization": [dict(custodian)],
        "policyRule": {
            "coding": [{"system": V3_ACT_CODE, "code": "OPTIN" if permit else "OPTOUT"}]
        },
        "provision": {
            "type": "permit" if permit else "deny",
            "actor": [
                {
                    "role": {
                        "coding": [
                            {
                                "system": V3_PARTICIPATION_TYPE,
                                "code": "IRCP",
                                "display": "information recipient",
                            }
                        ]
                    },
                    "reference": dict(recipient),
                }
            ],
            "action": [{"coding": [{"system": CONSENT_ACTION, "code": "disclose"}]}],
        },
    }


__all__ = [
    "QUESTIONNAIRE_RESPONSE_PROFILE",
    "SCORE_OBSERVATION_PROFILE",
    "SERVICE_REQUEST_PROFILE",
    "Reference",
    "Resource",
    "answered_items",
    "coding",
    "concept",
    "consent_resource",
    "entry",
    "fhir_date",
    "frozen",
    "json_number",
    "keyed_entry",
    "meta",
    "nhs_number_identifier",
    "observation_category",
    "ods_reference",
    "patient_resource",
    "practitioner_resource",
    "practitioner_role_resource",
    "questionnaire_response",
    "questionnaire_url",
    "reference",
    "score_observation",
    "score_quantity",
    "transaction_bundle",
    "urn",
]
