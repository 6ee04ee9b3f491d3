"""What the relay holds while it runs, and the answer helpers every route and handler uses.

Kept apart from :mod:`fhir_iapt.relay.app` (which builds the app and includes the routes) so the
routes import these without importing the app: no import cycle.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from fhir_iapt.consent import ConsentFiles
from fhir_iapt.errors import Issue, operation_outcome
from fhir_iapt.relay.audit import AuditRecord
from fhir_iapt.relay.intake import Validation
from fhir_iapt.relay.metrics import RelayMetrics
from fhir_iapt.relay.security import Authenticator
from fhir_iapt.relay.settings import RelaySettings
from fhir_iapt.relay.store import Outbox
from fhir_iapt.relay.worker import DeliveryWorker

FHIR_JSON = "application/fhir+json"

#: HTTP status -> FHIR IssueType for answers raised by the framework.
_ISSUE_TYPES: dict[int, str] = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    409: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "invalid",
}


@dataclass(slots=True)
class RelayRuntime:
    """What the app holds while it runs (``app.state.relay``)."""

    settings: RelaySettings
    outbox: Outbox
    authenticator: Authenticator
    metrics: RelayMetrics
    validation: Validation
    #: recorded consent to share outcomes, re-read when its files change
    consent: ConsentFiles | None = None
    worker: DeliveryWorker | None = None
    warm: bool = False


async def get_settings(request: Request) -> RelaySettings:
    """The settings dependency (override with ``app.dependency_overrides`` in tests).

    ``async`` on purpose: FastAPI runs a plain ``def`` dependency in its threadpool, a thread
    hop on every request for reading an attribute."""
    settings: RelaySettings = request.app.state.relay.settings
    return settings


def get_runtime(request: Request) -> RelayRuntime:
    runtime: RelayRuntime = request.app.state.relay
    return runtime


def fhir_response(
    body: Mapping[str, Any], status_code: int, headers: Mapping[str, str] | None = None
) -> Response:
    return Response(
        orjson.dumps(body), status_code=status_code, media_type=FHIR_JSON, headers=headers
    )


def outcome_response(
    status_code: int,
    diagnostics: str,
    *,
    code: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    issue = Issue(diagnostics, code=code or _ISSUE_TYPES.get(status_code, "processing"))
    return fhir_response(operation_outcome([issue]), status_code, headers)


def audit_record(request: Request) -> AuditRecord:
    """The request's audit additions (message ids, counts, reason), made on first use."""
    record: AuditRecord | None = getattr(request.state, "audit", None)
    if record is None:
        record = AuditRecord()
        request.state.audit = record
    return record


__all__ = [
    "FHIR_JSON",
    "RelayRuntime",
    "audit_record",
    "fhir_response",
    "get_runtime",
    "get_settings",
    "outcome_response",
]
