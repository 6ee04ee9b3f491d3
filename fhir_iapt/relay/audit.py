"""One audit line per request, shaped like a FHIR R4 AuditEvent, written through ``logging``.

Each line is a compact JSON AuditEvent on the ``fhir_iapt.relay.audit`` logger (INFO): *who*
(the API key id or JWT ``sub``, or ``anonymous``), *what* (method, route template, the message
ids a write produced, counts), *when* (``recorded``) and *the result* (HTTP status mapped to
``outcome``: 0 success, 4 minor failure for 4xx, 8 serious failure for 5xx). Route templates
(``/messages/{id}``), not raw paths, and only the ``mapping`` query parameter are recorded:
nothing a caller sends in a body, and never patient data. Where lines go is the deployment's
logging configuration (the ``serve`` command sends them to stderr).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

AUDIT_LOGGER = "fhir_iapt.relay.audit"
_AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
_RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
_NETWORK_TYPE_IP = "2"

#: HTTP method -> (AuditEvent.action, restful-interaction code).
_ACTIONS: dict[str, tuple[str, str]] = {
    "GET": ("R", "read"),
    "HEAD": ("R", "read"),
    "POST": ("C", "create"),
    "PUT": ("U", "update"),
    "PATCH": ("U", "patch"),
    "DELETE": ("D", "delete"),
}

_log = logging.getLogger(AUDIT_LOGGER)


@dataclass(slots=True)
class AuditRecord:
    """What a request handler adds to its audit line (kept on ``request.state.audit``)."""

    message_ids: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    reason: str | None = None


def _outcome(status_code: int) -> str:
    if status_code >= 500:
        return "8"
    if status_code >= 400:
        return "4"
    return "0"


def audit_event(
    *,
    method: str,
    route: str,
    status_code: int,
    who: str | None,
    client_address: str | None,
    query: Mapping[str, str] | None = None,
    record: AuditRecord | None = None,
    recorded: datetime | None = None,
) -> dict[str, Any]:
    """Build the AuditEvent for one request (a plain dict, R4 shape)."""
    action, interaction = _ACTIONS.get(method.upper(), ("E", "operation"))
    when = (recorded or datetime.now(UTC)).isoformat(timespec="milliseconds")
    agent: dict[str, Any] = {
        "who": {"identifier": {"value": who or "anonymous"}},
        "requestor": True,
    }
    if client_address:
        agent["network"] = {"address": client_address, "type": _NETWORK_TYPE_IP}
    request_entity: dict[str, Any] = {
        "what": {"identifier": {"value": route}},
        "description": f"{method.upper()} {route}",
    }
    details = [{"type": k, "valueString": v} for k, v in sorted((query or {}).items())]
    if record is not None:
        details += [{"type": k, "valueString": str(v)} for k, v in sorted(record.counts.items())]
    if details:
        request_entity["detail"] = details
    entities = [request_entity]
    if record is not None:
        entities += [{"what": {"identifier": {"value": mid}}} for mid in record.message_ids]
    outcome_desc = str(status_code)
    if record is not None and record.reason:
        outcome_desc = f"{status_code} {record.reason}"
    return {
        "resourceType": "AuditEvent",
        "type": {"system": _AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"},
        "subtype": [{"system": _RESTFUL_INTERACTION, "code": interaction}],
        "action": action,
        "recorded": when,
        "outcome": _outcome(status_code),
        "outcomeDesc": outcome_desc,
        "agent": [agent],
        "source": {"observer": {"display": "fhir-iapt relay"}},
        "entity": entities,
    }


def write_audit(event: Mapping[str, Any]) -> None:
    """Log one AuditEvent as a JSON line."""
    if _log.isEnabledFor(logging.INFO):
        _log.info(orjson.dumps(event).decode("utf-8"))


def safe_query(query: Mapping[str, str], allowed: Sequence[str] = ("mapping",)) -> dict[str, str]:
    """The query parameters an audit line may carry (names we chose, never free text)."""
    return {k: query[k][:100] for k in allowed if k in query}


__all__ = ["AUDIT_LOGGER", "AuditRecord", "audit_event", "safe_query", "write_audit"]
