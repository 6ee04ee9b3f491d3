"""The relay's routes (OpenAPI-documented at ``/docs`` and ``/openapi.json``).

=====================================  =================  ======================================
route                                  scope              answer
=====================================  =================  ======================================
``POST /referrals?mapping=NAME``       referrals:write    202 ids / 422 OperationOutcome
``POST /outcomes?mapping=NAME``        outcomes:write     202 ids / 422 OperationOutcome
``GET /messages/{id}``                 messages:read      status, attempts, last error
``POST /messages/{id}/replay``         admin              202 re-queued dead letter / 409
``GET /metrics``                       messages:read      Prometheus text
``GET /healthz``, ``GET /readyz``      (none)             liveness, readiness
=====================================  =================  ======================================

``admin`` implies every scope. ``Idempotency-Key`` on the POSTs replays the first answer given
to that key (by the same caller) for the same body, and refuses a different body with 422.
Until intake's state (mappings, validator) is built, ``POST /referrals`` and ``POST /outcomes``
answer 503 with ``Retry-After`` (:class:`~fhir_iapt.relay.runtime.IntakeGate`), and ``/readyz``
says not ready.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Header, Query, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from fhir_iapt.errors import Issue
from fhir_iapt.relay.intake import (
    IntakeError,
    IntakeResult,
    convert,
    media_type,
    no_records,
    take,
)
from fhir_iapt.relay.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from fhir_iapt.relay.runtime import (
    RelayRuntime,
    audit_record,
    get_runtime,
    get_settings,
    outcome_response,
)
from fhir_iapt.relay.security import AuthFailure, Principal
from fhir_iapt.relay.settings import RelaySettings, Scope
from fhir_iapt.relay.store import Direction, MessageInfo, StoredResponse

router = APIRouter()
_bearer = HTTPBearer(auto_error=False, description="An API key or a JWT")
_MAX_IDEMPOTENCY_KEY = 255

# --- documentation models ----------------------------------------------------------------


class AcceptedRecord(BaseModel):
    id: str
    key: str
    location: str
    duplicate: bool


class SkippedRecord(BaseModel):
    key: str | None
    reason: str
    detail: str
    location: str


class RejectedRecord(BaseModel):
    location: str
    outcome: dict[str, Any]


class AcceptResponse(BaseModel):
    """One entry per record of the body, in order."""

    accepted: list[AcceptedRecord]
    skipped: list[SkippedRecord]
    rejected: list[RejectedRecord]


class OperationOutcome(BaseModel):
    resourceType: Literal["OperationOutcome"]
    issue: list[dict[str, Any]]


class MessageStatus(BaseModel):
    """A message's delivery state: no payload, no patient data."""

    id: str
    direction: Direction
    destination: str
    status: Literal["queued", "delivered", "failed", "dead"]
    in_flight: bool
    attempts: int
    last_error: str | None
    created_at: str
    updated_at: str
    next_attempt_at: str | None
    delivered_at: str | None


_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": OperationOutcome, "description": text}
    for code, text in (
        (400, "Malformed request"),
        (401, "No or invalid bearer token"),
        (403, "The token lacks the scope"),
    )
}
_INPUT_TYPES = (
    "text/csv",
    "application/json",
    "application/x-ndjson",
    "application/xml",
    "text/xml",
)


def _body_doc(extra: tuple[str, ...] = ()) -> dict[str, Any]:
    content = {t: {"schema": {"type": "string"}} for t in (*_INPUT_TYPES, *extra)}
    return {"requestBody": {"required": True, "content": content}}


# --- dependencies ------------------------------------------------------------------------


