"""The delivery worker: real FHIR server for success, injected transports for faults.

Faults a real server cannot produce on demand (a 400 that quotes patient data, a 503, a hang)
come from ``httpx.MockTransport``; everything else is the real client and the real outbox, each
test that has one run on SQLite and on PostgreSQL (``relay_store``).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from relay_helpers import open_outbox

from fhir_iapt.client import AsyncFhirClient, FhirClient, RetryPolicy
from fhir_iapt.relay.destinations import FittedClient
from fhir_iapt.relay.metrics import RelayMetrics
from fhir_iapt.relay.settings import DeliverySettings
from fhir_iapt.relay.store import NewMessage, Outbox, OutboxStore
from fhir_iapt.relay.worker import DeliveryWorker, Transactor

SYSTEM = "https://fhir-iapt.github.io/fhir/Id/relay-worker-test"
FAST = DeliverySettings(
    max_attempts=3,
    backoff_initial=0.05,
    backoff_max=0.1,
    poll_interval=0.05,
    concurrency=2,
    lease_seconds=30,
)


def _bundle(value: str) -> dict[str, Any]:
    """A transaction creating one Basic resource by identifier (conditional create)."""
    return {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, value)}",
                "resource": {
                    "resourceType": "Basic",
                    "identifier": [{"system": SYSTEM, "value": value}],
                    "code": {"text": "relay worker test"},
                },
                "request": {
                    "method": "POST",
                    "url": "Basic",
                    "ifNoneExist": f"identifier={SYSTEM}|{value}",
                },
            }
        ],
    }


def _outbox(tmp_path: Path, clock: Callable[[], float] | None = None) -> OutboxStore:
    """The test's outbox (SQLite, or PostgreSQL under ``relay_store``), opened."""
    return open_outbox(tmp_path / "outbox.sqlite3", clock=clock, synchronous="normal")


def _run(
    outbox: OutboxStore,
    make_clients: Callable[[], dict[str, Transactor]],
    until: Callable[[], bool],
    settings: DeliverySettings = FAST,
    timeout: float = 30.0,
) -> RelayMetrics:
    """Run a worker until ``until()`` holds (or time out), then stop it gracefully.

    Clients are made inside the event loop they are used (and closed) in.
    """
    metrics = RelayMetrics(outbox.counts)

    async def main() -> None:
        clients = make_clients()
        worker = DeliveryWorker(outbox, clients, settings, metrics)
        worker.start()
        try:
            async with asyncio.timeout(timeout):
                while not until():
                    await asyncio.sleep(0.05)
        finally:
            await worker.stop(grace=2.0)
            for client in clients.values():
                if isinstance(client, AsyncFhirClient | FittedClient):
                    await client.aclose()

    asyncio.run(main())
    return metrics


def _mock(handler: Callable[[httpx.Request], httpx.Response]) -> AsyncFhirClient:
    return AsyncFhirClient(
        "http://fhir.test/fhir", retry=RetryPolicy.never(), transport=httpx.MockTransport(handler)
    )


@pytest.mark.integration
@pytest.mark.usefixtures("relay_store")
def test_delivers_each_message_once_to_a_real_server(tmp_path: Path, fhir_server: str) -> None:
    """Queued bundles reach the real FHIR server, are marked delivered, exactly one each."""
    outbox = _outbox(tmp_path)
    values = [f"w-{uuid.uuid4().hex}" for _ in range(3)]
    ids = [
        e.id
        for e in outbox.enqueue(
            [NewMessage("referral", "iapt", v, orjson.dumps(_bundle(v))) for v in values]
        )
    ]

    def delivered() -> bool:
        return all((i := outbox.info(m)) is not None and i.status == "delivered" for m in ids)

    metrics = _run(
        outbox,
        lambda: {"iapt": AsyncFhirClient(fhir_server, retry=RetryPolicy(attempts=2))},
        delivered,
    )
    rendered = metrics.render().decode()  # reads the queue depth: before the outbox closes
    outbox.close()
    assert 'fhir_iapt_relay_delivered_total{direction="referral"} 3.0' in rendered
    with FhirClient(fhir_server) as sync:
        for value in values:
            found = sync.search("Basic", {"identifier": f"{SYSTEM}|{value}"})
            assert found.get("total", len(found.get("entry", []))) == 1


