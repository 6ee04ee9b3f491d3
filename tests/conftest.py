"""Shared fixtures: a real FHIR server on loopback (sekmet-fhir, see ``tests/fhir_server.py``).

``fhir_server``          session-scoped; the FHIR base URL (``http://127.0.0.1:<port>/fhir``) of
                         one server shared by the whole run. Tests must not assume it is empty:
                         use identifiers unique to the test.
``fhir_server_factory``  function-scoped; a callable ``factory(*, start=True, server_auth=None)``
                         returning a fresh :class:`FhirServer` (own port, own empty database) with
                         ``.url``, ``.start()``, ``.stop()``, ``.running``. Stop it and start it
                         again to take the server down and bring it back with its data. Every
                         server it made is stopped when the test ends.
``postgres_cluster``     session-scoped; a throwaway PostgreSQL cluster on loopback
                         (``tests/postgres_server.py``), started only if a test asks for it.
``relay_store``          function-scoped, parametrized ``sqlite`` / ``postgresql`` (marked
                         ``integration``: a real server): the relay tests that use it run once
                         on each outbox. For ``postgresql`` it makes
                         an empty database and sets ``relay_helpers.STORE_URL``, so every
                         settings tree (``[store] url``) and ``open_outbox`` of the test use it;
                         the database is dropped after the test.

Every test runs with ``XDG_DATA_HOME`` in a temporary folder, so ``fhir-iapt convert`` without
``--ledger`` records its referrals there, never in the user's own referral ledger.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fhir_server import FhirServer, ServerFactory


@pytest.fixture(scope="session", autouse=True)
def _own_data_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The default referral ledger ($XDG_DATA_HOME/fhir-iapt) is a temporary one."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("data-home")))
        patch.delenv("FHIR_IAPT_LEDGER", raising=False)
        yield


@pytest.fixture(scope="session")
def fhir_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The FHIR base URL of a real server shared by the session."""
    server = FhirServer(tmp_path_factory.mktemp("fhir-server"))
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def fhir_server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Make servers on demand (own port and data); all are stopped after the test."""
    made: list[FhirServer] = []

    def factory(*, start: bool = True, server_auth: dict[str, Any] | None = None) -> FhirServer:
        server = FhirServer(tmp_path / f"fhir-server-{len(made)}", server_auth=server_auth)
        made.append(server)
        if start:
            server.start()
        return server

    try:
        yield factory
    finally:
        for server in made:
            server.stop()


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Any]:
    """A throwaway PostgreSQL cluster shared by the session (removed at its end)."""
    from postgres_server import PostgresCluster

    cluster = PostgresCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def relay_store(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Which outbox the test's relay settings and outboxes use (see the module docstring)."""
    if request.param == "sqlite":
        yield "sqlite"
        return
    import relay_helpers

    cluster = request.getfixturevalue("postgres_cluster")
    name = cluster.create_database()
    monkeypatch.setattr(relay_helpers, "STORE_URL", cluster.url(name))
    try:
        yield "postgresql"
    finally:
        cluster.drop_database(name)
