"""What the relay holds while it runs, and the answer helpers every route and handler uses.

Kept apart from :mod:`fhir_iapt.relay.app` (which builds the app and includes the routes) so the
routes import these without importing the app: no import cycle.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from fastapi import Request
from fastapi.responses import Response

from fhir_iapt._logging import log_event
from fhir_iapt.consent import ConsentFiles
from fhir_iapt.errors import Issue, operation_outcome
from fhir_iapt.ledger import Ledger
from fhir_iapt.relay.audit import AuditRecord
from fhir_iapt.relay.intake import IntakeError, Validation
from fhir_iapt.relay.ledger_feed import LedgerFeed
from fhir_iapt.relay.metrics import RelayMetrics
from fhir_iapt.relay.security import Authenticator
from fhir_iapt.relay.settings import RelaySettings
from fhir_iapt.relay.store import OutboxStore
from fhir_iapt.relay.worker import DeliveryWorker

FHIR_JSON = "application/fhir+json"
_log = logging.getLogger("fhir_iapt.relay")

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


class IntakeGate:
    """Whether intake can take a POST: what conversion needs (the mappings, the validator and
    its compiled rules, the shape-cache keys) built, once and whole.

    ``build`` does that work (:func:`fhir_iapt.relay.intake.warm_up`). Builds are serialised by
    a lock, so the warm-up task and requests never build side by side. A build that raises
    leaves the gate shut and nothing of it is taken as built: it is tried again. Once a build
    has succeeded the gate stays open; until then every intake POST is answered 503 with
    ``Retry-After`` (:meth:`refusal`), never served from a state still being made.

    ``[intake] warm_up = true``: the app's warm-up task builds at start, and again after a
    failure (back-off from :data:`WARM_RETRY_FIRST` to :data:`WARM_RETRY_MAX` seconds); POSTs
    meanwhile are 503 at once and ``/readyz`` says not ready.

    ``warm_up = false`` (``on_demand``): nothing is built at start and ``/readyz`` does not
    wait for it (it would wait for ever: nothing would build). The first POST builds, in its
    own request; POSTs arriving meanwhile wait for that one build. If it fails, it and every
    POST that waited for it are answered 503 with ``Retry-After``, and the next POST builds
    again. So a caller is never refused for being early, only the first requests are slow.
    """

    def __init__(self, build: Callable[[], None], *, on_demand: bool) -> None:
        self._build = build
        self.on_demand = on_demand
        self._lock = threading.Lock()
        self._count_lock = threading.Lock()
        self._ready = False
        self._finished = 0  # builds that ended, failed or not
        #: builds that raised
        self.failures = 0
        #: callers waiting for a build in progress to end
        self.waiting = 0
        #: when the warm-up task tries again after a failure (time.monotonic())
        self.retry_at: float | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    def build(self) -> bool:
        """Build unless built; True once built. Blocks while another build is in progress;
        if that one failed, answers False without building again (the next call will)."""
        if self._ready:
            return True
        with self._count_lock:
            seen = self._finished
            self.waiting += 1
        try:
            self._lock.acquire()
        finally:
            with self._count_lock:
                self.waiting -= 1
        try:
            if self._ready:
                return True
            if self._finished != seen:
                return False  # a build ended while this caller waited, and it failed
            try:
                self._build()
            except Exception as exc:
                self.failures += 1
                # The type and the line that raised, never the message (it may quote data).
                frames = traceback.extract_tb(exc.__traceback__)
                log_event(
                    _log,
                    logging.WARNING,
                    "building the validator and mappings failed; POSTs are refused (503) "
                    "until a build succeeds",
                    exception=type(exc).__name__,
                    where=f"{Path(frames[-1].filename).name}:{frames[-1].lineno}"
                    if frames
                    else None,
                    failures=self.failures,
                )
                return False
            finally:
                self._finished += 1
            self._ready = True
            return True
        finally:
            self._lock.release()

    def retry_after(self) -> int:
        """Seconds a refused caller should wait (``Retry-After``): until the next build."""
        if self.retry_at is None:
            return 1
        return max(1, math.ceil(self.retry_at - time.monotonic()))

    def reason(self) -> str:
        """Why the gate is shut (for a 503's OperationOutcome)."""
        if self.failures and self.on_demand:
            return "the relay could not build its validator; the next request tries again"
        if self.failures:
            return "the relay could not build its validator yet and is trying again; retry later"
        return "the relay is starting (building its validator); retry shortly"

    def refusal(self) -> IntakeError:
        """The 503 a POST gets while the gate is shut."""
        return IntakeError(
            503,
            Issue(self.reason(), code="transient"),
            headers={"Retry-After": str(self.retry_after())},
        )


#: The warm-up task's first wait after a failed build, and the longest (seconds).
WARM_RETRY_FIRST = 0.5
WARM_RETRY_MAX = 30.0


@dataclass(slots=True)
class RelayRuntime:
    """What the app holds while it runs (``app.state.relay``)."""

    settings: RelaySettings
    outbox: OutboxStore
    authenticator: Authenticator
    metrics: RelayMetrics
    validation: Validation
    #: shut until intake's state is built (see IntakeGate)
    gate: IntakeGate
    #: recorded consent to share outcomes, re-read when its files change
    consent: ConsentFiles | None = None
    worker: DeliveryWorker | None = None
    #: the referral ledger accepted referrals are recorded in (``[ledger] path``), open while
    #: the app runs
    ledger: Ledger | None = None
    #: moves the ledger entries committed with accepted referrals into the ledger
    ledger_feed: LedgerFeed | None = None


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
    "WARM_RETRY_FIRST",
    "WARM_RETRY_MAX",
    "IntakeGate",
    "RelayRuntime",
    "audit_record",
    "fhir_response",
    "get_runtime",
    "get_settings",
    "outcome_response",
]
