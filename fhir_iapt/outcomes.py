"""Library entry point for session measures sent as FHIR QuestionnaireResponses.

:func:`convert_questionnaire_responses` reads one stream of JSON — a single
QuestionnaireResponse, a Bundle of them, a JSON array of them, or NDJSON (one per line) — and
yields one :class:`~fhir_iapt.results.Result` per response, in input order: a
:class:`~fhir_iapt.results.Converted` (``kind="outcome"``) holding the transaction Bundle of the
response and its score Observation, or a :class:`~fhir_iapt.results.Rejected` whose
OperationOutcome says where (record number / line, FHIRPath element) and what.

Episode exports (CSV and other mapped layouts) go through the generic pipeline with the
``iapt-outcomes`` mapping (:func:`fhir_iapt.pipeline.convert_stream`); the pipeline calls
:func:`fhir_iapt.fhir.outcomes.episode_result` for each mapped episode.

No I/O beyond reading the given stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from fhir_iapt.errors import FhirIaptError, Location, ReadError, RecordError
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions
from fhir_iapt.results import Converted, Rejected, Result

NOT_JSON = "FI101"
NOT_A_RESPONSE = "FI365"


def _records(data: bytes, name: str) -> Iterator[tuple[Any, Location] | ReadError]:
    """(resource, location) for each candidate resource, or a ReadError for unreadable parts."""
    text = data.lstrip()
    if not text:
        return
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError:
        document = None
        whole_ok = False
    else:
        whole_ok = True
    if whole_ok:
        if isinstance(document, list):
            for index, item in enumerate(document):
                yield item, Location(file=name, row=index + 1, element=f"$[{index}]")
            return
        if isinstance(document, dict) and document.get("resourceType") == "Bundle":
            entries = document.get("entry") or []
            if not isinstance(entries, list):
                yield ReadError("Bundle.entry must be an array",
                                location=Location(file=name, element="Bundle.entry"),
                                error_code=NOT_JSON)
                return
            for index, item in enumerate(entries):
                resource = item.get("resource") if isinstance(item, dict) else None
                yield resource, Location(file=name, row=index + 1,
                                         element=f"Bundle.entry[{index}].resource")
            return
        yield document, Location(file=name, row=1)
        return
    row = 0
    for line_no, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        row += 1
        try:
            yield orjson.loads(line), Location(file=name, row=row, line=line_no)
        except orjson.JSONDecodeError:
            yield ReadError(
                "not valid JSON (expected one QuestionnaireResponse, a Bundle, an array, or "
                "NDJSON with one resource per line)",
                location=Location(file=name, row=row, line=line_no),
                error_code=NOT_JSON,
            )


def convert_questionnaire_responses(
    stream: BinaryIO, *, name: str, options: BuildOptions = DEFAULT_OPTIONS
) -> Iterator[Result]:
    """Score each QuestionnaireResponse in ``stream`` into an outcome Bundle (see module doc)."""
    from fhir_iapt.fhir.outcomes import questionnaire_response_key, score_questionnaire_response

    try:
        data = stream.read()
    except OSError as exc:
        unreadable = ReadError(f"cannot read input ({type(exc).__name__})",
                               location=Location(file=name))
        yield Rejected(unreadable, Location(file=name))
        return
    for item in _records(data, name):
        if isinstance(item, ReadError):
            yield Rejected(item, item.location or Location(file=name))
            continue
        resource, location = item
        if not isinstance(resource, dict) or resource.get("resourceType") != (
            "QuestionnaireResponse"
        ):
            error: FhirIaptError = RecordError(
                "expected a QuestionnaireResponse (resourceType)",
                location=location,
                error_code=NOT_A_RESPONSE,
            )
            yield Rejected(error, location)
            continue
        try:
            bundle = score_questionnaire_response(resource, location=location, options=options)
        except FhirIaptError as exc:
            yield Rejected(exc, exc.location or location)
            continue
        yield Converted(questionnaire_response_key(resource), bundle, location, "outcome")


def looks_like_fhir_json(head: bytes) -> bool:
    """True when the start of a file is FHIR JSON (a ``resourceType`` key appears early).

    Used by the ``outcomes`` command to send QuestionnaireResponse files here and episode
    exports through their mapping.
    """
    stripped = head.lstrip()
    return stripped[:1] in (b"{", b"[") and b'"resourceType"' in head


__all__ = ["convert_questionnaire_responses", "looks_like_fhir_json"]
