"""Build: an IAPT episode's outcome back to the referring clinic, as a transaction Bundle.

An **episode** (:class:`~fhir_iapt.scoring.episode.EpisodeRecord`, one care pathway) becomes
score Observations for the first and last PHQ-9, GAD-7, ADSM and WSAS recorded, and one
**episode-outcome Observation** (code ``episode-outcome`` of ``CodeSystem-iapt-outcome``) with a
component per flag (``valueBoolean``, or ``dataAbsentReason`` + the reason in words) and
``derivedFrom`` the scores of the two measures the flags compared. (A QuestionnaireResponse's
bundle: :mod:`fhir_iapt.fhir.responses`.)

Every Observation has ``basedOn`` the referral's ServiceRequest by the identifier it was sent
with, ``subject`` the patient by NHS number and ``performer`` the IAPT service by ODS code: all
logical references, so the clinic's server links them to what it already holds. Ids and
conditional-create keys are deterministic (:mod:`fhir_iapt.fhir.ids`), keyed by the pathway id:
re-running an export creates no duplicates.

Consent is not checked here: every record passes the one gate in :mod:`fhir_iapt.consent`
(called by :mod:`fhir_iapt.pipeline`) before it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fhir_iapt.fhir.common import (
    SCORE_OBSERVATION_PROFILE,
    Reference,
    Resource,
    coding,
    concept,
    entry,
    fhir_date,
    json_number,
    meta,
    observation_category,
    ods_reference,
    reference,
    transaction_bundle,
)
from fhir_iapt.fhir.ids import record_identifier, record_resource_id
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions
from fhir_iapt.scoring.episode import EpisodeRecord
from fhir_iapt.scoring.measures import MeasureSpec, outcome_rules
from fhir_iapt.scoring.recovery import FLAG_NAMES, EpisodeOutcome, FlagName, derive_outcome
from fhir_iapt.systems import DATA_ABSENT_REASON, NHS_NUMBER, UCUM, project_url

#: Our CodeSystem of the outcome Observation's code and its component codes.
IAPT_OUTCOME_SYSTEM = project_url("CodeSystem", "iapt-outcome")
EPISODE_OUTCOME_CODE = "episode-outcome"
EPISODE_OUTCOME_PROFILE = project_url("StructureDefinition", "IaptEpisodeOutcomeObservation")

#: Displays of the CodeSystem's concepts (profiles/CodeSystem-iapt-outcome.json).
OUTCOME_DISPLAYS: Mapping[str, str] = {
    EPISODE_OUTCOME_CODE: "IAPT episode outcome",
    "caseness-at-start": "Caseness at start",
    "finished-treatment": "Finished a course of treatment",
    "recovery": "Recovery",
    "reliable-improvement": "Reliable improvement",
    "reliable-deterioration": "Reliable deterioration",
    "reliable-recovery": "Reliable recovery",
}


def quantity(value: Decimal) -> dict[str, Any]:
    return {"value": json_number(value), "unit": "{score}", "system": UCUM, "code": "{score}"}


def _patient(nhs_number: str) -> Reference:
    return {"type": "Patient", "identifier": {"system": NHS_NUMBER, "value": nhs_number}}


def _referral(episode: EpisodeRecord) -> Reference:
    return {
        "type": "ServiceRequest",
        "identifier": {
            "system": episode.referral_identifier_system,
            "value": episode.referral_identifier,
        },
    }


class _Entries:
    """Collects an episode's entries with deterministic ids and identifiers."""

    def __init__(self, episode: EpisodeRecord, options: BuildOptions) -> None:
        self.episode = episode
        self.options = options
        self.items: list[dict[str, Any]] = []

    def own_id(self, role: str) -> str:
        return record_resource_id(
            self.options.id_namespace, self.episode.source_system, self.episode.pathway_id, role
        )

    def identifier(self, role: str) -> dict[str, str]:
        return record_identifier(self.episode.source_system, self.episode.pathway_id, role)

    def add(self, resource: Resource, identifier: Mapping[str, str]) -> Reference:
        self.items.append(
            entry(resource, identifier=identifier, method=self.options.request_method)
        )
        return reference(resource)


