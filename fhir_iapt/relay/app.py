"""The relay's FastAPI app: ``create_app(settings)``, its lifespan, error handlers and audit.

The app owns, for its lifetime: the outbox (:func:`make_outbox`: the SQLite file, or PostgreSQL
with ``[store] url``; opened at start, which on SQLite releases leases a killed predecessor
left), the referral ledger (``[ledger] path``), one FHIR client per destination,
the delivery worker, the authenticator and the metrics. Routes live in
:mod:`fhir_iapt.relay.routes` and read the settings through the :func:`get_settings`
dependency (tests may override it).

Intake's state (mappings, validator, shape-cache keys) is built once, behind an
:class:`~fhir_iapt.relay.runtime.IntakeGate`: with ``[intake] warm_up`` (the default) by a task
started with the app, retried until it succeeds, POSTs answered 503 with ``Retry-After`` and
``/readyz`` not ready until then; without, by the first POST (the others wait for that build).

Every error answer is an OperationOutcome (``application/fhir+json``): 400 malformed request,
401/403 auth, 404, 413 body too large, 415 wrong Content-Type, 422 nothing acceptable, 503 not
ready yet (with ``Retry-After``), 500. Every request leaves one AuditEvent line
(:mod:`fhir_iapt.relay.audit`).
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fhir_iapt._logging import log_event
from fhir_iapt.consent import ConsentFiles
from fhir_iapt.errors import (
    ConfigError,
    Issue,
    Location,
    OutboxUnavailableError,
    operation_outcome,
)
from fhir_iapt.ledger import Ledger
from fhir_iapt.pipeline import ShapeCache
from fhir_iapt.relay.audit import audit_event, safe_query, write_audit
from fhir_iapt.relay.destinations import FittedClient, make_clients
from fhir_iapt.relay.intake import IntakeError, Validation, warm_up
from fhir_iapt.relay.ledger_feed import LedgerFeed
from fhir_iapt.relay.metrics import RelayMetrics
from fhir_iapt.relay.routes import router
from fhir_iapt.relay.runtime import (
    FHIR_JSON,
    WARM_RETRY_FIRST,
    WARM_RETRY_MAX,
    IntakeGate,
    RelayRuntime,
    audit_record,
    fhir_response,
    outcome_response,
)
from fhir_iapt.relay.security import Authenticator, AuthFailure
from fhir_iapt.relay.settings import RelaySettings
from fhir_iapt.relay.store import Outbox, OutboxStore
from fhir_iapt.relay.worker import DeliveryWorker, Transactor

_log = logging.getLogger("fhir_iapt.relay")


# --- error handlers ----------------------------------------------------------------------


async def _auth_failure(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, AuthFailure):
        raise exc
    audit_record(request).reason = exc.reason
    return outcome_response(
        exc.status_code, exc.reason, headers={"WWW-Authenticate": exc.www_authenticate}
    )


async def _intake_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, IntakeError):
        raise exc
    return fhir_response(exc.outcome, exc.status_code, exc.headers or None)


async def _outbox_unavailable(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, OutboxUnavailableError):
        raise exc
    route = getattr(request.scope.get("route"), "path", None) or "(unmatched)"
    log_event(_log, logging.WARNING, "outbox unavailable", method=request.method, route=route)
    return fhir_response(operation_outcome(exc.issues), exc.status_code, exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):
        raise exc
    return outcome_response(exc.status_code, str(exc.detail), headers=exc.headers)


async def _validation_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):
        raise exc
    issues = [
        Issue(
            str(err.get("msg", "invalid")),
            code="structure",
            expression=".".join(str(p) for p in err.get("loc", ())) or None,
        )
        for err in exc.errors()
    ]
    return fhir_response(operation_outcome(issues), 400)


async def _unexpected(request: Request, exc: Exception) -> Response:
    route = getattr(request.scope.get("route"), "path", None) or "(unmatched)"
    log_event(
        _log,
        logging.ERROR,
        "unexpected error handling a request",
        exception=type(exc).__name__,
        method=request.method,
        route=route,
    )
    return outcome_response(500, "internal error", code="exception")


# --- audit middleware --------------------------------------------------------------------


class AuditMiddleware:
    """Writes one AuditEvent line per HTTP request once its answer has been sent."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            state = scope.get("state") or {}
            principal = state.get("principal")
            route = scope.get("route")
            template = getattr(route, "path", None) or "(unmatched)"
            client = scope.get("client")
            query = dict(httpx.QueryParams(scope.get("query_string", b"").decode("latin-1")))
            write_audit(
                audit_event(
                    method=scope["method"],
                    route=template,
                    status_code=status,
                    who=getattr(principal, "who", None),
                    client_address=client[0] if client else None,
                    query=safe_query(query),
                    record=state.get("audit"),
                )
            )


# --- OpenAPI ------------------------------------------------------------------------------


