"""The relay as users run it: ``fhir-iapt serve`` (real uvicorn) and a real FHIR server.

* records posted while the FHIR server is down are delivered once it comes back;
* a relay killed with SIGKILL in the middle of a stream of posts and deliveries, then restarted,
  loses nothing and duplicates nothing on the server (counted by identifier there).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from fhir_server import ServerFactory
from relay_helpers import (
    DIABETES_SYSTEM,
    RelayProcess,
    auth,
    diabetes_csv,
    nhs_number,
    settings_tree,
    wait_for,
)

from fhir_iapt.client import FhirClient

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("relay_store")]

CSV = {"Content-Type": "text/csv"}
FAST_DELIVERY = {
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


def _relay(tmp_path: Path, fhir_url: str) -> RelayProcess:
    tree = settings_tree(
        tmp_path / "relay-data",
        iapt_url=fhir_url,
        delivery=FAST_DELIVERY,
        intake={"warm_up": True},
    )
    return RelayProcess(tmp_path / "relay", tree)


def _post(http: httpx.Client, relay: RelayProcess, record_id: str, seed: int) -> str:
    data = diabetes_csv([{"record_id": record_id, "nhs": nhs_number(seed)}])
    response = http.post(
        f"{relay.url}/referrals?mapping=diabetes-csv",
        content=data,
        headers={**CSV, **auth("clinic")},
        timeout=120,
    )
    assert response.status_code == 202, response.text
    message_id: str = response.json()["accepted"][0]["id"]
    return message_id


def _status(http: httpx.Client, relay: RelayProcess, message_id: str) -> dict[str, Any]:
    response = http.get(f"{relay.url}/messages/{message_id}", headers=auth("reader"))
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def _count(fhir_url: str, record_id: str) -> int:
    """ServiceRequests on the server carrying this clinic record's identifier."""
    with FhirClient(fhir_url) as client:
        bundle = client.search("ServiceRequest", {"identifier": f"{DIABETES_SYSTEM}|{record_id}"})
    return len(bundle.get("entry") or [])


def test_posted_while_server_down_delivered_when_it_returns(
    tmp_path: Path, fhir_server_factory: ServerFactory
) -> None:
    """Accepted while the FHIR server is down, queued with the error, delivered once it is up."""
    server = fhir_server_factory(start=False)
    relay = _relay(tmp_path, server.url)
    relay.start()
    try:
        with httpx.Client() as http:
            records = [(f"DOWN-{i}", 500 + i) for i in range(4)]
            ids = {rid: _post(http, relay, rid, seed) for rid, seed in records}

            def all_failed_once() -> bool:
                return all(_status(http, relay, m)["attempts"] >= 1 for m in ids.values())

            wait_for(all_failed_once, timeout=60)
            for message_id in ids.values():
                status = _status(http, relay, message_id)
                assert status["status"] in ("queued", "failed")
                assert status["last_error"].startswith("FI712")
            server.start()

            def all_delivered() -> bool:
                return all(_status(http, relay, m)["status"] == "delivered" for m in ids.values())

            wait_for(all_delivered, timeout=120)
        for rid, _ in records:
            assert _count(server.url, rid) == 1
    finally:
        relay.stop()
    log = relay.log_text()
    assert '"resourceType":"AuditEvent"' in log
    for _, seed in records:
        assert nhs_number(seed) not in log


def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    tmp_path: Path, fhir_server: str
) -> None:
    """SIGKILL while posting and delivering; restart; re-post what was not acknowledged:
    every record ends up on the server exactly once."""
    run = tmp_path.name[-12:]
    records = [(f"KILL-{run}-{i}", 1000 + i) for i in range(30)]
    relay = _relay(tmp_path, fhir_server)
    relay.start()
    acknowledged: dict[str, str] = {}
    killed = threading.Event()

    def poster() -> None:
        with httpx.Client() as http:
            for rid, seed in records:
                if killed.is_set():
                    return
                try:
                    acknowledged[rid] = _post(http, relay, rid, seed)
                except (httpx.TransportError, AssertionError):
                    return

    thread = threading.Thread(target=poster)
    thread.start()
    try:
        wait_for(lambda: len(acknowledged) >= 10, timeout=180, interval=0.01)
        relay.kill()
        killed.set()
        thread.join(timeout=60)
        assert len(acknowledged) < len(records)
        relay.start()
        with httpx.Client() as http:
            # The client re-sends everything it is unsure of, and a few it was sure of.
            resent = {
                rid: _post(http, relay, rid, seed)
                for rid, seed in records
                if rid not in acknowledged or rid.endswith(("-0", "-5"))
            }
            for rid, message_id in resent.items():
                if rid in acknowledged:
                    assert message_id == acknowledged[rid]  # same record: same message
            every = {**acknowledged, **resent}
            assert len(every) == len(records)

            def all_delivered() -> bool:
                return all(_status(http, relay, m)["status"] == "delivered" for m in every.values())

            wait_for(all_delivered, timeout=180)
        for rid, _ in records:
            assert _count(fhir_server, rid) == 1, rid
    finally:
        killed.set()
        thread.join(timeout=60)
        relay.stop()


def test_graceful_stop_exits_cleanly(tmp_path: Path, fhir_server: str) -> None:
    """SIGTERM: the relay shuts down through its lifespan, releases its data directory, and a
    restart on the same directory works (uvicorn re-raises the signal, hence exit -15)."""
    relay = _relay(tmp_path, fhir_server)
    relay.start()
    assert relay.stop() in (0, -15)
    assert "Application shutdown complete" in relay.log_text()
    relay.start()
    with httpx.Client() as http:
        message_id = _post(http, relay, f"TERM-{tmp_path.name[-12:]}", 77)
        wait_for(lambda: _status(http, relay, message_id)["status"] == "delivered", timeout=120)
    assert relay.stop() in (0, -15)
