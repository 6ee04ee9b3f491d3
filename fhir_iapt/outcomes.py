"""Library entry point for session measures sent as FHIR QuestionnaireResponses.

:func:`convert_questionnaire_responses` reads one stream of JSON — a single
QuestionnaireResponse, a Bundle of them, a JSON array of them, or NDJSON (one per line) — and
yields one :class:`~fhir_iapt.results.Result` per response, in input order: a
:class:`~fhir_iapt.results.Converted` (``kind="outcome"``) holding the transaction Bundle of the
response and its score Observation, a :class:`~fhir_iapt.results.Skipped` when the patient's
consent to share outcomes is not recorded as ``Y``, or a :class:`~fhir_iapt.results.Rejected`
whose OperationOutcome says where (record number / line, FHIRPath element) and what.

Consent: a QuestionnaireResponse carries none, so it is looked up in the
:class:`~fhir_iapt.consent.ConsentRegister` passed as ``consent`` (by the ``basedOn`` referral
identifier first, then the subject's NHS number). With no register, or no ``Y`` for the
response, nothing is built: the result is Skipped with the episode path's reason codes
(``outcomes-consent-not-recorded`` / ``-withheld`` / ``-withdrawn``). Malformed responses are
still Rejected (read and checked before the consent gate, as episode rows are), so the sender
learns about bad data either way. Built bundles pass the same validation gate as episode rows
(:func:`fhir_iapt.pipeline.validated`).

Episode exports (CSV and other mapped layouts) go through the generic pipeline with the
``iapt-outcomes`` mapping (:func:`fhir_iapt.pipeline.convert_stream`); the pipeline calls
:func:`fhir_iapt.fhir.outcomes.episode_result` for each mapped episode.

No I/O beyond reading the given stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

import orjson

from fhir_iapt.consent import ConsentRegister
from fhir_iapt.errors import FhirIaptError, Location, ReadError, RecordError
from fhir_iapt.fhir.options import DEFAULT_OPTIONS, BuildOptions
from fhir_iapt.pipeline import Validation, validated
from fhir_iapt.results import Converted, Rejected, Result, Skipped

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


#: Said instead of the plain "not recorded" detail when no register was given at all.
NO_REGISTER_DETAIL = (
    "consent to share outcomes was not recorded: no consent register was given (a "
    "QuestionnaireResponse carries no consent of its own)"
)


def convert_questionnaire_responses(
    stream: BinaryIO,
    *,
    name: str,
    options: BuildOptions = DEFAULT_OPTIONS,
    consent: ConsentRegister | None = None,
    validation: Validation = "first",
) -> Iterator[Result]:
    """Score each QuestionnaireResponse in ``stream`` into an outcome Bundle when ``consent``
    records ``Y`` for it (see module doc); ``validation`` as in
    :func:`fhir_iapt.pipeline.convert_stream`."""
    return validated(_convert(stream, name, options, consent), validation)


def _convert(
    stream: BinaryIO, name: str, options: BuildOptions, consent: ConsentRegister | None
) -> Iterator[Result]:
    from fhir_iapt.fhir.outcomes import (
        CONSENT_SKIPS,
        build_questionnaire_response_bundle,
        questionnaire_response_key,
    )
    from fhir_iapt.scoring.responses import read_questionnaire_response

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
            scored = read_questionnaire_response(resource, location=location)
        except FhirIaptError as exc:
            yield Rejected(exc, exc.location or location)
            continue
        key = questionnaire_response_key(resource)
        decision = consent.for_response(scored) if consent is not None else None
        if decision != "Y":
            reason, detail = CONSENT_SKIPS[decision]
            yield Skipped(key, reason, NO_REGISTER_DETAIL if consent is None else detail,
                          location)
            continue
        try:
            bundle = build_questionnaire_response_bundle(resource, scored, options)
        except FhirIaptError as exc:
            yield Rejected(exc, exc.location or location)
            continue
        yield Converted(key, bundle, location, "outcome")


def looks_like_fhir_json(head: bytes) -> bool:
    """True when the start of a file is FHIR JSON (a ``resourceType`` key appears early).

    Used by the ``outcomes`` command to send QuestionnaireResponse files here and episode
    exports through their mapping.
    """
    stripped = head.lstrip()
    return stripped[:1] in (b"{", b"[") and b'"resourceType"' in head


__all__ = ["NO_REGISTER_DETAIL", "convert_questionnaire_responses", "looks_like_fhir_json"]