def require(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller's principal, which must hold ``scope`` (or ``admin``)."""

    async def dependency(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)],
    ) -> Principal:
        runtime = get_runtime(request)
        header = request.headers.get("authorization")
        if credentials is None:
            raise AuthFailure(401, "no bearer token")
        principal = runtime.authenticator.cached(header)
        if principal is None:
            principal = await run_in_threadpool(runtime.authenticator.authenticate, header)
        request.state.principal = principal
        if not principal.allows(scope):
            raise AuthFailure(403, f"the token lacks the scope {scope}", scope=scope)
        return principal

    return dependency


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to pass ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise HTTPException(400, "Content-Length is not a number")
        if int(declared) > limit:
            raise HTTPException(413, f"the body is larger than the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"the body is larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


def _status(info: MessageInfo) -> dict[str, Any]:
    waiting = info.status in ("queued", "failed")
    return {
        "id": info.id,
        "direction": info.direction,
        "destination": info.destination,
        "status": info.status,
        "in_flight": info.leased,
        "attempts": info.attempts,
        "last_error": info.last_error,
        "created_at": _iso(info.created_at),
        "updated_at": _iso(info.updated_at),
        "next_attempt_at": _iso(info.next_attempt_at) if waiting else None,
        "delivered_at": _iso(info.delivered_at),
    }


# --- intake ------------------------------------------------------------------------------


def _process(
    runtime: RelayRuntime,
    settings: RelaySettings,
    direction: Direction,
    body: bytes,
    mapping: str | None,
    content_type: str,
) -> IntakeResult:
    results = convert(
        body,
        direction=direction,
        mapping_name=mapping,
        content_type=content_type,
        mappings=settings.intake.mappings,
        validation=runtime.validation,
        consent=runtime.consent,
    )
    if not results:
        raise no_records()
    worker = runtime.worker
    return take(
        results,
        direction=direction,
        settings=settings,
        outbox=runtime.outbox,
        on_queued=worker.wake if worker is not None else None,
        ledger=runtime.ledger,
    )


async def _accept(
    request: Request,
    direction: Direction,
    mapping: str | None,
    idempotency_key: str | None,
    principal: Principal,
    settings: RelaySettings,
) -> Response:
    runtime = get_runtime(request)
    gate = runtime.gate
    if not gate.ready and not (gate.on_demand and await run_in_threadpool(gate.build)):
        raise gate.refusal()
    body = await read_body(request, settings.limits.max_body_bytes)
    content_type = media_type(request.headers.get("content-type"))
    if not body.strip():
        raise IntakeError(400, Issue("the body is empty", code="required"))
    route = request.url.path
    digest = hashlib.sha256(
        b"\n".join([content_type.encode(), (mapping or "").encode(), body])
    ).hexdigest()
    if idempotency_key is not None:
        if not 0 < len(idempotency_key) <= _MAX_IDEMPOTENCY_KEY:
            raise IntakeError(
                400,
                Issue(
                    "Idempotency-Key must be 1-255 characters",
                    code="value",
                    expression="Idempotency-Key",
                ),
            )
        stored = await run_in_threadpool(
            runtime.outbox.stored_response, principal.who, idempotency_key
        )
        if stored is not None:
            if stored.route != route or stored.body_digest != digest:
                raise IntakeError(
                    422,
                    Issue(
                        "this Idempotency-Key was used before with a different request",
                        code="conflict",
                        expression="Idempotency-Key",
                    ),
                )
            audit_record(request).reason = "idempotent replay"
            return Response(
                stored.response,
                status_code=stored.status_code,
                media_type="application/json"
                if stored.status_code < 300
                else "application/fhir+json",
                headers={"Idempotent-Replayed": "true"},
            )
    result = await run_in_threadpool(
        _process, runtime, settings, direction, body, mapping, content_type
    )
    metrics = runtime.metrics
    metrics.accepted.labels(direction).inc(result.new)
    metrics.duplicates.labels(direction).inc(result.duplicates)
    metrics.rejected.labels(direction).inc(len(result.rejected))
    metrics.skipped.labels(direction).inc(len(result.skipped))
    record = audit_record(request)
    record.message_ids = [a["id"] for a in result.accepted]
    record.counts = {
        "accepted": len(result.accepted),
        "skipped": len(result.skipped),
        "rejected": len(result.rejected),
        "duplicates": result.duplicates,
    }
    status_code = result.status_code
    payload = orjson.dumps(result.body())
    if idempotency_key is not None:
        await run_in_threadpool(
            runtime.outbox.remember_response,
            principal.who,
            idempotency_key,
            StoredResponse(route, digest, status_code, payload),
        )
    media = "application/fhir+json" if status_code >= 400 else "application/json"
    return Response(payload, status_code=status_code, media_type=media)


_POST_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {"model": AcceptResponse, "description": "At least one record was queued"},
    200: {"model": AcceptResponse, "description": "Every record was skipped on purpose"},
    404: {"model": OperationOutcome, "description": "No such mapping"},
    413: {"model": OperationOutcome, "description": "Body over the size limit"},
    415: {"model": OperationOutcome, "description": "Content-Type does not fit the mapping"},
    422: {"model": OperationOutcome, "description": "No record could be accepted"},
    503: {
        "model": OperationOutcome,
        "description": "Not ready (validator being built, consent register unreadable): "
        "retry after Retry-After seconds",
    },
    **_ERRORS,
}

MappingParam = Annotated[
    str | None, Query(description="The mapping that reads the body (e.g. diabetes-csv)")
]
IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", description="Replays the first answer for this key"),
]


