"""The retry policy: a frozen value, run by tenacity for sync and async callers alike.

It is the project's one rule for retries: the client's quick in-process retries and the relay's
outbox (:func:`fhir_iapt.relay.worker.outbox_policy`) both decide and wait with it.

What is retried (:meth:`RetryPolicy.retryable_error`): no HTTP answer at all (connection refused
or dropped, timeouts: the client maps these to :class:`~fhir_iapt.errors.TransportError`) and
answers whose status is in ``retry_statuses`` (408, 429, 500, 502, 503, 504 by default), from the
FHIR server or from a token endpoint. Every other status is final, so a 400 with an
OperationOutcome is reported after one attempt; so are 401 and 403 (an OAuth flow has already
fetched a new token once on a 401: the credentials themselves are refused, and waiting does not
change them) and 425 Too Early (only meaningful for a request sent in TLS early data, which this
client never sends). Other errors (a TLS refusal, a Bundle refused before sending, bad settings)
are final too.

How long: attempt *n* (1-based) is followed by a wait of
``min(backoff_max, backoff_initial * backoff_multiplier ** (n - 1))``, less up to ``jitter_ratio``
of itself (proportional jitter: the wait is drawn from ``[b * (1 - jitter_ratio), b]``), plus
``jitter * random()`` seconds; or by the server's ``Retry-After`` when it asks for longer
(``respect_retry_after``), up to ``retry_after_max``. Retrying stops after ``attempts`` tries,
or earlier when the next wait would end past ``max_elapsed`` seconds from the first try: the
policy never sleeps into time it does not have.

``sleep``, ``async_sleep``, ``clock``, ``wall_clock`` and ``random`` are injectable so tests can
observe waits without spending them; they take no part in equality or ``repr``.
"""

from __future__ import annotations

import asyncio
import math
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity

from fhir_iapt.errors import ConfigError, DeliveryError, TransportError

#: Statuses worth another try: the request may succeed unchanged a little later.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


def retry_after_seconds(response: httpx.Response, now: float) -> float | None:
    """Seconds the server asked to wait (``Retry-After`` as seconds or an HTTP date), or None.

    ``now`` is the wall-clock time (seconds since the epoch) an HTTP date is measured from.
    """
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.fromtimestamp(now, tz=UTC)).total_seconds())


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often to try a request again (see the module docstring for the rules)."""

    attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.5
    #: Proportional jitter: the fraction of each backoff that may be taken off it (0 to 1).
    jitter_ratio: float = 0.0
    max_elapsed: float = 120.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    respect_retry_after: bool = True
    #: The longest ``Retry-After`` obeyed; a longer ask waits this long.
    retry_after_max: float = math.inf
    sleep: Callable[[float], None] = field(default=time.sleep, compare=False, repr=False)
    async_sleep: Callable[[float], Awaitable[None]] = field(
        default=asyncio.sleep, compare=False, repr=False
    )
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    wall_clock: Callable[[], float] = field(default=time.time, compare=False, repr=False)
    random: Callable[[], float] = field(default=_random.random, compare=False, repr=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.attempts < 1:
            problems.append("attempts must be at least 1")
        if self.backoff_initial < 0 or self.backoff_max < 0 or self.jitter < 0:
            problems.append("backoff and jitter must not be negative")
        if not 0 <= self.jitter_ratio <= 1:
            problems.append("jitter_ratio must be between 0 and 1")
        if self.retry_after_max < 0:
            problems.append("retry_after_max must not be negative")
        if self.backoff_multiplier < 1:
            problems.append("backoff_multiplier must be at least 1")
        if self.max_elapsed <= 0:
            problems.append("max_elapsed must be positive")
        if any(not 400 <= status <= 599 for status in self.retry_statuses):
            problems.append("retry_statuses must be HTTP error statuses (400-599)")
        if problems:
            raise ConfigError("invalid retry policy: " + "; ".join(problems))

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retries."""
        return cls(attempts=1)

    # ---- decisions (pure) -------------------------------------------------------------------

    def retryable_status(self, status: int) -> bool:
        """Whether an answer with this HTTP status is worth another try."""
        return status in self.retry_statuses

    def retryable_response(self, response: httpx.Response) -> bool:
        return self.retryable_status(response.status_code)

    def retryable_error(self, error: BaseException) -> bool:
        """Whether a failed exchange is worth another try: no answer, or a retry status."""
        if isinstance(error, TransportError):
            return True
        if isinstance(error, DeliveryError) and error.status_code is not None:
            return self.retryable_status(error.status_code)
        return False

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based), jitter included."""
        try:
            base = self.backoff_initial * self.backoff_multiplier ** (attempt - 1)
        except OverflowError:  # a very late attempt: the cap applies long before this
            base = self.backoff_max
        wait = min(self.backoff_max, base)
        if self.jitter_ratio:
            wait -= wait * self.jitter_ratio * self.random()
        if self.jitter:
            wait += self.jitter * self.random()
        return wait

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date)."""
        return retry_after_seconds(response, self.wall_clock())

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """The wait after failed attempt ``attempt``: the backoff, or the server's longer ask."""
        wait = self.backoff(attempt)
        if retry_after is not None and self.respect_retry_after:
            wait = max(wait, min(retry_after, self.retry_after_max))
        return wait

    def wait_after(self, attempt: int, response: httpx.Response | None) -> float:
        return self.delay(attempt, None if response is None else self.retry_after(response))

    # ---- tenacity ---------------------------------------------------------------------------

    def _tenacity_kwargs(self) -> dict[str, Any]:
        start = self.clock()

        def last_response(state: tenacity.RetryCallState) -> httpx.Response | None:
            outcome = state.outcome
            if outcome is None or outcome.failed:
                return None
            result = outcome.result()
            return result if isinstance(result, httpx.Response) else None

        def wait(state: tenacity.RetryCallState) -> float:
            return self.wait_after(state.attempt_number, last_response(state))

        def stop(state: tenacity.RetryCallState) -> bool:
            if state.attempt_number >= self.attempts:
                return True
            return self.clock() - start + state.upcoming_sleep > self.max_elapsed

        def retry(state: tenacity.RetryCallState) -> bool:
            outcome = state.outcome
            if outcome is None:
                return False
            if outcome.failed:
                error = outcome.exception()
                return error is not None and self.retryable_error(error)
            response = last_response(state)
            return response is not None and self.retryable_response(response)

        def give_up(state: tenacity.RetryCallState) -> Any:
            # Out of attempts or time with an answer in hand: hand it back so the caller maps
            # the final status to an error; a final exception is re-raised as it is.
            outcome = state.outcome
            return None if outcome is None else outcome.result()

        return {
            "wait": wait,
            "stop": stop,
            "retry": retry,
            "retry_error_callback": give_up,
            "reraise": True,
        }

    def retrying(self) -> tenacity.Retrying:
        """A fresh tenacity controller for one synchronous exchange."""
        return tenacity.Retrying(sleep=self.sleep, **self._tenacity_kwargs())

    def async_retrying(self) -> tenacity.AsyncRetrying:
        """A fresh tenacity controller for one asynchronous exchange."""
        return tenacity.AsyncRetrying(sleep=self.async_sleep, **self._tenacity_kwargs())


__all__ = ["DEFAULT_RETRY_STATUSES", "RetryPolicy", "retry_after_seconds"]