@pytest.mark.usefixtures("relay_store")
def test_refused_bundle_is_dead_at_once_without_server_diagnostics(tmp_path: Path) -> None:
    """A 400 is a dead letter on the first attempt; the server's diagnostics are not kept."""

    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            400,
            json={
                "resourceType": "OperationOutcome",
                "issue": [
                    {
                        "severity": "error",
                        "code": "invalid",
                        "diagnostics": "NHS number 9000000009 is not known",
                    }
                ],
            },
        )

    outbox = _outbox(tmp_path)
    payload = orjson.dumps(_bundle("refused"))
    [item] = outbox.enqueue([NewMessage("referral", "iapt", "k", payload)])

    def dead() -> bool:
        info = outbox.info(item.id)
        return info is not None and info.status == "dead"

    _run(outbox, lambda: {"iapt": _mock(refuse)}, dead)
    info = outbox.info(item.id)
    assert info is not None
    assert info.attempts == 1
    assert info.last_error is not None
    assert info.last_error.startswith("FI721 HTTP 400")
    assert "9000000009" not in info.last_error
    assert outbox.payload(item.id) == payload
    outbox.close()


@pytest.mark.usefixtures("relay_store")
def test_unavailable_server_is_retried_then_dead(tmp_path: Path) -> None:
    """503 is retried with persisted backoff; after max_attempts the message is dead."""
    calls: list[float] = []

    def unavailable(request: httpx.Request) -> httpx.Response:
        calls.append(1.0)
        return httpx.Response(503)

    outbox = _outbox(tmp_path)
    [item] = outbox.enqueue([NewMessage("outcome", "clinic", "k", orjson.dumps(_bundle("u")))])

    def dead() -> bool:
        info = outbox.info(item.id)
        return info is not None and info.status == "dead"

    metrics = _run(outbox, lambda: {"clinic": _mock(unavailable)}, dead)
    info = outbox.info(item.id)
    assert info is not None
    assert (info.attempts, len(calls)) == (3, 3)
    assert info.last_error is not None
    assert "HTTP 503" in info.last_error
    text = metrics.render().decode()
    assert 'fhir_iapt_relay_retried_total{direction="outcome"} 2.0' in text
    assert 'fhir_iapt_relay_dead_total{direction="outcome"} 1.0' in text
    outbox.close()


@pytest.mark.usefixtures("relay_store")
def test_no_server_waits_in_the_queue(tmp_path: Path) -> None:
    """Connection refused is not the message's fault: it stays failed, due again later."""
    outbox = _outbox(tmp_path)
    [item] = outbox.enqueue([NewMessage("referral", "iapt", "k", orjson.dumps(_bundle("n")))])
    slow = DeliverySettings(max_attempts=5, backoff_initial=60, poll_interval=0.05)

    def failed() -> bool:
        info = outbox.info(item.id)
        return info is not None and info.status == "failed"

    _run(
        outbox,
        lambda: {"iapt": AsyncFhirClient("http://127.0.0.1:9/fhir", retry=RetryPolicy.never())},
        failed,
        settings=slow,
    )
    info = outbox.info(item.id)
    assert info is not None
    assert info.last_error is not None
    assert info.last_error.startswith("FI712")
    # Half jitter: the wait is drawn from [backoff / 2, backoff], so due again 30-60 s later.
    assert info.updated_at + 30 <= info.next_attempt_at <= info.updated_at + 60
    outbox.close()