@router.post(
    "/referrals",
    status_code=202,
    responses=_POST_RESPONSES,
    openapi_extra=_body_doc(),
    summary="Convert, validate and queue clinic referrals",
    tags=["intake"],
)
async def post_referrals(
    request: Request,
    principal: Annotated[Principal, Depends(require("referrals:write"))],
    settings: Annotated[RelaySettings, Depends(get_settings)],
    mapping: MappingParam = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """A clinic record or a whole export (CSV, JSON or XML, as the mapping reads)."""
    return await _accept(request, "referral", mapping, idempotency_key, principal, settings)


@router.post(
    "/outcomes",
    status_code=202,
    responses=_POST_RESPONSES,
    openapi_extra=_body_doc(("application/fhir+json",)),
    summary="Convert, validate and queue IAPT outcomes (consent-gated)",
    tags=["intake"],
)
async def post_outcomes(
    request: Request,
    principal: Annotated[Principal, Depends(require("outcomes:write"))],
    settings: Annotated[RelaySettings, Depends(get_settings)],
    mapping: MappingParam = None,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    """Episode rows (with ``mapping``) or FHIR QuestionnaireResponses
    (``application/fhir+json``, no mapping); withheld consent is skipped, never sent."""
    return await _accept(request, "outcome", mapping, idempotency_key, principal, settings)


# --- messages ----------------------------------------------------------------------------


@router.get(
    "/messages/{message_id}",
    response_model=MessageStatus,
    responses={404: {"model": OperationOutcome}, **_ERRORS},
    summary="A message's delivery status",
    tags=["messages"],
)
async def get_message(
    message_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("messages:read"))],
) -> Response:
    runtime = get_runtime(request)
    info = await run_in_threadpool(runtime.outbox.info, message_id)
    if info is None:
        return outcome_response(404, "no message with this id")
    return Response(orjson.dumps(_status(info)), media_type="application/json")


@router.post(
    "/messages/{message_id}/replay",
    status_code=202,
    response_model=MessageStatus,
    responses={404: {"model": OperationOutcome}, 409: {"model": OperationOutcome}, **_ERRORS},
    summary="Re-queue a dead letter",
    tags=["messages"],
)
async def replay_message(
    message_id: str,
    request: Request,
    principal: Annotated[Principal, Depends(require("admin"))],
) -> Response:
    runtime = get_runtime(request)
    info = await run_in_threadpool(runtime.outbox.replay, message_id)
    if info is None:
        current = await run_in_threadpool(runtime.outbox.info, message_id)
        if current is None:
            return outcome_response(404, "no message with this id")
        return outcome_response(
            409, f"only a dead letter can be replayed; this one is {current.status}"
        )
    audit_record(request).message_ids = [message_id]
    if runtime.worker is not None:
        runtime.worker.wake()
    return Response(orjson.dumps(_status(info)), status_code=202, media_type="application/json")


# --- operations --------------------------------------------------------------------------


@router.get("/healthz", summary="Liveness", tags=["operations"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: the outbox answers, the worker runs, the validator is built",
    responses={503: {"model": OperationOutcome}},
    tags=["operations"],
)
async def readyz(request: Request) -> Response:
    """Ready when a POST would be taken at normal latency: the outbox answers, the worker
    runs and intake's state is built. With ``[intake] warm_up = false`` the build is left to
    the first POST, so readiness does not wait for it (nothing else would build it)."""
    runtime = get_runtime(request)
    gate = runtime.gate
    store_ok = await run_in_threadpool(runtime.outbox.ping)
    worker_ok = runtime.worker is not None and runtime.worker.running
    if store_ok and worker_ok and (gate.ready or gate.on_demand):
        return Response(b'{"status":"ready"}', media_type="application/json")
    if not store_ok:
        return outcome_response(503, "the outbox does not answer", code="transient")
    if not worker_ok:
        return outcome_response(503, "the delivery worker is not running", code="transient")
    return outcome_response(
        503,
        gate.reason(),
        code="transient",
        headers={"Retry-After": str(gate.retry_after())},
    )


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={200: {"content": {METRICS_CONTENT_TYPE: {}}}, **_ERRORS},
    tags=["operations"],
)
async def metrics(
    request: Request,
    principal: Annotated[Principal, Depends(require("messages:read"))],
) -> Response:
    runtime = get_runtime(request)
    body = await run_in_threadpool(runtime.metrics.render)
    return Response(body, media_type=METRICS_CONTENT_TYPE)


__all__ = ["router"]
