"""Build: one canonical :class:`~fhir_iapt.records.ReferralRecord` -> one transaction Bundle.

The Bundle holds, in this order (issue 2):

* the **Patient** (UK Core; id keyed by NHS number, shared across records);
* the referring clinician, when the record names one: a **Practitioner** (id keyed by the
  clinician's identifier when there is one, else by the record) and a **PractitionerRole** tying
  them to the clinic's ODS code. That role is the requester, the QuestionnaireResponse author and
  the Observation performer; with no clinician named, the clinic itself (a logical Organization
  reference by ODS code) is;
* a **Condition** per long-term condition (SNOMED CT, ``problem-list-item``, active);
* a context **Observation** per measurement (codes, units and categories from
  ``mappings/tables/context.yaml``: quantities as UCUM Quantities, MRC grade and NYHA class as
  coded values);
* per screening instrument, a **QuestionnaireResponse** (against the shipped Questionnaire) and a
  score **Observation** derived from it (total from :func:`fhir_iapt.scoring.score_instrument`);
* when the clinic recorded the patient's answer (``consent_to_share_outcomes`` True or False), a
  **Consent** (base R4, :func:`~fhir_iapt.fhir.common.consent_resource`): the patient permits
  (``OPTIN``) or refuses (``OPTOUT``) that their therapy *outcomes* be disclosed back to the
  referring clinic. Without it the IAPT service would never learn what the clinic recorded. It
  is information for the IAPT service, not the adapter's own gate: outcomes are sent back only
  for episodes whose IAPT export says ``consent_share_outcomes = Y``
  (:mod:`fhir_iapt.fhir.outcomes`), whatever this Consent said at referral;
* the **ServiceRequest** (the referral itself), identified by the clinic's record id, whose
  ``reasonReference`` points at the Conditions and ``supportingInfo`` at everything else
  (context and score Observations, QuestionnaireResponses, the Consent).

Whether a visit is referred at all (decision, consent) is decided before this module is called
(:func:`fhir_iapt.pipeline.referral_result`); here every record becomes a bundle.

Ids, identifiers and conditional-create keys are deterministic (:mod:`fhir_iapt.fhir.ids`), so
the same record always gives byte-identical JSON.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Any

import orjson

from fhir_iapt._data import load_table
from fhir_iapt.errors import Issue, RecordError
from fhir_iapt.fhir.common import (
    SERVICE_REQUEST_PROFILE,
    Reference,
    Resource,
    answered_items,
    coding,
    concept,
    consent_resource,
    entry,
    fhir_date,
    frozen,
    json_number,
    keyed_entry,
    meta,
    observation_category,
    ods_reference,
    patient_resource,
    practitioner_resource,
    practitioner_role_resource,
    questionnaire_response,
    score_observation,
    transaction_bundle,
)
from fhir_iapt.fhir.ids import (
    RecordIds,
    cached_shared_resource_id,
    project_identifier_system,
    shared_resource_id,
)
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions, RequestMethod
from fhir_iapt.records import ContextValue, ReferralRecord
from fhir_iapt.scoring.instruments import instrument_spec
from fhir_iapt.systems import (
    NHS_NUMBER,
    SNOMED,
    SOURCE_OF_SERVICE_REQUEST_EXT,
    ukcore_profile,
)

CONDITION_CLINICAL = "http://terminology.hl7.org/CodeSystem/condition-clinical"
CONDITION_CATEGORY = "http://terminology.hl7.org/CodeSystem/condition-category"

#: Build-stage record errors (the mapping should have caught these; the builder says so anyway).
UNKNOWN_CODED_VALUE = "FI391"
REFERRER_WITHOUT_SYSTEM = "FI392"


@dataclass(frozen=True, slots=True)
class _ContextKind:
    code: dict[str, Any]
    category: str
    unit: dict[str, str] | None
    values: Mapping[str, dict[str, str]]
    #: ``code`` and ``[observation_category(category)]``, each :func:`frozen`
    code_json: orjson.Fragment
    category_json: orjson.Fragment


@cache
def _context_kinds() -> Mapping[str, _ContextKind]:
    table = load_table("context")["kinds"]
    kinds: dict[str, _ContextKind] = {}
    for name, raw in table.items():
        code = raw["code"]
        unit = raw.get("unit")
        code_value = {
            "coding": [coding(str(code["system"]), str(code["code"]), code.get("display"))]
        }
        kinds[str(name)] = _ContextKind(
            code=code_value,
            category=str(raw["category"]),
            unit={k: str(v) for k, v in unit.items()} if unit else None,
            values={
                str(key): coding(str(v["system"]), str(v["code"]), v.get("display"))
                for key, v in (raw.get("values") or {}).items()
            },
            code_json=frozen(code_value),
            category_json=frozen([observation_category(str(raw["category"]))]),
        )
    return kinds


def _context_value(
    record: ReferralRecord, value: ContextValue, kind: _ContextKind
) -> tuple[str, Any]:
    """``(value[x] name, value)`` for one context measurement."""
    if kind.values:
        key = str(value.value).strip()
        found = kind.values.get(key)
        if found is None:
            raise RecordError(
                f"{value.kind} value is not one of the coded values in context.yaml",
                issues=[
                    Issue(
                        diagnostics=(
                            f"{value.kind} value is not one of the coded values in context.yaml"
                        ),
                        code="code-invalid",
                        location=record.location.with_field(value.kind),
                        error_code=UNKNOWN_CODED_VALUE,
                    )
                ],
                location=record.location.with_field(value.kind),
                error_code=UNKNOWN_CODED_VALUE,
            )
        return "valueCodeableConcept", {"coding": [dict(found)]}
    if isinstance(value.value, str):
        raise RecordError(
            f"{value.kind} needs a number",
            location=record.location.with_field(value.kind),
            error_code=UNKNOWN_CODED_VALUE,
        )
    quantity: dict[str, Any] = {"value": json_number(value.value)}
    if kind.unit is not None:
        quantity.update(kind.unit)
    return "valueQuantity", quantity


class _Bundle:
    """Collects entries for one record, minting deterministic ids, identifiers and keys."""

    __slots__ = ("entries", "ids", "method", "ns", "put")

    def __init__(self, record: ReferralRecord, options: BuildOptions) -> None:
        self.ns = options.id_namespace
        self.method = options.request_method
        self.put = options.request_method == "put"
        self.ids = RecordIds(options.id_namespace, record.source_system, record.record_id)
        self.entries: list[Any] = []  # entry dicts, or frozen entries (_shared_referrer)

    def own_id(self, role: str) -> str:
        return self.ids.resource_id(role)

    def own_identifier(self, role: str) -> dict[str, str]:
        return self.ids.identifier(role)

    def add(self, resource: Resource, identifier: Mapping[str, str]) -> Reference:
        """Add a resource keyed by any identifier (shared resources)."""
        self.entries.append(entry(resource, identifier=identifier, method=self.method))
        return {"reference": f"urn:uuid:{resource['id']}"}

    def add_own(self, resource: Resource, role: str | None) -> Reference:
        """Add one of the record's own resources (identifier ``record_identifier(.., role)``)."""
        key = None if self.put else self.ids.if_none_exist(role)
        added = keyed_entry(resource, key, self.method)
        self.entries.append(added)
        return {"reference": added["fullUrl"]}