@pytest.mark.usefixtures("relay_store")
def test_shutdown_returns_in_flight_work_to_the_queue(tmp_path: Path) -> None:
    """A delivery still running when the grace period ends is released, its attempt unspent."""
    started = asyncio.Event()

    class Hanging:
        async def transaction(self, bundle: dict[str, Any]) -> Any:
            started.set()
            await asyncio.sleep(3600)

    outbox = _outbox(tmp_path)
    [item] = outbox.enqueue([NewMessage("referral", "iapt", "k", b"{}")])
    metrics = RelayMetrics(outbox.counts)

    async def main() -> None:
        worker = DeliveryWorker(outbox, {"iapt": Hanging()}, FAST, metrics)
        worker.start()
        await asyncio.wait_for(started.wait(), timeout=10)
        await worker.stop(grace=0.2)

    asyncio.run(main())
    info = outbox.info(item.id)
    assert info is not None
    assert (info.status, info.attempts, info.leased) == ("queued", 0, False)
    outbox.close()


@pytest.mark.usefixtures("relay_store")
def test_unconfigured_destination_waits(tmp_path: Path) -> None:
    """A message for a destination no longer configured is kept (failed), not dropped."""
    outbox = _outbox(tmp_path)
    [item] = outbox.enqueue([NewMessage("outcome", "gone", "k", b"{}")])
    never: Callable[[httpx.Request], httpx.Response] = lambda r: httpx.Response(200)  # noqa: E731

    def failed() -> bool:
        info = outbox.info(item.id)
        return info is not None and info.status == "failed"

    _run(outbox, lambda: {"iapt": _mock(never)}, failed)
    info = outbox.info(item.id)
    assert info is not None
    assert info.last_error is not None
    assert "not configured" in info.last_error
    outbox.close()


@pytest.mark.integration
@pytest.mark.usefixtures("relay_store")
def test_conditional_creates_fit_the_server(tmp_path: Path, fhir_server: str) -> None:
    """A QuestionnaireResponse sent as a conditional create (which this server cannot search
    by identifier) is PUT under its deterministic id instead: both sends succeed, one id."""
    value = f"qr-{uuid.uuid4().hex}"
    qr_id = str(uuid.uuid5(uuid.NAMESPACE_URL, value))
    bundle = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": f"urn:uuid:{qr_id}",
                "resource": {
                    "resourceType": "QuestionnaireResponse",
                    "id": qr_id,
                    "identifier": {"system": SYSTEM, "value": value},
                    "status": "completed",
                },
                "request": {
                    "method": "POST",
                    "url": "QuestionnaireResponse",
                    "ifNoneExist": f"identifier={SYSTEM}|{value}",
                },
            }
        ],
    }
    outbox = _outbox(tmp_path)
    payload = orjson.dumps(bundle)
    first, second = outbox.enqueue(
        [
            NewMessage("outcome", "clinic", "a", payload),
            NewMessage("outcome", "clinic", "b", payload),
        ]
    )

    def delivered() -> bool:
        return all(
            (i := outbox.info(m.id)) is not None and i.status == "delivered"
            for m in (first, second)
        )

    _run(outbox, lambda: {"clinic": FittedClient(AsyncFhirClient(fhir_server), "auto")}, delivered)
    outbox.close()
    with FhirClient(fhir_server) as sync:
        stored = sync.read("QuestionnaireResponse", qr_id)
    assert stored["identifier"]["value"] == value


# --- one retry policy: the outbox decides and waits as RetryPolicy says -----------------------

STATUSES = range(400, 600)
#: Outbox settings where a retried message stays ``failed`` (its next try an hour away).
PARKED = DeliverySettings(
    max_attempts=2,
    backoff_initial=3600,
    backoff_max=3600,
    poll_interval=0.05,
    concurrency=16,
    lease_seconds=30,
)


def _status_of(request: httpx.Request) -> int:
    """The status a test bundle asks the mock server to answer (its identifier value)."""
    bundle = orjson.loads(request.content)
    return int(bundle["entry"][0]["resource"]["identifier"][0]["value"])


