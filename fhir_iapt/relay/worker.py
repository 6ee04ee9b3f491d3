"""The delivery worker: an asyncio loop that drains the outbox into the destinations.

Each turn claims due messages (leased, attempt counted) up to the free delivery slots and sends
each bundle with its destination's client, whose :class:`~fhir_iapt.client.RetryPolicy` makes a
few quick retries inside one attempt. What happens next is decided by the same rule, a
:class:`~fhir_iapt.client.RetryPolicy` for the outbox (:func:`outbox_policy`), so the relay and
the client can never disagree about a status:

* delivered: marked delivered, latency observed;
* worth another try by the policy's rule (:meth:`~fhir_iapt.client.RetryPolicy.retryable_error`:
  no answer, or 408, 429, 500, 502, 503, 504): back to the queue after the policy's jittered
  exponential backoff, or the server's longer ``Retry-After`` (up to ``backoff_max``), persisted
  in ``next_attempt_at`` (so it survives a restart), until ``max_attempts``;
* any other delivery error (a 4xx, including 401/403 refusing the relay's own credentials, a
  TLS refusal, the client refusing to send the bundle): a dead letter at once, for someone must
  act first; it keeps its payload and is sent again with ``POST /messages/{id}/replay``;
* a failure that is not a delivery outcome (a destination missing from the configuration, an
  unexpected error): back to the queue like a retryable one;
* the last attempt failed: a dead letter, payload and last error kept until replayed.

The error kept (``last_error``) is the project's code, the HTTP status and the client's message,
which names the method and URL but never headers, bodies or the server's diagnostics (those
may quote patient values); only the server's issue codes are kept from its OperationOutcome.
Log records are events with fields (:func:`fhir_iapt._logging.log_event`): message id,
destination, direction, error code, HTTP status, attempt, retry delay; nothing else.

Shutdown (:meth:`DeliveryWorker.stop`) stops claiming, lets in-flight deliveries finish within
the grace period, and gives the rest back to the queue without spending their attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from fhir_iapt._logging import log_event
from fhir_iapt.client import RetryPolicy
from fhir_iapt.errors import DeliveryError, FhirIaptError
from fhir_iapt.relay.metrics import RelayMetrics
from fhir_iapt.relay.settings import DeliverySettings
from fhir_iapt.relay.store import Claimed, OutboxStore

_log = logging.getLogger("fhir_iapt.relay.worker")

_MAX_ERROR_CHARS = 500
#: Proportional jitter of outbox waits, "half jitter": each wait is drawn uniformly from
#: ``[backoff / 2, backoff]``. It spreads messages that failed together (an outage) over half
#: their backoff, capped waits included, while every wait stays at least half the nominal one,
#: so the time a message has before it is a dead letter stays predictable (full jitter could
#: spend several attempts within seconds of each other).
OUTBOX_JITTER = 0.5


class Transactor(Protocol):
    """What the worker needs from a FHIR client (``AsyncFhirClient`` is one)."""

    async def transaction(self, bundle: dict[str, Any]) -> Any: ...


def outbox_policy(settings: DeliverySettings) -> RetryPolicy:
    """The outbox's retry policy: the client's statuses, ``[delivery]``'s attempts and backoff.

    Waits double from ``backoff_initial`` up to ``backoff_max``, with :data:`OUTBOX_JITTER`;
    a server's ``Retry-After`` is obeyed up to ``backoff_max``, so no gap between two attempts
    exceeds it. Only attempts bound the outbox (``max_elapsed`` is unlimited).
    """
    return RetryPolicy(
        attempts=settings.max_attempts,
        backoff_initial=settings.backoff_initial,
        backoff_max=settings.backoff_max,
        backoff_multiplier=2.0,
        jitter=0.0,
        jitter_ratio=OUTBOX_JITTER,
        max_elapsed=math.inf,
        retry_after_max=settings.backoff_max,
    )


def retryable(exc: BaseException, policy: RetryPolicy) -> bool:
    """Whether a failed delivery is worth another outbox attempt (see the module docstring)."""
    if isinstance(exc, DeliveryError):
        return policy.retryable_error(exc)
    return True  # e.g. a destination missing from the config: not the message's fault


def error_summary(exc: BaseException) -> str:
    """The ``last_error`` kept for a message: code, status and our message, no patient data."""
    if isinstance(exc, FhirIaptError):
        status = getattr(exc, "status_code", None)
        head = exc.error_code + (f" HTTP {status}" if status else "")
        text = f"{head}: {exc.message}"
    else:
        text = f"FI000: unexpected {type(exc).__name__} during delivery"
    return text[:_MAX_ERROR_CHARS]


class DeliveryWorker:
    """Delivers outbox messages with the clients in ``clients`` (destination name -> client)."""

    def __init__(
        self,
        outbox: OutboxStore,
        clients: Mapping[str, Transactor],
        settings: DeliverySettings,
        metrics: RelayMetrics,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.outbox = outbox
        self.clients = clients
        self.settings = settings
        self.metrics = metrics
        #: Decides and times outbox retries; :func:`outbox_policy` of ``settings`` by default.
        self.policy = policy if policy is not None else outbox_policy(settings)
        self._wake = asyncio.Event()
        self._stopping = False
        self._inflight: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # --- control -------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="fhir-iapt-relay-worker")

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def wake(self) -> None:
        """Ask for a turn now (safe from any thread: routes call it after enqueuing)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    async def stop(self, grace: float) -> None:
        """Stop claiming; wait ``grace`` seconds for in-flight work; release the rest."""
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=grace)
            if not self._task.done():
                self._task.cancel()
                await asyncio.gather(self._task, return_exceptions=True)
        if self._inflight:
            await asyncio.wait(set(self._inflight), timeout=grace)
        leftovers = set(self._inflight)
        for task in leftovers:
            task.cancel()
        if leftovers:
            await asyncio.gather(*leftovers, return_exceptions=True)

    # --- loop ----------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            free = self.settings.concurrency - len(self._inflight)
            claimed: list[Claimed] = []
            if free > 0:
                try:
                    claimed = await asyncio.to_thread(
                        self.outbox.claim, free, lease_seconds=self.settings.lease_seconds
                    )
                except Exception as exc:  # the store failing must not end the loop
                    log_event(
                        _log, logging.ERROR, "outbox claim failed", error_type=type(exc).__name__
                    )
            for message in claimed:
                task = asyncio.create_task(self._deliver(message))
                self._inflight.add(task)
                task.add_done_callback(self._done)
            if self._stopping:
                break
            # Wait for new work, a freed slot (both set the event) or the next due message.
            await self._sleep()

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _sleep(self) -> None:
        timeout = self.settings.poll_interval
        try:
            due = await asyncio.to_thread(self.outbox.next_due)
        except Exception:  # the next poll will tell
            due = None
        if due is not None and len(self._inflight) < self.settings.concurrency:
            timeout = max(0.0, min(timeout, due - self.outbox.clock()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=timeout)

    async def _deliver(self, message: Claimed) -> None:
        started = time.monotonic()
        direction = message.direction
        try:
            client = self.clients.get(message.destination)
            if client is None:
                raise FhirIaptError(
                    f"destination {message.destination!r} is not configured", error_code="FI800"
                )
            bundle = orjson.loads(message.payload)
            await client.transaction(bundle)
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.to_thread(self.outbox.release, message.id))
            raise
        except Exception as exc:
            self.metrics.attempt_seconds.labels(direction).observe(time.monotonic() - started)
            await self._failed(message, exc)
            return
        self.metrics.attempt_seconds.labels(direction).observe(time.monotonic() - started)
        await asyncio.to_thread(self.outbox.mark_delivered, message.id)
        self.metrics.delivered.labels(direction).inc()
        self.metrics.latency.labels(direction).observe(
            max(0.0, self.outbox.clock() - message.created_at)
        )

    async def _failed(self, message: Claimed, exc: Exception) -> None:
        summary = error_summary(exc)
        fields: dict[str, str | int | None] = {
            "message_id": message.id,
            "destination": message.destination,
            "direction": message.direction,
            "error_code": exc.error_code if isinstance(exc, FhirIaptError) else "FI000",
            "http_status": exc.status_code if isinstance(exc, DeliveryError) else None,
            "attempt": message.attempts,
        }
        if not isinstance(exc, FhirIaptError):
            fields["error_type"] = type(exc).__name__
        if retryable(exc, self.policy) and message.attempts < self.policy.attempts:
            asked = exc.retry_after if isinstance(exc, DeliveryError) else None
            wait = self.policy.delay(message.attempts, asked)
            await asyncio.to_thread(self.outbox.mark_failed, message.id, summary, retry_in=wait)
            self.metrics.retried.labels(message.direction).inc()
            log_event(
                _log,
                logging.WARNING,
                "delivery failed, will retry",
                retry_in=round(wait, 3),
                **fields,
            )
            return
        await asyncio.to_thread(self.outbox.mark_dead, message.id, summary)
        self.metrics.dead.labels(message.direction).inc()
        log_event(_log, logging.ERROR, "delivery failed, dead letter", **fields)


__all__ = [
    "OUTBOX_JITTER",
    "DeliveryWorker",
    "Transactor",
    "error_summary",
    "outbox_policy",
    "retryable",
]
