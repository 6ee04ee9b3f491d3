"""Build: IAPT outcomes back to the referring clinic, as transaction Bundles (issue 3).

Two inputs, one shape of output:

- an **episode** (:class:`~fhir_iapt.scoring.episode.EpisodeRecord`, one care pathway) becomes
  score Observations for the first and last PHQ-9, GAD-7, ADSM and WSAS recorded, and one
  **episode-outcome Observation** (code ``episode-outcome`` of ``CodeSystem-iapt-outcome``)
  with a component per flag (``valueBoolean``, or ``dataAbsentReason`` + the reason in words)
  and ``derivedFrom`` the scores of the two measures the flags compared;
- a **QuestionnaireResponse** (session measure) becomes the response itself plus its score
  Observation, derived from it (:func:`score_questionnaire_response`).

Every Observation has ``basedOn`` the referral's ServiceRequest by the identifier it was sent
with, ``subject`` the patient by NHS number and ``performer`` the IAPT service by ODS code: all
logical references, so the clinic's server links them to what it already holds. Ids and
conditional-create keys are deterministic (:mod:`fhir_iapt.fhir.ids`), keyed by the pathway id:
re-running an export creates no duplicates.

Consent gates both sides with the same reason codes (:data:`CONSENT_SKIPS`):
:func:`episode_result` (what the pipeline calls for the ``episode`` target) builds a bundle only
for ``consent_share_outcomes == "Y"``; a QuestionnaireResponse carries no consent, so
:func:`fhir_iapt.outcomes.convert_questionnaire_responses` looks it up in a
:class:`~fhir_iapt.consent.ConsentRegister` before calling
:func:`build_questionnaire_response_bundle`. Otherwise the result is a
:class:`~fhir_iapt.results.Skipped` with the reason, and nothing leaves the adapter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import orjson

from fhir_iapt.errors import Location
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
from fhir_iapt.fhir.ids import project_identifier_system, record_identifier, record_resource_id
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions
from fhir_iapt.results import Converted, Skipped
from fhir_iapt.scoring.episode import EpisodeRecord
from fhir_iapt.scoring.measures import MeasureSpec, outcome_rules
from fhir_iapt.scoring.outcomes import FLAG_NAMES, EpisodeOutcome, FlagName, derive_outcome
from fhir_iapt.scoring.responses import ScoredResponse, read_questionnaire_response
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

#: Skipped.reason codes for an episode whose outcomes may not be shared.
CONSENT_SKIPS: Mapping[str | None, tuple[str, str]] = {
    "N": ("outcomes-consent-withheld", "the patient did not agree to share outcomes"),
    "W": ("outcomes-consent-withdrawn", "the patient withdrew consent to share outcomes"),
    None: ("outcomes-consent-not-recorded", "consent to share outcomes was not recorded"),
}


def _quantity(value: Decimal) -> dict[str, Any]:
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
        self.items.append(entry(resource, identifier=identifier,
                                method=self.options.request_method))
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
    resource["valueQuantity"] = _quantity(value)
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
        absent: dict[str, Any] = {
            "coding": [coding(DATA_ABSENT_REASON, flag.absent or "unknown")]
        }
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
            [coding(IAPT_OUTCOME_SYSTEM, EPISODE_OUTCOME_CODE,
                    OUTCOME_DISPLAYS[EPISODE_OUTCOME_CODE])]
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


def episode_result(
    record: EpisodeRecord, location: Location, options: BuildOptions = DEFAULT_OPTIONS
) -> Converted | Skipped:
    """What the pipeline calls for an ``episode`` record: a bundle only with consent ``Y``."""
    if record.consent != "Y":
        reason, detail = CONSENT_SKIPS[record.consent]
        return Skipped(record.key, reason, detail, location)
    bundle = build_outcome_bundle(record, derive_outcome(record), options)
    return Converted(record.key, bundle, location, "outcome")


# --- QuestionnaireResponses ---------------------------------------------------------------------

#: Identifier system for QuestionnaireResponses that arrive without a business identifier.
QR_CONTENT_SYSTEM = project_identifier_system("questionnaire-response-sha256")


def _qr_identifier(qr: Mapping[str, Any], ident: dict[str, str] | None) -> dict[str, str]:
    if ident is not None:
        return ident
    digest = hashlib.sha256(orjson.dumps(qr, option=orjson.OPT_SORT_KEYS)).hexdigest()
    return {"system": QR_CONTENT_SYSTEM, "value": digest}


def questionnaire_response_key(qr: Mapping[str, Any]) -> str:
    """The natural key of a QuestionnaireResponse: ``<identifier system>|<value>``."""
    raw = qr.get("identifier")
    if isinstance(raw, dict) and isinstance(raw.get("system"), str) and isinstance(
        raw.get("value"), str
    ):
        return f"{raw['system']}|{raw['value']}"
    ident = _qr_identifier(qr, None)
    return f"{ident['system']}|{ident['value']}"


def score_questionnaire_response(
    qr: dict[str, Any],
    *,
    location: Location | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """Read, score and build in one call (consent NOT checked here: the library entry point
    :func:`fhir_iapt.outcomes.convert_questionnaire_responses` checks it before building).

    Raises RecordError / ScoringError located by FHIRPath for anything malformed.
    """
    scored = read_questionnaire_response(qr, location=location)
    return build_questionnaire_response_bundle(qr, scored, options)


def build_questionnaire_response_bundle(
    qr: Mapping[str, Any], scored: ScoredResponse, options: BuildOptions = DEFAULT_OPTIONS
) -> dict[str, Any]:
    """A transaction Bundle with the QuestionnaireResponse and its score Observation.

    ``scored`` is what :func:`~fhir_iapt.scoring.responses.read_questionnaire_response` read
    from ``qr``. The response is sent as received (only its ``id`` is replaced by our
    deterministic one and an ``identifier`` added when it had none); the Observation copies its
    subject, author (as performer) and basedOn, takes ``authored`` as its effective time and is
    ``derivedFrom`` it. Consent is not checked here.
    """
    qr_ident = _qr_identifier(qr, scored.identifier)
    ns = options.id_namespace
    system, value = qr_ident["system"], qr_ident["value"]

    response: Resource = dict(qr)
    response["id"] = record_resource_id(ns, system, value, "QuestionnaireResponse")
    if scored.identifier is None:
        response["identifier"] = dict(qr_ident)
    response.pop("meta", None)
    qr_ref = reference(response)

    role = f"Observation/score/{scored.spec.name}"
    obs_ident = record_identifier(system, value, role)
    observation: Resource = {
        "resourceType": "Observation",
        "id": record_resource_id(ns, system, value, role),
        "meta": meta(SCORE_OBSERVATION_PROFILE),
        "identifier": [obs_ident],
    }
    if scored.based_on:
        observation["basedOn"] = [dict(b) for b in scored.based_on]
    observation["status"] = "final"
    observation["category"] = [observation_category("survey")]
    observation["code"] = concept(t.to_fhir() for t in scored.spec.totals)
    observation["subject"] = dict(scored.subject)
    if scored.authored:
        observation["effectiveDateTime"] = scored.authored
    if scored.author is not None:
        observation["performer"] = [dict(scored.author)]
    observation["valueQuantity"] = _quantity(Decimal(scored.score.total))
    observation["derivedFrom"] = [qr_ref]
    entries = [
        entry(response, identifier=qr_ident, method=options.request_method),
        entry(observation, identifier=obs_ident, method=options.request_method),
    ]
    bundle_id = record_resource_id(ns, system, value, "Bundle")
    return transaction_bundle(bundle_id, entries)


__all__ = [
    "CONSENT_SKIPS",
    "EPISODE_OUTCOME_CODE",
    "EPISODE_OUTCOME_PROFILE",
    "IAPT_OUTCOME_SYSTEM",
    "OUTCOME_DISPLAYS",
    "QR_CONTENT_SYSTEM",
    "build_outcome_bundle",
    "build_questionnaire_response_bundle",
    "episode_result",
    "questionnaire_response_key",
    "score_questionnaire_response",
]
