"""The relay killed with SIGKILL and restarted while clients post concurrently (real processes).

``fhir-iapt serve`` (real uvicorn) delivers to a real FHIR server on loopback. Four client
threads post distinct referrals, one record per request, retrying a record until it is
answered 202, as a well-behaved client does. The relay is killed twice mid-stream and restarted
each time on the same data directory while the clients keep posting; then it drains.

Every answer must be 202, or 503 with ``Retry-After`` (the relay still warming up). A refused
connection (the relay down) and a request cut off by the kill are counted apart: the client
retries both. Every record answered 202 reaches the FHIR server exactly once, and a record
posted again is the same message. A monitor polls ``/readyz`` throughout: once a process has
answered a POST 202, it never says "not ready" again (a relay that accepts before it is ready
served those posts from a validator still being built).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from relay_helpers import (
    DIABETES_SYSTEM,
    RelayProcess,
    auth,
    diabetes_csv,
    nhs_number,
    settings_tree,
)

from fhir_iapt.client import FhirClient

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("relay_store")]

RECORDS = 150
CLIENTS = 4
#: A kill once this many records have been answered 202 (of RECORDS).
KILL_AFTER = (40, 100)
DEADLINE_SECONDS = 150.0
DELIVERY = {
    "max_attempts": 100,
    "backoff_initial": 0.2,
    "backoff_max": 1.0,
    "client_attempts": 1,
    "poll_interval": 0.2,
    "timeout_seconds": 5,
    "concurrency": 4,
    # On PostgreSQL a killed relay's leases are not released by its successor: they expire.
    "lease_seconds": 10,
}
HEADERS = {"Content-Type": "text/csv", **auth("clinic")}


@dataclass
class Tally:
    """What the clients saw, shared by their threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    answers: Counter[str] = field(default_factory=Counter)
    #: record id -> every message id a 202 gave it
    accepted: dict[str, set[str]] = field(default_factory=dict)
    wrong: list[str] = field(default_factory=list)
    #: when each 202 was received (monotonic)
    accepted_at: list[float] = field(default_factory=list)
    #: (sent, received) of each /readyz answered 503
    not_ready: list[tuple[float, float]] = field(default_factory=list)

    def count(self, kind: str) -> None:
        with self.lock:
            self.answers[kind] += 1

    def done(self) -> int:
        with self.lock:
            return len(self.accepted)


def _post_until_accepted(
    http: httpx.Client, url: str, record_id: str, seed: int, tally: Tally, deadline: float
) -> None:
    """Post one record until it is answered 202 (or the test's deadline passes)."""
    body = diabetes_csv([{"record_id": record_id, "nhs": nhs_number(seed)}])
    while time.monotonic() < deadline:
        try:
            response = http.post(
                f"{url}/referrals?mapping=diabetes-csv", content=body, headers=HEADERS
            )
        except httpx.ConnectError:
            tally.count("refused")  # the relay is down: try again shortly
            time.sleep(0.05)
            continue
        except httpx.TransportError:
            tally.count("cut off")  # killed while answering: the record may be queued or not
            continue
        if response.status_code == 202:
            tally.count("202")
            message_id = response.json()["accepted"][0]["id"]
            with tally.lock:
                tally.accepted.setdefault(record_id, set()).add(message_id)
                tally.accepted_at.append(time.monotonic())
            return
        retry_after = response.headers.get("retry-after")
        if response.status_code == 503 and retry_after is not None and retry_after.isdigit():
            tally.count("503")
            time.sleep(min(int(retry_after), 1))
            continue
        tally.count(str(response.status_code))
        with tally.lock:
            tally.wrong.append(
                f"{response.status_code} retry-after={retry_after}: {response.text[:300]}"
            )
        time.sleep(0.2)


def _watch_readiness(url: str, tally: Tally, stop: threading.Event) -> None:
    """Poll /readyz until ``stop``, keeping when each "not ready" was asked and answered."""
    with httpx.Client(timeout=10) as http:
        while not stop.is_set():
            sent = time.monotonic()
            try:
                status = http.get(f"{url}/readyz").status_code
            except httpx.TransportError:
                status = None
            if status == 503:
                with tally.lock:
                    tally.not_ready.append((sent, time.monotonic()))
            stop.wait(0.02)


def _ready_after_accepting(tally: Tally, lives: list[tuple[float, float]]) -> list[str]:
    """ "Not ready" answers a relay process gave after it had answered a POST 202."""
    out = []
    for born, died in lives:
        accepted = [t for t in tally.accepted_at if born <= t < died]
        if not accepted:
            continue
        first = min(accepted)
        out += [
            f"202 at {first - born:.2f}s, /readyz 503 at {sent - born:.2f}s of a relay's life"
            for sent, answered in tally.not_ready
            if first < sent and answered < died
        ]
    return out


