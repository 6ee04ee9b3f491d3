"""The fault table: what a real server cannot do on demand, scripted with httpx.MockTransport.

Each case counts the attempts the client made and checks the final result. Waits are observed
through the policy's injected ``sleep`` and ``clock``, never spent.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from typing import Any

import httpx
import pytest

from fhir_iapt.client import (
    AsyncFhirClient,
    ClientCredentials,
    FhirClient,
    RetryPolicy,
    attempts_of,
)
from fhir_iapt.errors import AuthError, ConfigError, DeliveryError, ServerError, TransportError

BASE = "https://fhir.example.test/R4"
OUTCOME = {
    "resourceType": "OperationOutcome",
    "issue": [
        {
            "severity": "error",
            "code": "required",
            "diagnostics": "Patient.identifier: required",
            "expression": ["Patient.identifier"],
        }
    ],
}
TRANSACTION = {
    "resourceType": "Bundle",
    "type": "transaction",
    "entry": [
        {
            "fullUrl": "urn:uuid:0b1c1f8e-0000-4000-8000-000000000001",
            "resource": {"resourceType": "Patient", "id": "p1"},
            "request": {"method": "PUT", "url": "Patient/p1"},
        },
    ],
}
RESPONSE = {
    "resourceType": "Bundle",
    "type": "transaction-response",
    "entry": [
        {"response": {"status": "201 Created", "location": "Patient/p1/_history/1"}},
    ],
}

Step = httpx.Response | Exception


class Script:
    """A MockTransport handler answering requests with the given steps, in order."""

    def __init__(self, *steps: Step) -> None:
        self.steps = list(steps)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        step = self.steps.pop(0)
        if isinstance(step, Exception):
            raise step
        return step

    @property
    def attempts(self) -> int:
        return len(self.requests)


class FakeTime:
    """A clock that sleeping advances: the policy's sleep and clock, in one object."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.waits: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    def clock(self) -> float:
        return self.now


def ok() -> httpx.Response:
    return httpx.Response(200, json=RESPONSE)


def policy(fake: FakeTime, **overrides: Any) -> RetryPolicy:
    settings: dict[str, Any] = {
        "attempts": 5,
        "backoff_initial": 0.5,
        "jitter": 0.0,
        "sleep": fake.sleep,
        "clock": fake.clock,
    }
    settings.update(overrides)
    return RetryPolicy(**settings)


def client_for(script: Script, retry: RetryPolicy) -> FhirClient:
    return FhirClient(BASE, retry=retry, transport=httpx.MockTransport(script))


def test_503_then_200_is_retried_once() -> None:
    """503 then 200: two attempts, one backoff wait, the transaction succeeds."""
    fake = FakeTime()
    script = Script(httpx.Response(503), ok())
    with client_for(script, policy(fake)) as client:
        result = client.transaction(TRANSACTION)
    assert script.attempts == 2
    assert result.attempts == 2
    assert result.locations == ("Patient/p1/_history/1",)
    assert fake.waits == [0.5]


def test_retry_is_logged_as_fields_without_the_query(caplog: pytest.LogCaptureFixture) -> None:
    """A retried request leaves one structured log record: method, attempt, status; the
    search query (it may hold an identifier) is not in it."""
    fake = FakeTime()
    script = Script(httpx.Response(503), ok())
    caplog.set_level("WARNING", logger="fhir_iapt.client")
    with client_for(script, policy(fake)) as client:
        client.transaction(TRANSACTION)
    [record] = [r for r in caplog.records if r.name == "fhir_iapt.client"]
    fields = vars(record)
    assert (fields["event"], fields["method"], fields["attempt"], fields["http_status"]) == (
        "request failed, retrying",
        "POST",
        1,
        503,
    )
    assert "?" not in fields["url"]