def _requester(record: ReferralRecord, bundle: _Bundle) -> Reference:
    """Add the referring clinician (Practitioner + PractitionerRole) and return who acted.

    With no clinician named, the clinic (by ODS code) is the requester and author.
    """
    referral = record.referral
    if not (referral.referrer_id or referral.referrer_name):
        return ods_reference(record.clinic_ods)
    if referral.referrer_id:
        if not referral.referrer_id_system:
            raise RecordError(
                "referrer_id needs referrer_id_system (the identifier's namespace)",
                location=record.location.with_field("referrer_id_system"),
                error_code=REFERRER_WITHOUT_SYSTEM,
            )
        entries, actor = _shared_referrer(
            bundle.ns,
            bundle.method,
            referral.referrer_id_system,
            referral.referrer_id,
            referral.referrer_name,
            record.clinic_ods,
        )
        bundle.entries.extend(entries)
        return actor
    found, actor = _referrer_entries(
        bundle.ns,
        bundle.method,
        bundle.own_id("Practitioner"),
        bundle.own_identifier("Practitioner"),
        referral.referrer_name,
        record.clinic_ods,
    )
    bundle.entries.extend(found)
    return actor


def _referrer_entries(
    ns: uuid.UUID,
    method: RequestMethod,
    practitioner_id: str,
    practitioner_identifier: dict[str, str],
    name: str | None,
    clinic_ods: str,
) -> tuple[list[dict[str, Any]], Reference]:
    """The Practitioner and PractitionerRole entries of a referrer, and the role's reference."""
    practitioner = practitioner_resource(
        practitioner_id, identifier=practitioner_identifier, name=name
    )
    found = [entry(practitioner, identifier=practitioner_identifier, method=method)]
    practitioner_ref = {"reference": found[0]["fullUrl"]}
    # One role per (practitioner, clinic): shared across records like the practitioner.
    role_id = cached_shared_resource_id(ns, "PractitionerRole", practitioner_id, clinic_ods)
    role_identifier = {"system": _ROLE_SYSTEM, "value": role_id}
    role = practitioner_role_resource(
        role_id,
        identifier=role_identifier,
        practitioner=practitioner_ref,
        organization=ods_reference(clinic_ods),
    )
    found.append(entry(role, identifier=role_identifier, method=method))
    return found, {"reference": found[1]["fullUrl"]}


