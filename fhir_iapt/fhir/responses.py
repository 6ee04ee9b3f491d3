"""Build: a QuestionnaireResponse (a session measure) back to the referring clinic.

The response itself plus its score Observation, derived from it, in one transaction Bundle.
Consent is not checked here: every record passes the one gate in :mod:`fhir_iapt.consent`
(called by :mod:`fhir_iapt.pipeline`) before it is built.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from fhir_iapt.errors import Location
from fhir_iapt.fhir.common import (
    SCORE_OBSERVATION_PROFILE,
    Resource,
    concept,
    entry,
    meta,
    observation_category,
    reference,
    transaction_bundle,
)
from fhir_iapt.fhir.episode import quantity
from fhir_iapt.fhir.ids import record_identifier, record_resource_id
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions
from fhir_iapt.mapping.response import ResponseRecord, read_response
from fhir_iapt.scoring.responses import ScoredResponse


def score_questionnaire_response(
    qr: dict[str, Any],
    *,
    location: Location | None = None,
    options: BuildOptions = DEFAULT_OPTIONS,
) -> dict[str, Any]:
    """Read, score and build in one call. Consent is NOT checked here: to send outcomes, go
    through :func:`fhir_iapt.pipeline.convert_stream` with the ``questionnaire-response``
    mapping and a consent register.

    Raises RecordError / ScoringError located by FHIRPath for anything malformed.
    """
    return build_response_bundle(read_response(qr, location or Location()), options)


def build_response_bundle(
    record: ResponseRecord, options: BuildOptions = DEFAULT_OPTIONS
) -> dict[str, Any]:
    """The bundle for a read QuestionnaireResponse (:func:`build_questionnaire_response_bundle`)."""
    return build_questionnaire_response_bundle(
        record.resource, record.scored, options, identifier=record.identifier
    )


def build_questionnaire_response_bundle(
    qr: Mapping[str, Any],
    scored: ScoredResponse,
    options: BuildOptions = DEFAULT_OPTIONS,
    *,
    identifier: tuple[str, str],
) -> dict[str, Any]:
    """A transaction Bundle with the QuestionnaireResponse and its score Observation.

    ``scored`` is what :func:`~fhir_iapt.scoring.responses.read_questionnaire_response` read
    from ``qr``. The response is sent as received (only its ``id`` is replaced by our
    deterministic one and an ``identifier`` added when it had none); the Observation copies its
    subject, author (as performer) and basedOn, takes ``authored`` as its effective time and is
    ``derivedFrom`` it. Consent is not checked here.
    """
    qr_ident = {"system": identifier[0], "value": identifier[1]}
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
    observation["valueQuantity"] = quantity(Decimal(scored.score.total))
    observation["derivedFrom"] = [qr_ref]
    entries = [
        entry(response, identifier=qr_ident, method=options.request_method),
        entry(observation, identifier=obs_ident, method=options.request_method),
    ]
    bundle_id = record_resource_id(ns, system, value, "Bundle")
    return transaction_bundle(bundle_id, entries)


__all__ = [
    "build_questionnaire_response_bundle",
    "build_response_bundle",
    "score_questionnaire_response",
]
