"""The delivery worker: an asyncio loop that drains the outbox into the destinations.

Each turn claims due messages (leased, attempt counted) up to the free delivery slots and sends
each bundle with its destination's client, whose :class:`~fhir_iapt.client.RetryPolicy` makes a
few quick retries inside one attempt. What happens next is decided here, once:

* delivered: marked delivered, latency observed;
* no answer (:class:`~fhir_iapt.errors.TransportError`), statuses 408, 429, 5xx, or 401/403 (the
  relay's own credentials, fixed by the operator, not by changing the message), and any failure
  not tied to the message: back to the queue after an exponential backoff persisted in
  ``next_attempt_at`` (so it survives a restart), until ``max_attempts``;
* any other 4xx (the server refuses this bundle), or the client refusing to send it (not a
  transaction): a dead letter at once;
* the last attempt failed: a dead letter, payload and last error kept until replayed.

The error kept (``last_error``) is the project's code, the HTTP status and the client's message,
which names the method and URL but never headers, bodies or the server's diagnostics (those
may quote patient values); only the server's issue codes are kept from its OperationOutcome.

Shutdown (:meth:`DeliveryWorker.stop`) stops claiming, lets in-flight deliveries finish within
the grace period, and gives the rest back to the queue without spending their attempt.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any, Protocol

import orjson

from fhir_iapt.errors import AuthError, DeliveryError, FhirIaptError, TransportError
from fhir_iapt.relay.metrics import RelayMetrics
from fhir_iapt.relay.settings import DeliverySettings
from fhir_iapt.relay.store import Claimed, Outbox

_log = logging.getLogger("fhir_iapt.relay.worker")

#: HTTP statuses that say "try again later" rather than "this bundle is wrong".
_RETRY_STATUSES = frozenset({401, 403, 408, 425, 429, 500, 502, 503, 504})
_MAX_ERROR_CHARS = 500
#: Client errors without an HTTP answer that are about the relay's set-up (TLS), not the bundle.
_CONFIG_CODES = frozenset({"FI714"})


class Transactor(Protocol):
    """What the worker needs from a FHIR client (``AsyncFhirClient`` is one)."""

    async def transaction(self, bundle: dict[str, Any]) -> Any: ...


def backoff(settings: DeliverySettings, attempts: int) -> float:
    """Seconds to wait after failed outbox attempt ``attempts`` (1-based)."""
    wait = settings.backoff_initial * 2.0 ** max(attempts - 1, 0)
    return float(min(settings.backoff_max, wait))


def retryable(exc: FhirIaptError) -> bool:
    """Whether a failed delivery is worth another outbox attempt (see the module docstring)."""
    if not isinstance(exc, DeliveryError):
        return True  # e.g. a destination missing from the config: not the message's fault
    if exc.status_code is not None:
        return exc.status_code in _RETRY_STATUSES or exc.status_code >= 500
    # No answer, no token, TLS set up wrong: the message waits for a fix. Anything else is the
    # client refusing to send this bundle (e.g. not a transaction): it will never go.
    return isinstance(exc, TransportError | AuthError) or exc.error_code in _CONFIG_CODES


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
        outbox: Outbox,
        clients: Mapping[str, Transactor],
        settings: DeliverySettings,
        metrics: RelayMetrics,
    ) -> None:
        self.outbox = outbox
        self.clients = clients
        self.settings = settings
        self.metrics = metrics
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
                    _log.error("outbox claim failed: %s", type(exc).__name__)
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
        again = retryable(exc) if isinstance(exc, FhirIaptError) else True
        if again and message.attempts < self.settings.max_attempts:
            wait = backoff(self.settings, message.attempts)
            await asyncio.to_thread(self.outbox.mark_failed, message.id, summary, retry_in=wait)
            self.metrics.retried.labels(message.direction).inc()
            _log.warning(
                "message %s attempt %d failed, retry in %.1fs: %s",
                message.id, message.attempts, wait, summary,
            )
            return
        await asyncio.to_thread(self.outbox.mark_dead, message.id, summary)
        self.metrics.dead.labels(message.direction).inc()
        _log.error("message %s is a dead letter after %d attempt(s): %s",
                   message.id, message.attempts, summary)


__all__ = ["DeliveryWorker", "Transactor", "backoff", "error_summary", "retryable"]