@pytest.fixture(scope="module")
def outbox_decisions(tmp_path_factory: pytest.TempPathFactory) -> dict[int, str]:
    """One worker run over a message per status 400-599; the status each message ended in.
    (On SQLite only: what is decided is the policy's, whichever store keeps it.)"""
    outbox = Outbox(tmp_path_factory.mktemp("decisions") / "outbox.sqlite3", synchronous="normal")
    outbox.open()
    items = outbox.enqueue(
        [
            NewMessage("referral", "iapt", str(status), orjson.dumps(_bundle(str(status))))
            for status in STATUSES
        ]
    )
    ids = {item.id: status for item, status in zip(items, STATUSES, strict=True)}

    def settled() -> bool:
        return all(
            (i := outbox.info(m)) is not None and i.status in ("failed", "dead") for m in ids
        )

    _run(
        outbox,
        lambda: {"iapt": _mock(lambda r: httpx.Response(_status_of(r)))},
        settled,
        settings=PARKED,
    )
    infos = {status: outbox.info(message_id) for message_id, status in ids.items()}
    outbox.close()
    return {status: info.status for status, info in infos.items() if info is not None}


@pytest.mark.parametrize("status", STATUSES)
def test_outbox_retries_exactly_the_statuses_the_client_policy_retries(
    outbox_decisions: dict[int, str], status: int
) -> None:
    """For every error status the outbox retries (failed) iff the client's RetryPolicy would."""
    client_retries = RetryPolicy().retryable_response(httpx.Response(status))
    assert outbox_decisions[status] == ("failed" if client_retries else "dead")


@pytest.mark.usefixtures("relay_store")
def test_tls_refusal_is_a_dead_letter_as_the_client_decides(tmp_path: Path) -> None:
    """A refused TLS handshake (FI714), final for the client, is a dead letter at once."""

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("handshake") from ssl.SSLCertVerificationError("untrusted")

    outbox = _outbox(tmp_path)
    [item] = outbox.enqueue([NewMessage("referral", "iapt", "k", orjson.dumps(_bundle("t")))])

    def settled() -> bool:
        info = outbox.info(item.id)
        return info is not None and info.status in ("failed", "dead")

    _run(outbox, lambda: {"iapt": _mock(refuse)}, settled, settings=PARKED)
    info = outbox.info(item.id)
    outbox.close()
    assert info is not None
    assert info.last_error is not None
    assert info.last_error.startswith("FI714")
    assert (info.status, info.attempts) == ("dead", 1)


@pytest.mark.usefixtures("relay_store")
def test_messages_failing_together_come_due_apart(tmp_path: Path) -> None:
    """After an outage, messages failing at the same instant get different, jittered due times."""
    now = 1_800_000_000.0
    outbox = _outbox(tmp_path, clock=lambda: now)
    items = outbox.enqueue(
        [NewMessage("referral", "iapt", f"k{n}", orjson.dumps(_bundle(f"j{n}"))) for n in range(20)]
    )
    settings = DeliverySettings(
        max_attempts=3,
        backoff_initial=60,
        backoff_max=600,
        poll_interval=0.05,
        concurrency=4,
        lease_seconds=30,
    )

    def failed() -> bool:
        return all((i := outbox.info(m.id)) is not None and i.status == "failed" for m in items)

    _run(outbox, lambda: {"iapt": _mock(lambda r: httpx.Response(503))}, failed, settings=settings)
    infos = [outbox.info(item.id) for item in items]
    outbox.close()
    waits = [info.next_attempt_at - now for info in infos if info is not None]
    assert len(set(waits)) == len(items)
    assert all(30 <= wait <= 60 for wait in waits)  # half jitter of the first 60 s backoff