@lru_cache(maxsize=4096)
def _shared_referrer(
    ns: uuid.UUID,
    method: RequestMethod,
    system: str,
    value: str,
    name: str | None,
    clinic_ods: str,
) -> tuple[tuple[orjson.Fragment, ...], Reference]:
    """:func:`_referrer_entries` of a clinician with a real identifier, :func:`frozen`.

    The same clinician at the same clinic gives the same two entries in every record, so they
    are built and serialised once (bounded: memory stays flat). The returned reference is
    shared: a bundle holding it is only serialised (see :func:`frozen`).
    """
    practitioner_id = cached_shared_resource_id(ns, "Practitioner", system, value)
    found, actor = _referrer_entries(
        ns, method, practitioner_id, {"system": system, "value": value}, name, clinic_ods
    )
    return tuple(frozen(item) for item in found), actor


def _share_outcomes_consent(
    record: ReferralRecord, bundle: _Bundle, subject: Reference
) -> Reference | None:
    """Add the clinic's recorded consent to share therapy outcomes back, if it recorded one.

    ``True`` permits and ``False`` denies disclosure of outcomes to the referring clinic (by
    ODS code, also the Consent's custodian); ``None`` (not recorded) adds nothing rather than
    guessing. The adapter itself never reads this Consent: whether outcomes flow back is
    decided by the IAPT export's ``consent_share_outcomes`` column.
    """
    answer = record.referral.consent_to_share_outcomes
    if answer is None:
        return None
    role = "Consent/share-outcomes"
    consent = consent_resource(
        bundle.own_id(role),
        identifier=bundle.own_identifier(role),
        patient=subject,
        recorded=record.event_date,
        custodian=ods_reference(record.clinic_ods),
        recipient=ods_reference(record.clinic_ods),
        permit=answer,
    )
    return bundle.add_own(consent, role)


_ROLE_SYSTEM = project_identifier_system("practitioner-role")
# Constant parts, serialised once (:func:`frozen`): the assembled bundle is only serialised.
_CONDITION_META = frozen({"profile": [ukcore_profile("Condition")]})
_CONDITION_ACTIVE = frozen({"coding": [{"system": CONDITION_CLINICAL, "code": "active"}]})
_CONDITION_PROBLEM = frozen(
    [{"coding": [{"system": CONDITION_CATEGORY, "code": "problem-list-item"}]}]
)
_OBSERVATION_META = frozen({"profile": [ukcore_profile("Observation")]})
_SERVICE_REQUEST_META = frozen(meta(SERVICE_REQUEST_PROFILE))


def build_referral_bundle(
    record: ReferralRecord, options: BuildOptions = DEFAULT_OPTIONS
) -> dict[str, Any]:
    """The transaction Bundle for one referred, consented visit (see the module docstring).

    Raises :class:`~fhir_iapt.errors.RecordError` (a :class:`~fhir_iapt.errors.ScoringError`
    for screenings) when the record cannot be expressed: the caller turns it into a rejection.
    A plain dict of its own: :func:`referral_bundle_tree` serialised and parsed back (one
    builder, two forms).
    """
    result: dict[str, Any] = orjson.loads(orjson.dumps(referral_bundle_tree(record, options)))
    return result