def test_429_retry_after_seconds_is_honoured() -> None:
    """429 with Retry-After: 7 waits 7 seconds (longer than the backoff), then succeeds."""
    fake = FakeTime()
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}), ok())
    with client_for(script, policy(fake)) as client:
        result = client.transaction(TRANSACTION)
    assert script.attempts == 2
    assert result.ok
    assert fake.waits == [7.0]


def test_429_retry_after_http_date_is_honoured() -> None:
    """Retry-After as an HTTP date waits until that date (by the injected wall clock)."""
    fake = FakeTime()
    now = 1_700_000_000.0
    when = email.utils.formatdate(now + 12, usegmt=True)
    script = Script(httpx.Response(503, headers={"Retry-After": when}), ok())
    with client_for(script, policy(fake, wall_clock=lambda: now)) as client:
        client.transaction(TRANSACTION)
    assert script.attempts == 2
    assert fake.waits == [12.0]


def test_retry_after_is_ignored_when_told_to() -> None:
    """With respect_retry_after off, the backoff alone decides the wait."""
    fake = FakeTime()
    script = Script(httpx.Response(429, headers={"Retry-After": "30"}), ok())
    with client_for(script, policy(fake, respect_retry_after=False)) as client:
        client.transaction(TRANSACTION)
    assert fake.waits == [0.5]


def test_timeout_then_success() -> None:
    """A read timeout is retried; the second attempt succeeds."""
    fake = FakeTime()
    script = Script(httpx.ReadTimeout("timed out"), ok())
    with client_for(script, policy(fake)) as client:
        result = client.transaction(TRANSACTION)
    assert script.attempts == 2
    assert result.ok


def test_timeouts_until_attempts_run_out() -> None:
    """Timeouts every time: all attempts are made, then TransportError FI711 with the request."""
    fake = FakeTime()
    script = Script(*[httpx.ConnectTimeout("timed out") for _ in range(3)])
    with (
        client_for(script, policy(fake, attempts=3)) as client,
        pytest.raises(TransportError) as caught,
    ):
        client.transaction(TRANSACTION)
    assert script.attempts == 3
    assert attempts_of(caught.value) == 3
    assert caught.value.error_code == "FI711"
    assert caught.value.request is not None
    assert caught.value.request.url == BASE
    assert fake.waits == [0.5, 1.0]


def test_dropped_connection_then_success() -> None:
    """A connection dropped before the answer is retried (PUT ids make the resend harmless)."""
    fake = FakeTime()
    script = Script(
        httpx.RemoteProtocolError("Server disconnected without sending a response."), ok()
    )
    with client_for(script, policy(fake)) as client:
        result = client.transaction(TRANSACTION)
    assert script.attempts == 2
    assert result.attempts == 2
    assert script.requests[0].content == script.requests[1].content


def test_400_with_outcome_is_not_retried() -> None:
    """400 with an OperationOutcome: one attempt; the error carries the outcome and the request."""
    fake = FakeTime()
    script = Script(httpx.Response(400, json=OUTCOME))
    with client_for(script, policy(fake)) as client, pytest.raises(ServerError) as caught:
        client.transaction(TRANSACTION)
    error = caught.value
    assert script.attempts == 1
    assert attempts_of(error) == 1
    assert fake.waits == []
    assert error.status_code == 400
    assert error.error_code == "FI721"
    assert error.server_outcome == OUTCOME
    assert error.to_operation_outcome() == OUTCOME
    assert error.request is not None
    assert (error.request.method, error.request.url) == ("POST", BASE)
    assert "error/required at Patient.identifier" in str(error)


@pytest.mark.parametrize("status", [400, 404, 409, 410, 412, 422])
def test_other_4xx_are_final(status: int) -> None:
    """Client errors other than 408 and 429 are never retried."""
    fake = FakeTime()
    script = Script(httpx.Response(status, json=OUTCOME))
    with client_for(script, policy(fake)) as client, pytest.raises(ServerError):
        client.transaction(TRANSACTION)
    assert script.attempts == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504])
