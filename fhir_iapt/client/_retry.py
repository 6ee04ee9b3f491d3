"""The retry policy: a frozen value, run by tenacity for sync and async callers alike.

What is retried: no HTTP answer at all (connection refused or dropped, timeouts: the client maps
these to :class:`~fhir_iapt.errors.TransportError`) and answers whose status is in
``retry_statuses`` (408, 429, 500, 502, 503, 504 by default). Every other status is final, so a
400 with an OperationOutcome is reported after one attempt.

How long: attempt *n* (1-based) is followed by a wait of
``min(backoff_max, backoff_initial * backoff_multiplier ** (n - 1)) + jitter * random()`` seconds,
or by the server's ``Retry-After`` when it asks for longer (``respect_retry_after``). Retrying stops
after ``attempts`` tries, or earlier when the next wait would end past ``max_elapsed`` seconds from
the first try: the policy never sleeps into time it does not have.

``sleep``, ``async_sleep``, ``clock``, ``wall_clock`` and ``random`` are injectable so tests can
observe waits without spending them; they take no part in equality or ``repr``.
"""

from __future__ import annotations

import asyncio
import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import tenacity

from fhir_iapt.errors import ConfigError, TransportError

#: Statuses worth another try: the request may succeed unchanged a little later.
DEFAULT_RETRY_STATUSES: frozenset[int] = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """When and how often to try a request again (see the module docstring for the rules)."""

    attempts: int = 5
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.5
    max_elapsed: float = 120.0
    retry_statuses: frozenset[int] = DEFAULT_RETRY_STATUSES
    respect_retry_after: bool = True
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

    def retryable_response(self, response: httpx.Response) -> bool:
        return response.status_code in self.retry_statuses

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt ``attempt`` (1-based), jitter included."""
        base = self.backoff_initial * self.backoff_multiplier ** (attempt - 1)
        return min(self.backoff_max, base) + self.jitter * self.random()

    def retry_after(self, response: httpx.Response) -> float | None:
        """Seconds the server asked us to wait (``Retry-After`` as seconds or an HTTP date)."""
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
        now = datetime.fromtimestamp(self.wall_clock(), tz=UTC)
        return max(0.0, (when - now).total_seconds())

    def wait_after(self, attempt: int, response: httpx.Response | None) -> float:
        wait = self.backoff(attempt)
        if response is not None and self.respect_retry_after:
            asked = self.retry_after(response)
            if asked is not None:
                wait = max(wait, asked)
        return wait

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
                return isinstance(outcome.exception(), TransportError)
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


__all__ = ["DEFAULT_RETRY_STATUSES", "RetryPolicy"]