def referral_bundle_tree(
    record: ReferralRecord, options: BuildOptions = DEFAULT_OPTIONS
) -> dict[str, Any]:
    """:func:`build_referral_bundle` as a tree for ``orjson.dumps`` only: it may hold
    :func:`~fhir_iapt.fhir.common.frozen` parts and parts shared with other bundles."""
    bundle = _Bundle(record, options)
    event_date = record.event_date
    event_day = fhir_date(event_date)
    patient = record.patient

    patient_identifier = {"system": NHS_NUMBER, "value": patient.nhs_number}
    patient_id = shared_resource_id(bundle.ns, "Patient", NHS_NUMBER, patient.nhs_number)
    subject = bundle.add(patient_resource(patient, patient_id), patient_identifier)
    actor = _requester(record, bundle)
    actor_is_person = "reference" in actor

    reasons: list[Reference] = []
    for index, condition in enumerate(record.conditions):
        role = f"Condition/{index}"
        resource: Resource = {
            "resourceType": "Condition",
            "id": bundle.own_id(role),
            "meta": _CONDITION_META,
            "identifier": [bundle.own_identifier(role)],
            "clinicalStatus": _CONDITION_ACTIVE,
            "category": _CONDITION_PROBLEM,
            "code": concept([coding(SNOMED, condition.snomed, condition.display)], condition.text),
            "subject": subject,
            "recordedDate": event_day,
        }
        if actor_is_person:
            resource["recorder"] = actor
        reasons.append(bundle.add_own(resource, role))

    supporting: list[Reference] = []
    kinds = _context_kinds()
    kind_counts: dict[str, int] = {}
    for value in record.context:
        n = kind_counts.get(value.kind, 0)
        kind_counts[value.kind] = n + 1
        role = f"Observation/{value.kind}/{n}"
        kind = kinds[value.kind]
        value_key, value_value = _context_value(record, value, kind)
        observation: Resource = {
            "resourceType": "Observation",
            "id": bundle.own_id(role),
            "meta": _OBSERVATION_META,
            "identifier": [bundle.own_identifier(role)],
            "status": "final",
            "category": kind.category_json,
            "code": kind.code_json,
            "subject": subject,
            "effectiveDateTime": fhir_date(value.effective) if value.effective else event_day,
            "performer": [actor],
            value_key: value_value,
        }
        supporting.append(bundle.add_own(observation, role))

    seen: dict[str, int] = {}
    for screening in record.screenings:
        spec = instrument_spec(screening.instrument, location=record.location)
        # One pass: the items and the total (score_instrument's, tested), raising its
        # ScoringError for answers that cannot be scored.
        items, total = answered_items(
            spec, screening.answers, location=record.location, fragments=True
        )
        n = seen.get(spec.name, 0)
        seen[spec.name] = n + 1
        suffix = spec.name if n == 0 else f"{spec.name}/{n}"
        when = screening.date or event_date
        qr_role = f"QuestionnaireResponse/{suffix}"
        qr = questionnaire_response(
            bundle.own_id(qr_role),
            identifier=bundle.own_identifier(qr_role),
            spec=spec,
            answers=screening.answers,
            subject=subject,
            authored=when,
            author=actor,
            items=items,
            fragments=True,
        )
        qr_ref = bundle.add_own(qr, qr_role)
        obs_role = f"Observation/score/{suffix}"
        obs = score_observation(
            bundle.own_id(obs_role),
            identifier=bundle.own_identifier(obs_role),
            spec=spec,
            total=total,
            subject=subject,
            effective=when,
            performer=actor,
            derived_from=qr_ref,
            fragments=True,
        )
        supporting.append(qr_ref)
        supporting.append(bundle.add_own(obs, obs_role))

    consent = _share_outcomes_consent(record, bundle, subject)
    if consent is not None:
        supporting.append(consent)

    referral = record.referral
    service_request: Resource = {
        "resourceType": "ServiceRequest",
        "id": bundle.own_id("ServiceRequest"),
        "meta": _SERVICE_REQUEST_META,
    }
    if referral.source_snomed:
        service_request["extension"] = [
            {
                "url": SOURCE_OF_SERVICE_REQUEST_EXT,
                "valueCodeableConcept": {"coding": [coding(SNOMED, referral.source_snomed)]},
            }
        ]
    service_request["identifier"] = [bundle.ids.identifier()]
    service_request["status"] = "active"
    service_request["intent"] = "order"
    if options.service_category:
        service_request["category"] = [{"coding": [c.to_fhir()]} for c in options.service_category]
    service_request["priority"] = options.priority
    service_request["code"] = {"coding": [options.service_code.to_fhir()]}
    service_request["subject"] = subject
    service_request["authoredOn"] = event_day
    service_request["requester"] = actor
    if referral.performer_ods:
        service_request["performer"] = [ods_reference(referral.performer_ods)]
    if reasons:
        service_request["reasonReference"] = reasons
    if supporting:
        service_request["supportingInfo"] = supporting
    if referral.reason:
        service_request["note"] = [{"text": referral.reason}]
    bundle.add_own(service_request, None)

    return transaction_bundle(bundle.own_id("Bundle"), bundle.entries)


__all__ = ["build_referral_bundle", "referral_bundle_tree"]