@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.usefixtures("relay_store")
def test_retry_after_longer_than_the_backoff_is_waited(tmp_path: Path, status: int) -> None:
    """A final 429/503 asking Retry-After: 30 is tried again no sooner than 30 s later."""
    now = 1_800_000_000.0
    outbox = _outbox(tmp_path, clock=lambda: now)
    [item] = outbox.enqueue([NewMessage("referral", "iapt", "k", orjson.dumps(_bundle("r")))])
    settings = DeliverySettings(
        max_attempts=3, backoff_initial=0.05, backoff_max=600, poll_interval=0.05
    )

    def failed() -> bool:
        info = outbox.info(item.id)
        return info is not None and info.status == "failed"

    answer = httpx.Response(status, headers={"Retry-After": "30"})
    _run(outbox, lambda: {"iapt": _mock(lambda r: answer)}, failed, settings=settings)
    info = outbox.info(item.id)
    outbox.close()
    assert info is not None
    assert 30 <= info.next_attempt_at - now <= settings.backoff_max


@pytest.mark.usefixtures("relay_store")
def test_retry_after_is_capped_at_backoff_max(tmp_path: Path) -> None:
    """A server asking for a day's wait gets backoff_max: no gap between tries exceeds it."""
    now = 1_800_000_000.0
    outbox = _outbox(tmp_path, clock=lambda: now)
    [item] = outbox.enqueue([NewMessage("referral", "iapt", "k", orjson.dumps(_bundle("c")))])
    settings = DeliverySettings(
        max_attempts=3, backoff_initial=0.05, backoff_max=600, poll_interval=0.05
    )

    def failed() -> bool:
        info = outbox.info(item.id)
        return info is not None and info.status == "failed"

    answer = httpx.Response(503, headers={"Retry-After": "86400"})
    _run(outbox, lambda: {"iapt": _mock(lambda r: answer)}, failed, settings=settings)
    info = outbox.info(item.id)
    outbox.close()
    assert info is not None
    assert info.next_attempt_at - now == settings.backoff_max


@pytest.mark.usefixtures("relay_store")
def test_worker_logs_structured_fields_without_patient_data(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Retry and dead-letter log records carry message id, destination, error code and attempt
    as fields, and hold neither the bundle's NHS number nor the server's diagnostics."""
    nhs_number = "9434765919"
    diagnostics = f"NHS number {nhs_number} is not known"

    def answer(request: httpx.Request) -> httpx.Response:
        if b"refused" in request.content:
            return httpx.Response(
                400,
                json={
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "invalid", "diagnostics": diagnostics}],
                },
            )
        return httpx.Response(503)

    def with_patient(value: str) -> bytes:
        bundle = _bundle(value)
        bundle["entry"].append(
            {
                "fullUrl": f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, value + '-patient')}",
                "resource": {
                    "resourceType": "Patient",
                    "identifier": [
                        {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": nhs_number}
                    ],
                },
                "request": {"method": "POST", "url": "Patient"},
            }
        )
        return orjson.dumps(bundle)

    outbox = _outbox(tmp_path)
    refused, busy = outbox.enqueue(
        [
            NewMessage("referral", "iapt", "a", with_patient("refused")),
            NewMessage("outcome", "clinic", "b", with_patient("busy")),
        ]
    )

    def settled() -> bool:
        return all(
            (i := outbox.info(m.id)) is not None and i.status in ("failed", "dead")
            for m in (refused, busy)
        )

    caplog.set_level(logging.INFO, logger="fhir_iapt.relay.worker")
    _run(outbox, lambda: {"iapt": _mock(answer), "clinic": _mock(answer)}, settled, settings=PARKED)
    outbox.close()
    records = {
        getattr(r, "message_id", None): r
        for r in caplog.records
        if r.name == "fhir_iapt.relay.worker"
    }
    assert {refused.id, busy.id} <= set(records)
    dead, retried = records[refused.id], records[busy.id]
    assert (dead.destination, dead.error_code, dead.attempt) == ("iapt", "FI721", 1)  # type: ignore[attr-defined]
    assert (retried.destination, retried.error_code, retried.attempt) == ("clinic", "FI722", 1)  # type: ignore[attr-defined]
    assert 1800 <= retried.retry_in <= 3600  # type: ignore[attr-defined]
    for record in (dead, retried):
        text = record.getMessage() + " " + " ".join(map(str, vars(record).values()))
        assert nhs_number not in text
        assert "not known" not in text