def _delivered(http: httpx.Client, url: str) -> int:
    """Messages the relay's outbox holds as delivered (its queue-depth gauge)."""
    response = http.get(f"{url}/metrics", headers=auth("reader"))
    response.raise_for_status()
    for line in response.text.splitlines():
        if line.startswith('fhir_iapt_relay_queue_depth{status="delivered"}'):
            return int(float(line.rsplit(" ", 1)[1]))
    raise AssertionError("no delivered gauge in /metrics")


def _on_server(fhir_url: str, record_ids: list[str]) -> dict[str, int]:
    """Record id -> ServiceRequests on the FHIR server carrying its identifier."""

    def count(record_id: str) -> tuple[str, int]:
        with FhirClient(fhir_url) as client:
            found = client.search(
                "ServiceRequest", {"identifier": f"{DIABETES_SYSTEM}|{record_id}"}
            )
        return record_id, len(found.get("entry") or [])

    with ThreadPoolExecutor(4) as pool:
        return dict(pool.map(count, record_ids))


def _start(relay: RelayProcess) -> None:
    """Start the relay; if it never gets ready, fail with its own log lines (not the audit)."""
    try:
        relay.start()
    except RuntimeError:
        own = [line for line in relay.log_text().splitlines() if "AuditEvent" not in line]
        raise AssertionError("the relay did not start:\n" + "\n".join(own[-40:])) from None


@pytest.fixture
def relay(tmp_path: Path, fhir_server: str) -> Iterator[RelayProcess]:
    tree = settings_tree(
        tmp_path / "relay-data", iapt_url=fhir_server, delivery=DELIVERY, intake={"warm_up": True}
    )
    process = RelayProcess(tmp_path / "relay", tree)
    try:
        yield process
    finally:
        process.stop()


def test_kill_and_restart_under_concurrent_posts_answers_202_or_503_and_delivers_once(
    tmp_path: Path, fhir_server: str, relay: RelayProcess
) -> None:
    """SIGKILL twice while four clients post and the worker delivers, restarting on the same
    data directory each time: only 202 or 503-with-Retry-After answers, and every accepted
    record on the FHIR server exactly once."""
    run = tmp_path.name[-12:]
    records = [(f"RST-{run}-{i}", 20_000 + i) for i in range(RECORDS)]
    pending = iter(records)
    pending_lock = threading.Lock()
    tally = Tally()
    deadline = time.monotonic() + DEADLINE_SECONDS

    def client() -> None:
        with httpx.Client(timeout=30) as http:
            while True:
                with pending_lock:
                    item = next(pending, None)
                if item is None:
                    return
                _post_until_accepted(http, relay.url, *item, tally, deadline)

    stop = threading.Event()
    monitor = threading.Thread(target=_watch_readiness, args=(relay.url, tally, stop))
    started = born = time.monotonic()
    lives: list[tuple[float, float]] = []
    _start(relay)
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in [*threads, monitor]:
        thread.start()
    try:
        for threshold in KILL_AFTER:
            while tally.done() < threshold and time.monotonic() < deadline:
                time.sleep(0.005)
            lives.append((born, time.monotonic()))
            relay.kill()
            born = time.monotonic()
            _start(relay)  # same port, same data directory; the clients keep posting
    finally:
        for thread in threads:
            thread.join(timeout=DEADLINE_SECONDS)
        stop.set()
        monitor.join(timeout=30)
    posted = time.monotonic()
    lives.append((born, posted))

    assert tally.wrong == [], tally.answers
    assert set(tally.answers) <= {"202", "503", "refused", "cut off"}, tally.answers
    assert len(tally.accepted) == RECORDS, tally.answers
    assert all(len(ids) == 1 for ids in tally.accepted.values())  # same record, same message
    assert tally.answers["refused"] + tally.answers["cut off"] > 0  # the kills did land
    assert _ready_after_accepting(tally, lives) == []

    messages = set().union(*tally.accepted.values())
    assert len(messages) == RECORDS  # distinct records, distinct messages
    with httpx.Client(timeout=30) as http:  # the data directory is this test's own
        while (delivered := _delivered(http, relay.url)) < RECORDS:
            assert time.monotonic() < deadline, f"{delivered} of {RECORDS} delivered"
            time.sleep(0.2)
        assert delivered == RECORDS
    counts = _on_server(fhir_server, [rid for rid, _ in records])
    assert {rid: n for rid, n in counts.items() if n != 1} == {}
    print(
        f"answers={dict(tally.answers)} posting={posted - started:.1f}s "
        f"drained={time.monotonic() - posted:.1f}s"
    )
