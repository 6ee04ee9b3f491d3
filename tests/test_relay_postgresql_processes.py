"""Two relay processes on one PostgreSQL outbox, one SIGKILLed mid-stream (real processes).

Two ``fhir-iapt serve`` processes (real uvicorn) share one PostgreSQL database (``[store] url``)
and one data directory, and deliver to a real FHIR server (sekmet) through a proxy on loopback
that fails some of the deliveries: every 4th transaction is answered 503 without reaching the
server, and every 7th reaches the server but its answer is lost (the connection is dropped),
so the relay must send it again and the server must not get it twice.

Four clients post distinct referrals, one record per request, alternately to each process; a
client whose process does not answer (refused, or cut off by the kill) sends the same record to
the other, as a load balancer would. Process A is killed with SIGKILL right after it answered a
202, while both are accepting and delivering, and is not restarted: what A accepted but had not
delivered, and what A had claimed (its leases expire), is delivered by B. In the end every
record answered 202 is on the FHIR server exactly once (searched by its identifier): none lost,
none delivered twice.
"""

from __future__ import annotations

import copy
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from postgres_server import PostgresCluster
from relay_helpers import (
    DIABETES_SYSTEM,
    RelayProcess,
    auth,
    diabetes_csv,
    nhs_number,
    settings_tree,
)

from fhir_iapt.client import FhirClient

pytestmark = pytest.mark.integration

RECORDS = 120
CLIENTS = 4
#: A is killed at its first 202 once this many records have been accepted in all.
KILL_AFTER = 40
DEADLINE_SECONDS = 180.0
DELIVERY = {
    "max_attempts": 100,
    "backoff_initial": 0.2,
    "backoff_max": 1.0,
    "client_attempts": 1,
    "poll_interval": 0.2,
    "timeout_seconds": 5,
    "concurrency": 4,
    # what the killed process had claimed is claimable by the other once this has passed
    "lease_seconds": 10,
}
HEADERS = {"Content-Type": "text/csv", **auth("clinic")}


class FailingProxy:
    """An HTTP proxy on loopback in front of the FHIR server that fails some transactions:
    the ``fail_every``-th POST is answered 503 (never forwarded), the ``lose_every``-th is
    forwarded and its answer dropped. Nothing is logged (bodies hold patient data)."""

    def __init__(self, upstream_root: str, *, fail_every: int = 4, lose_every: int = 7) -> None:
        self.upstream = httpx.Client(base_url=upstream_root, timeout=30)
        self.fail_every = fail_every
        self.lose_every = lose_every
        self.tally: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._posts = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                fate = proxy.fate(self.command)
                if fate == "fail":
                    self._answer(503, {"Content-Type": "application/fhir+json"}, b"{}")
                    return
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in ("host", "content-length", "connection")
                }
                answer = proxy.upstream.request(
                    self.command, self.path, content=body, headers=headers
                )
                if fate == "lose":
                    self.close_connection = True  # the server has it; the relay never hears
                    return
                keep = ("content-type", "location", "etag", "last-modified")
                self._answer(
                    answer.status_code,
                    {k: v for k, v in answer.headers.items() if k.lower() in keep},
                    answer.content,
                )

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = _forward
            do_POST = _forward
            do_PUT = _forward

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a relay killed mid-request leaves a broken pipe: expected here

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/fhir"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fate(self, method: str) -> str:
        """What happens to this request: ``fail``, ``lose`` or ``pass`` (POSTs are counted)."""
        with self._lock:
            if method != "POST":
                return "pass"
            self._posts += 1
            n = self._posts
            fate = (
                "fail"
                if n % self.fail_every == 0
                else "lose"
                if n % self.lose_every == 0
                else "pass"
            )
            self.tally[fate] += 1
            return fate

    def __enter__(self) -> FailingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    name = postgres_cluster.create_database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


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


def _queue(http: httpx.Client, url: str) -> dict[str, int]:
    """The outbox's messages by status, from a relay's queue-depth gauge (the shared database)."""
    response = http.get(f"{url}/metrics", headers=auth("reader"))
    response.raise_for_status()
    out: dict[str, int] = {}
    prefix = "fhir_iapt_relay_queue_depth{status="
    for line in response.text.splitlines():
        if line.startswith(prefix):
            status = line[len(prefix) :].split('"')[1]
            out[status] = int(float(line.rsplit(" ", 1)[1]))
    return out


