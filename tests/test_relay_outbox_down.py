"""A relay whose outbox cannot be reached answers 503 with Retry-After and an OperationOutcome
(FI822), not 500, and takes the same request once the outbox is back: tested with a real
PostgreSQL server stopped under the running relay, and for SQLite with a write that fails as a
full or broken disk would (a fault a real file cannot give on demand)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import relay_helpers
from fastapi.testclient import TestClient
from relay_helpers import auth, diabetes_csv, make_settings, nhs_number

from fhir_iapt.relay.app import create_app
from fhir_iapt.relay.store import Outbox

CSV = {"Content-Type": "text/csv"}
URL = "/referrals?mapping=diabetes-csv"


def _body(n: int) -> bytes:
    return diabetes_csv([{"record_id": f"DOWN-{n}", "nhs": nhs_number(7000 + n)}])


def _refused_as_unavailable(response: Any) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["Retry-After"] == "5"
    issue = response.json()["issue"][0]
    assert issue["code"] == "transient"
    assert issue["details"]["coding"][0]["code"] == "FI822"
    assert "nothing of this request was accepted" in issue["diagnostics"]


@pytest.fixture
def cluster() -> Iterator[Any]:
    """A PostgreSQL cluster of this test's own (it is stopped and started again)."""
    from postgres_server import PostgresCluster

    with PostgresCluster() as made:
        yield made


@pytest.mark.integration
def test_a_stopped_postgresql_outbox_is_503_and_the_retry_is_taken(
    tmp_path: Path, cluster: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the database stopped, POST /referrals and GET /messages/ID are 503 + Retry-After
    (FI822); once it is back, the refused body is accepted as new, nothing of it kept before."""
    monkeypatch.setattr(relay_helpers, "STORE_URL", cluster.url(cluster.create_database()))
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        first = client.post(URL, content=_body(1), headers={**CSV, **auth("clinic")})
        assert first.status_code == 202, first.text
        message = first.json()["accepted"][0]["id"]
        cluster.pause()
        try:
            _refused_as_unavailable(
                client.post(URL, content=_body(2), headers={**CSV, **auth("clinic")})
            )
            _refused_as_unavailable(client.get(f"/messages/{message}", headers=auth("ops")))
        finally:
            cluster.resume()
        # a client retries as Retry-After says; the pool reconnects within a few turns
        deadline = time.monotonic() + 90
        while True:
            again = client.post(URL, content=_body(2), headers={**CSV, **auth("clinic")})
            if again.status_code != 503 or time.monotonic() > deadline:
                break
            _refused_as_unavailable(again)
            time.sleep(float(again.headers["Retry-After"]))
        assert again.status_code == 202, again.text
        assert again.json()["accepted"][0]["duplicate"] is False
        assert client.get(f"/messages/{message}", headers=auth("ops")).status_code == 200


def test_a_sqlite_outbox_that_cannot_write_is_503(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A SQLite write failing with an I/O error is 503 + Retry-After (FI822), not 500; the same
    body is taken once writes work again."""
    monkeypatch.setattr(relay_helpers, "STORE_URL", None)
    settings = make_settings(tmp_path / "data")
    with TestClient(create_app(settings)) as client:

        def broken(self: Outbox, work: Any) -> Any:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(Outbox, "_write", broken)
        _refused_as_unavailable(
            client.post(URL, content=_body(3), headers={**CSV, **auth("clinic")})
        )
        monkeypatch.undo()
        monkeypatch.setattr(relay_helpers, "STORE_URL", None)
        taken = client.post(URL, content=_body(3), headers={**CSV, **auth("clinic")})
        assert taken.status_code == 202, taken.text