def _fhir_error_media_types(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document, saying what the relay really sends for errors.

    Every error answer is an OperationOutcome sent as ``application/fhir+json``; FastAPI would
    document response models as ``application/json``, and add a 422 "HTTPValidationError" that
    the relay never sends (its request-validation handler answers 400 with an
    OperationOutcome). Built once, then cached like FastAPI's own.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    from fastapi.openapi.utils import get_openapi

    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, routes=app.routes
    )
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            detail = responses.get("422", {}).get("content", {}).get("application/json", {})
            if "HTTPValidationError" in str(detail.get("schema", {})):
                del responses["422"]
            for status, response in responses.items():
                content = response.get("content", {})
                if not str(status).startswith("2") and "application/json" in content:
                    content[FHIR_JSON] = content.pop("application/json")
    components = schema.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError"):
        if unused in components and unused not in str(schema.get("paths")):
            del components[unused]
    app.openapi_schema = schema
    return schema


# --- factory -----------------------------------------------------------------------------


def freeze_heap() -> None:
    """Take what start-up built out of the cyclic garbage collector's reach (``gc.freeze``).

    The validator's plan and rules, the mappings and every imported module are a large heap that
    lives as long as the process; each full collection walked all of it, 100-220 ms with the
    GIL held (every request in flight waited), several times a minute under load. Frozen, a
    full collection walks only what requests made since. What is frozen stays in memory, as
    it would anyway; garbage made before the freeze is collected first.
    """
    gc.collect()
    gc.freeze()


def make_outbox(settings: RelaySettings) -> OutboxStore:
    """The outbox ``[store]`` names: PostgreSQL at ``url``, else the SQLite file in ``data_dir``.
    Nothing is opened yet (the lifespan, or ``serve`` before it listens, opens it)."""
    url = settings.store.url
    if url is None:
        return Outbox(settings.db_path, synchronous=settings.store.synchronous)
    try:  # psycopg is an extra: only a relay on PostgreSQL needs it
        from fhir_iapt.relay.postgres import PostgresOutbox
    except ImportError:
        raise ConfigError(
            "the store url names PostgreSQL, which needs the postgresql extra:"
            " pip install 'fhir-iapt[postgresql]'",
            location=Location(field="store.url"),
        ) from None
    return PostgresOutbox(
        url.get_secret_value(),
        synchronous=settings.store.synchronous,
        pool_size=settings.store.pool_size,
    )


def create_app(
    settings: RelaySettings,
    *,
    clients: Mapping[str, Transactor] | None = None,
    http: httpx.Client | None = None,
) -> FastAPI:
    """Build the relay app. ``clients`` replaces the destination clients (tests inject faults);
    ``http`` is the client used to fetch a JWKS URL."""
    outbox = make_outbox(settings)
    validation = Validation(
        settings.intake.validation, ShapeCache(settings.store.data_dir / "shape-checks")
    )

    def build() -> None:
        warm_up(settings.intake.mappings, validation)
        freeze_heap()

    gate = IntakeGate(build, on_demand=not settings.intake.warm_up)

    def open_ledger() -> Ledger:
        return Ledger(settings.ledger_path, synchronous=settings.store.synchronous)

    runtime = RelayRuntime(
        settings=settings,
        outbox=outbox,
        authenticator=Authenticator(settings.auth, http=http),
        metrics=RelayMetrics(outbox.counts),
        validation=validation,
        gate=gate,
        consent=(
            ConsentFiles(settings.intake.consent_registers)
            if settings.intake.consent_registers
            else None
        ),
    )

    async def _warm() -> None:
        """Build until a build succeeds; POSTs are 503 meanwhile (see IntakeGate)."""
        delay = WARM_RETRY_FIRST
        while not await asyncio.to_thread(gate.build):
            gate.retry_at = time.monotonic() + delay
            await asyncio.sleep(delay)
            delay = min(delay * 2, WARM_RETRY_MAX)
        gate.retry_at = None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        outbox.open()
        try:
            runtime.ledger = open_ledger()  # FI830 if it cannot be opened: the app won't start
            feed = LedgerFeed(outbox, runtime.ledger)
            await asyncio.to_thread(feed.start)  # records what a previous process left pending
        except BaseException:
            if runtime.ledger is not None:
                runtime.ledger.close()
                runtime.ledger = None
            outbox.close()
            raise
        runtime.ledger_feed = feed
        owned: dict[str, FittedClient] = make_clients(settings) if clients is None else {}
        worker = DeliveryWorker(
            outbox,
            clients if clients is not None else owned,
            settings.delivery,
            runtime.metrics,
        )
        worker.start()
        runtime.worker = worker
        warming = asyncio.create_task(_warm()) if settings.intake.warm_up else None
        try:
            yield
        finally:
            if warming is not None and not warming.done():
                warming.cancel()
            await worker.stop(settings.server.shutdown_grace_seconds)
            for client in owned.values():
                await client.aclose()
            await asyncio.to_thread(feed.stop)  # what is still pending, before both close
            runtime.ledger_feed = None
            outbox.close()
            if runtime.ledger is not None:
                runtime.ledger.close()
                runtime.ledger = None

    app = FastAPI(
        title="fhir-iapt relay",
        summary="Converts, validates, stores and delivers IAPT-LTC referrals and outcomes",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.relay = runtime
    app.include_router(router)
    app.openapi = lambda: _fhir_error_media_types(app)  # type: ignore[method-assign]
    app.add_exception_handler(AuthFailure, _auth_failure)
    app.add_exception_handler(IntakeError, _intake_error)
    app.add_exception_handler(OutboxUnavailableError, _outbox_unavailable)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected)
    app.add_middleware(AuditMiddleware)
    return app


__all__ = ["create_app", "make_outbox"]