def test_two_processes_one_killed_deliver_every_accepted_record_exactly_once(
    tmp_path: Path, fhir_server: str, pg_url: str
) -> None:
    """Two relays on one PostgreSQL outbox, the FHIR server failing or losing some deliveries,
    one relay SIGKILLed mid-stream: every record answered 202 ends up on the server exactly
    once, including those the killed relay accepted or had claimed."""
    run = tmp_path.name[-12:]
    records = [(f"PG2-{run}-{i}", 30_000 + i) for i in range(RECORDS)]
    root = fhir_server.removesuffix("/fhir")
    with FailingProxy(root) as proxy:
        tree = settings_tree(
            tmp_path / "relay-data",
            iapt_url=proxy.url,
            delivery=DELIVERY,
            intake={"warm_up": True},
            store={"url": pg_url},
        )
        relay_a = RelayProcess(tmp_path / "relay-a", copy.deepcopy(tree))
        relay_b = RelayProcess(tmp_path / "relay-b", copy.deepcopy(tree))
        relays = [relay_a, relay_b]
        lock = threading.Lock()
        accepted: dict[str, set[str]] = {}
        by_a: list[str] = []
        answers: Counter[str] = Counter()
        pending = iter(enumerate(records))
        kill_now = threading.Event()
        deadline = time.monotonic() + DEADLINE_SECONDS

        def post(http: httpx.Client, first: int, record_id: str, seed: int) -> None:
            body = diabetes_csv([{"record_id": record_id, "nhs": nhs_number(seed)}])
            target = first
            while time.monotonic() < deadline:
                relay = relays[target]
                try:
                    response = http.post(
                        f"{relay.url}/referrals?mapping=diabetes-csv", content=body, headers=HEADERS
                    )
                except httpx.TransportError:
                    with lock:
                        answers["no answer"] += 1
                    target = 1 - target  # the other process, as a load balancer would
                    continue
                if response.status_code == 202:
                    message_id = response.json()["accepted"][0]["id"]
                    with lock:
                        answers["202"] += 1
                        accepted.setdefault(record_id, set()).add(message_id)
                        if relay is relay_a:
                            by_a.append(message_id)
                        if relay is relay_a and len(accepted) >= KILL_AFTER:
                            kill_now.set()
                    return
                with lock:
                    answers[str(response.status_code)] += 1
                if response.status_code == 503 and "retry-after" in response.headers:
                    time.sleep(0.5)
                    continue
                raise AssertionError(f"{response.status_code}: {response.text[:300]}")

        def client() -> None:
            with httpx.Client(timeout=30) as http:
                while True:
                    with lock:
                        item = next(pending, None)
                    if item is None:
                        return
                    i, (record_id, seed) = item
                    post(http, i % 2, record_id, seed)

        for relay in relays:
            relay.start()
        threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
        try:
            for thread in threads:
                thread.start()
            assert kill_now.wait(timeout=DEADLINE_SECONDS), answers
            relay_a.kill()
            killed_at = time.time()
            with lock:
                a_ids = list(by_a)
            with psycopg.connect(pg_url) as conn:
                row = conn.execute(
                    "SELECT COUNT(*) FILTER (WHERE status <> 'delivered'),"
                    " COUNT(*) FILTER (WHERE lease_until > %s AND status <> 'delivered')"
                    " FROM outbox_messages WHERE id = ANY(%s)",
                    (killed_at, a_ids),
                ).fetchone()
            assert row is not None
            undelivered_of_a, leased_by_a = row
            for thread in threads:
                thread.join(timeout=DEADLINE_SECONDS)

            assert len(accepted) == RECORDS, answers
            assert all(len(ids) == 1 for ids in accepted.values())  # same record, same message
            assert undelivered_of_a > 0  # the kill left work of A's for B to deliver
            with httpx.Client(timeout=30) as http:
                while (queue := _queue(http, relay_b.url)).get("delivered", 0) < RECORDS:
                    assert time.monotonic() < deadline, queue
                    time.sleep(0.2)
            assert queue == {"delivered": RECORDS, "queued": 0, "failed": 0, "dead": 0}
        finally:
            for thread in threads:
                thread.join(timeout=DEADLINE_SECONDS)
            for relay in relays:
                relay.stop()
        assert proxy.tally["fail"] > 0
        assert proxy.tally["lose"] > 0
        counts = _on_server(fhir_server, [rid for rid, _ in records])
    assert {rid: n for rid, n in counts.items() if n != 1} == {}
    for relay in relays:
        log = relay.log_text()
        assert not [seed for _, seed in records if nhs_number(seed) in log]
    print(
        f"answers={dict(answers)} proxy={dict(proxy.tally)} A accepted={len(a_ids)}"
        f" of which undelivered at the kill={undelivered_of_a} (leased={leased_by_a})"
    )
