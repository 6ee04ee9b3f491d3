"""The ``questionnaire-response`` target: a FHIR QuestionnaireResponse -> :class:`ResponseRecord`.

A session measure sent as FHIR (``input: {format: fhir}``, read by
:mod:`fhir_iapt.sources._fhir`) is already structured, so this target is *read whole*: no
``fields:``. :func:`read_response` checks the resource is a QuestionnaireResponse, identifies the
instrument and scores it (:func:`fhir_iapt.scoring.responses.read_questionnaire_response`), and
works out its natural key: the response's own business identifier, or a SHA-256 of its content
when it has none (so the same response always gets the same ids and is never sent twice).

A QuestionnaireResponse carries no consent of its own; the gate in :mod:`fhir_iapt.targets`
looks it up in the consent register.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import orjson

from fhir_iapt.errors import Location, RecordError
from fhir_iapt.mapping.contract import NO_FIELDS, MapTarget
from fhir_iapt.scoring.responses import ScoredResponse, read_questionnaire_response
from fhir_iapt.systems import project_url

#: Identifier system for QuestionnaireResponses that arrive without a business identifier.
QR_CONTENT_SYSTEM = project_url("Id", "questionnaire-response-sha256")
#: The source record is a FHIR resource, but not a QuestionnaireResponse.
NOT_A_RESPONSE = "FI365"


@dataclass(frozen=True, slots=True)
class ResponseRecord:
    """One QuestionnaireResponse as received, scored, with its natural identifier."""

    resource: dict[str, Any]
    scored: ScoredResponse
    #: ``(system, value)``: the response's identifier, or the content-hash one
    identifier: tuple[str, str]
    location: Location = field(default_factory=Location)

    @property
    def key(self) -> str:
        """The natural key ``<identifier system>|<value>`` (no patient data in it)."""
        return f"{self.identifier[0]}|{self.identifier[1]}"


def response_identifier(resource: dict[str, Any], scored: ScoredResponse) -> tuple[str, str]:
    """The response's business identifier as scoring read it, else a hash of its content."""
    if scored.identifier is not None:
        return scored.identifier["system"], scored.identifier["value"]
    try:
        content = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    except orjson.JSONEncodeError:  # nested past orjson's limit (or not JSON at all)
        raise RecordError(
            "the QuestionnaireResponse nests too deeply to identify by its content",
            error_code="FI304",
        ) from None
    return QR_CONTENT_SYSTEM, hashlib.sha256(content).hexdigest()


def read_response(data: Any, location: Location) -> ResponseRecord:
    """Check, identify and score one QuestionnaireResponse; RecordError / ScoringError if not."""
    if not isinstance(data, dict) or data.get("resourceType") != "QuestionnaireResponse":
        raise RecordError(
            "expected a QuestionnaireResponse (resourceType)",
            location=location,
            error_code=NOT_A_RESPONSE,
        )
    scored = read_questionnaire_response(data, location=location)
    return ResponseRecord(data, scored, response_identifier(data, scored), location)


#: The map-stage half of the questionnaire-response target.
RESPONSE = MapTarget(
    "questionnaire-response",
    ResponseRecord,
    NO_FIELDS,
    read=read_response,
    input_formats=frozenset({"fhir"}),
)

__all__ = [
    "NOT_A_RESPONSE",
    "QR_CONTENT_SYSTEM",
    "RESPONSE",
    "ResponseRecord",
    "read_response",
    "response_identifier",
]