def test_retry_statuses_exhaust_attempts_then_raise(status: int) -> None:
    """Each retried status is tried `attempts` times, then raised with the last answer's status."""
    fake = FakeTime()
    script = Script(*[httpx.Response(status, json=OUTCOME) for _ in range(4)])
    with (
        client_for(script, policy(fake, attempts=4)) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.transaction(TRANSACTION)
    assert script.attempts == 4
    assert attempts_of(caught.value) == 4
    assert caught.value.status_code == status
    assert fake.waits == [0.5, 1.0, 2.0]


def test_total_time_bound_stops_before_attempts_run_out() -> None:
    """max_elapsed=10 with waits 4, 8, ...: the second wait would pass the bound, so 2 attempts."""
    fake = FakeTime()
    script = Script(*[httpx.Response(503) for _ in range(10)])
    retry = policy(fake, attempts=10, backoff_initial=4.0, max_elapsed=10.0)
    with client_for(script, retry) as client, pytest.raises(ServerError) as caught:
        client.transaction(TRANSACTION)
    assert script.attempts == 2
    assert fake.waits == [4.0]
    assert caught.value.status_code == 503


def test_retry_after_beyond_time_bound_gives_up_at_once() -> None:
    """A Retry-After longer than the time left is not slept through: one attempt, the 429 raised."""
    fake = FakeTime()
    script = Script(httpx.Response(429, headers={"Retry-After": "600"}))
    with (
        client_for(script, policy(fake, max_elapsed=60.0)) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.transaction(TRANSACTION)
    assert script.attempts == 1
    assert fake.waits == []
    assert caught.value.status_code == 429


def test_backoff_grows_to_its_cap_with_bounded_jitter() -> None:
    """Waits double from the initial value up to backoff_max; jitter adds at most `jitter`."""
    fixed = RetryPolicy(
        backoff_initial=1, backoff_multiplier=2, backoff_max=5, jitter=0.3, random=lambda: 1.0
    )
    assert [fixed.backoff(n) for n in range(1, 6)] == [1.3, 2.3, 4.3, 5.3, 5.3]
    none = RetryPolicy(
        backoff_initial=1, backoff_multiplier=2, backoff_max=5, jitter=0.3, random=lambda: 0.0
    )
    assert [none.backoff(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]


def test_transaction_200_with_failed_entries_is_an_error() -> None:
    """A 200 transaction-response whose entry says 409 raises FI724 naming that entry."""
    fake = FakeTime()
    answer = {
        "resourceType": "Bundle",
        "type": "transaction-response",
        "entry": [
            {"response": {"status": "201 Created", "location": "Patient/p1/_history/1"}},
            {"response": {"status": "409 Conflict", "outcome": OUTCOME}},
        ],
    }
    script = Script(httpx.Response(200, json=answer))
    with client_for(script, policy(fake)) as client, pytest.raises(ServerError) as caught:
        client.transaction(TRANSACTION)
    error = caught.value
    assert script.attempts == 1
    assert error.error_code == "FI724"
    assert error.status_code == 409
    assert error.server_outcome is not None
    assert error.server_outcome["issue"][0]["expression"] == [
        "Bundle.entry[1]",
        "Patient.identifier",
    ]


def test_batch_200_with_failed_entries_is_reported_not_raised() -> None:
    """A batch-response with a failed entry returns per-entry outcomes for the caller."""
    fake = FakeTime()
    answer = {
        "resourceType": "Bundle",
        "type": "batch-response",
        "entry": [
            {"response": {"status": "200 OK"}},
            {"response": {"status": "422 Unprocessable Entity", "outcome": OUTCOME}},
        ],
    }
    script = Script(httpx.Response(200, json=answer))
    batch = {**TRANSACTION, "type": "batch"}
    with client_for(script, policy(fake)) as client:
        result = client.batch(batch)
    assert [(e.index, e.status) for e in result.failed] == [(1, 422)]
    assert result.failed[0].outcome == OUTCOME


def test_answer_that_is_not_a_bundle_is_a_server_error() -> None:
    """A 200 whose body is not a Bundle (e.g. an HTML proxy page) is FI723, not a success."""
    fake = FakeTime()
    script = Script(httpx.Response(200, text="<html>gateway</html>"))
    with client_for(script, policy(fake)) as client, pytest.raises(ServerError) as caught:
        client.transaction(TRANSACTION)
    assert caught.value.error_code == "FI723"


def test_search_query_values_stay_out_of_errors() -> None:
    """A failed search names its parameters but not their values (which may be NHS numbers)."""
    fake = FakeTime()
    script = Script(httpx.Response(500))
    with (
        client_for(script, policy(fake, attempts=1)) as client,
        pytest.raises(ServerError) as caught,
    ):
        client.search("Patient", {"identifier": "https://fhir.nhs.uk/Id/nhs-number|9434765919"})
    assert "9434765919" not in str(caught.value)
    assert caught.value.request is not None
    assert caught.value.request.url == f"{BASE}/Patient?identifier=*"


def test_next_link_to_another_host_is_not_followed() -> None:
    """A next link pointing away from the base URL is refused (credentials stay home)."""
    fake = FakeTime()
    page = {
        "resourceType": "Bundle",
        "type": "searchset",
        "link": [{"relation": "next", "url": "https://elsewhere.test/R4/Patient?page=2"}],
    }
    script = Script(httpx.Response(200, json=page))
    with client_for(script, policy(fake)) as client, pytest.raises(ServerError) as caught:
        client.search("Patient", follow_next=True)
    assert caught.value.error_code == "FI725"
    assert script.attempts == 1


def test_async_client_retries_the_same_way() -> None:
    """AsyncFhirClient: 503, dropped connection, then 200 -> three attempts, two async waits."""
    waits: list[float] = []

    async def async_sleep(seconds: float) -> None:
        waits.append(seconds)

    script = Script(
        httpx.Response(503),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        ok(),
    )

    async def handler(request: httpx.Request) -> httpx.Response:
        return script(request)

    retry = RetryPolicy(jitter=0, async_sleep=async_sleep)

    async def run() -> int:
        async with AsyncFhirClient(
            BASE, retry=retry, transport=httpx.MockTransport(handler)
        ) as client:
            result = await client.transaction(TRANSACTION)
            return result.attempts

    assert asyncio.run(run()) == 3
    assert script.attempts == 3
    assert waits == [0.5, 1.0]


def test_not_a_transaction_bundle_is_refused_without_sending() -> None:
    """transaction() refuses a batch Bundle before any request is made."""
    script = Script()
    with client_for(script, RetryPolicy.never()) as client, pytest.raises(DeliveryError) as caught:
        client.transaction({**TRANSACTION, "type": "batch"})
    assert caught.value.error_code == "FI702"
    assert script.attempts == 0


def test_401_from_server_without_refreshable_auth_is_auth_error() -> None:
    """A 401 with no OAuth flow to refresh is AuthError FI731 after one attempt."""
    script = Script(httpx.Response(401, json=OUTCOME))
    with client_for(script, RetryPolicy()) as client, pytest.raises(AuthError) as caught:
        client.capabilities()
    assert caught.value.error_code == "FI731"
    assert script.attempts == 1


# --- what the relay's outbox needs from the one policy -------------------------------------


def test_final_429_error_carries_the_servers_retry_after() -> None:
    """A 429 given up on keeps the server's Retry-After (seconds) on the error for later."""
    script = Script(httpx.Response(429, headers={"Retry-After": "7"}))
    with client_for(script, RetryPolicy.never()) as client, pytest.raises(ServerError) as caught:
        client.transaction(TRANSACTION)
    assert caught.value.retry_after == 7.0


def test_final_503_error_carries_an_http_date_retry_after_as_seconds() -> None:
    """Retry-After as an HTTP date becomes the seconds from now until that date."""
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    script = Script(httpx.Response(503, headers={"Retry-After": when}), httpx.Response(503))
    with client_for(script, RetryPolicy.never()) as client:
        with pytest.raises(ServerError) as dated:
            client.transaction(TRANSACTION)
        with pytest.raises(ServerError) as plain:
            client.transaction(TRANSACTION)
    assert dated.value.retry_after is not None
    assert 100 <= dated.value.retry_after <= 120
    assert plain.value.retry_after is None


def test_proportional_jitter_spreads_waits_below_the_cap() -> None:
    """jitter_ratio 0.5 draws each wait from [backoff / 2, backoff], capped waits included."""

    def waits(seed: int) -> list[float]:
        spread = RetryPolicy(
            backoff_initial=10,
            backoff_max=40,
            jitter=0,
            jitter_ratio=0.5,
            random=random.Random(seed).random,  # noqa: S311 - jitter, not secrets
        )
        return [spread.backoff(n) for n in range(1, 7)]

    nominal = [10, 20, 40, 40, 40, 40]
    drawn = waits(8)
    assert all(cap / 2 <= wait <= cap for wait, cap in zip(drawn, nominal, strict=True))
    assert len(set(drawn[2:])) == 4  # at the cap the waits still differ
    assert waits(8) == drawn  # a seeded random repeats its waits


def test_jitter_ratio_outside_zero_to_one_is_refused() -> None:
    """A jitter_ratio below 0 or above 1 (negative waits) is a ConfigError."""
    for ratio in (-0.1, 1.5):
        with pytest.raises(ConfigError):
            RetryPolicy(jitter_ratio=ratio)


def test_token_endpoint_unavailable_is_retried_like_the_server() -> None:
    """A 503 from the token endpoint is retried as a 503 from the FHIR server would be."""
    fake = FakeTime()
    token = httpx.Response(
        200, json={"access_token": "t", "token_type": "Bearer", "expires_in": 300}
    )
    caps = httpx.Response(200, json={"resourceType": "CapabilityStatement"})
    script = Script(httpx.Response(503), token, caps)
    auth = ClientCredentials("https://auth.example.test/token", "clinic-a", "s3cret")
    with FhirClient(
        BASE, auth=auth, retry=policy(fake), transport=httpx.MockTransport(script)
    ) as client:
        assert client.capabilities()["resourceType"] == "CapabilityStatement"
    assert script.attempts == 3
    assert fake.waits == [0.5]


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        (TransportError("no answer", error_code="FI712"), True),
        (ServerError("busy", status_code=503, error_code="FI722"), True),
        (ServerError("too early", status_code=425, error_code="FI721"), False),
        (AuthError("refused", status_code=401, error_code="FI731"), False),
        (AuthError("forbidden", status_code=403, error_code="FI732"), False),
        (AuthError("token endpoint busy", status_code=503, error_code="FI733"), True),
        (DeliveryError("TLS handshake failed", error_code="FI714"), False),
        (DeliveryError("not a transaction Bundle", error_code="FI702"), False),
        (ConfigError("bad URL", error_code="FI801"), False),
    ],
)
def test_retryable_error_is_the_one_rule_for_errors(error: Exception, retried: bool) -> None:
    """No answer or a retry status is worth another try; anything else raised is final."""
    assert RetryPolicy().retryable_error(error) is retried


def test_backoff_of_a_very_late_attempt_is_the_cap() -> None:
    """Attempt 5000 (an outbox allowed many attempts) waits backoff_max, it does not overflow."""
    retry = RetryPolicy(attempts=10_000, backoff_initial=1.0, backoff_max=900.0, jitter=0.0)
    assert retry.backoff(5000) == 900.0