def _score_observation(
    entries: _Entries, spec: MeasureSpec, which: str, value: Decimal
) -> Reference:
    episode = entries.episode
    role = f"Observation/score/{spec.name}/{which}"
    identifier = entries.identifier(role)
    when = episode.first_score_date if which == "first" else episode.last_score_date
    resource: Resource = {
        "resourceType": "Observation",
        "id": entries.own_id(role),
        "meta": meta(SCORE_OBSERVATION_PROFILE),
        "identifier": [identifier],
        "basedOn": [_referral(episode)],
        "status": "final",
        "category": [observation_category("survey")],
        "code": concept((c.to_fhir() for c in spec.codes), spec.title),
        "subject": _patient(episode.nhs_number),
    }
    if when is not None:
        resource["effectiveDateTime"] = fhir_date(when)
    resource["performer"] = [ods_reference(episode.service_ods)]
    resource["valueQuantity"] = quantity(value)
    resource["note"] = [{"text": f"{which.capitalize()} score of the care pathway"}]
    return entries.add(resource, identifier)


def _component(name: FlagName, outcome: EpisodeOutcome) -> dict[str, Any]:
    flag = outcome.flags[name]
    out: dict[str, Any] = {
        "code": {"coding": [coding(IAPT_OUTCOME_SYSTEM, name, OUTCOME_DISPLAYS[name])]}
    }
    if flag.value is not None:
        out["valueBoolean"] = flag.value
    else:
        absent: dict[str, Any] = {"coding": [coding(DATA_ABSENT_REASON, flag.absent or "unknown")]}
        if flag.reason:
            absent["text"] = flag.reason
        out["dataAbsentReason"] = absent
    return out


def _method_text(outcome: EpisodeOutcome) -> str:
    text = (
        "NHS Talking Therapies outcome definitions comparing first and last "
        f"{outcome.depression_measure} and {outcome.anxiety_measure} scores"
    )
    if outcome.anxiety_fallback:
        text += f" (GAD-7 used: {outcome.anxiety_fallback})"
    rules = outcome_rules()
    unverified = [
        f"{name} cut-off and reliable change index"
        for name in outcome.measures_used
        if "caseness" in rules.measure(name).unverified
    ]
    unverified += [k.removesuffix("_status") for k, v in rules.status.items() if v == "U"]
    if unverified:
        text += "; unverified defaults applied: " + ", ".join(unverified)
    return text


def build_outcome_bundle(
    episode: EpisodeRecord,
    outcome: EpisodeOutcome | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """The transaction Bundle of one episode's scores and outcome (consent NOT checked here:
    call :func:`episode_result`, which does)."""
    outcome = outcome or derive_outcome(episode)
    rules = outcome_rules()
    entries = _Entries(episode, options)
    used: list[Reference] = []
    for name, pair in episode.scores().items():
        spec = rules.measure(name)
        for which in ("first", "last"):
            value = pair.first if which == "first" else pair.last
            if value is None:
                continue
            ref = _score_observation(entries, spec, which, value)
            if name in outcome.measures_used:
                used.append(ref)

    role = "Observation/outcome"
    identifier = entries.identifier(role)
    resource: Resource = {
        "resourceType": "Observation",
        "id": entries.own_id(role),
        "meta": meta(EPISODE_OUTCOME_PROFILE),
        "identifier": [identifier],
        "basedOn": [_referral(episode)],
        "status": "final" if episode.discharge is not None else "preliminary",
        "category": [observation_category("survey")],
        "code": concept(
            [
                coding(
                    IAPT_OUTCOME_SYSTEM,
                    EPISODE_OUTCOME_CODE,
                    OUTCOME_DISPLAYS[EPISODE_OUTCOME_CODE],
                )
            ]
        ),
        "subject": _patient(episode.nhs_number),
    }
    start = episode.referral_received or episode.first_score_date
    end = episode.discharge or episode.last_score_date
    if start is not None or end is not None:
        period: dict[str, str] = {}
        if start is not None:
            period["start"] = fhir_date(start)
        if end is not None:
            period["end"] = fhir_date(end)
        resource["effectivePeriod"] = period
    resource["performer"] = [ods_reference(episode.service_ods)]
    resource["method"] = {"text": _method_text(outcome)}
    if used:
        resource["derivedFrom"] = used
    resource["component"] = [_component(name, outcome) for name in FLAG_NAMES]
    entries.add(resource, identifier)
    return transaction_bundle(entries.own_id("Bundle"), entries.items)


__all__ = [
    "EPISODE_OUTCOME_CODE",
    "EPISODE_OUTCOME_PROFILE",
    "IAPT_OUTCOME_SYSTEM",
    "OUTCOME_DISPLAYS",
    "build_outcome_bundle",
    "quantity",
]
