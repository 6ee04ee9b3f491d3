"""The PostgreSQL outbox's own rules, on a real server (``postgres_cluster``).

What the SQLite outbox does too is tested on both stores in ``test_relay_store.py`` and the rest
of the relay suite. Here: the schema made and migrated by the relay (versioned, once, even when
processes start together; a newer schema refused), a database that cannot be reached named by
its host only, claims from several processes never overlapping (``FOR UPDATE SKIP LOCKED``),
leases that a starting process leaves alone and that expire, a lost lease that cannot undo
another process's delivery, the ledger entries moved by one process at a time, one transaction
per enqueue, and the durability setting of each pooled session.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from postgres_server import PostgresCluster
from relay_helpers import auth, diabetes_csv, make_settings, nhs_number, settings_tree, to_toml

from fhir_iapt.errors import ConfigError
from fhir_iapt.relay.app import create_app, make_outbox
from fhir_iapt.relay.postgres import ENQUEUE_CHUNK, MIGRATIONS, SCHEMA_VERSION, PostgresOutbox
from fhir_iapt.relay.runtime import RelayRuntime
from fhir_iapt.relay.store import NewMessage

pytestmark = pytest.mark.integration  # a real PostgreSQL server


class FakeClock:
    """A hand-driven clock shared by the stores of one test (two "processes", one time)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pg_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a new empty database, dropped after the test."""
    name = postgres_cluster.create_database()
    try:
        yield postgres_cluster.url(name)
    finally:
        postgres_cluster.drop_database(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def _store(url: str, clock: Any = None, **kwargs: Any) -> PostgresOutbox:
    box = PostgresOutbox(url, clock=clock, **kwargs) if clock else PostgresOutbox(url, **kwargs)
    box.open()
    return box


def _msg(key: str) -> NewMessage:
    return NewMessage("referral", "iapt", key, b'{"resourceType":"Bundle"}')


def _rows(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute(query, params).fetchall()  # type: ignore[arg-type]


# --- schema ------------------------------------------------------------------------------


def test_the_relay_creates_its_schema_and_records_each_migration_once(pg_url: str) -> None:
    """An empty database gets the outbox's tables at open, each migration recorded in
    outbox_migrations; opening again applies nothing (the rows are unchanged)."""
    _store(pg_url).close()
    tables = {
        r[0] for r in _rows(pg_url, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    assert {"outbox_messages", "outbox_idempotency", "outbox_ledger_pending"} <= tables
    first = _rows(pg_url, "SELECT version, applied_at FROM outbox_migrations ORDER BY version")
    assert [v for v, _ in first] == [m[0] for m in MIGRATIONS]
    [(lz4,)] = _rows(
        pg_url,
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    [(method,)] = _rows(
        pg_url,
        "SELECT attcompression FROM pg_attribute"
        " WHERE attrelid = 'outbox_messages'::regclass AND attname = 'payload'",
    )
    assert method == ("l" if lz4 else "")  # payloads in lz4 where the server has it
    _store(pg_url).close()
    assert _rows(pg_url, "SELECT version, applied_at FROM outbox_migrations ORDER BY version") == (
        first
    )


def test_processes_starting_together_migrate_once(pg_url: str) -> None:
    """Eight relays opening one empty database at the same moment (each its own sessions, as
    separate processes have) all start, and every migration is applied and recorded once."""
    start = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_one() -> None:
        box = PostgresOutbox(pg_url)
        start.wait()
        try:
            box.open()
        except BaseException as exc:
            errors.append(exc)
        finally:
            box.close()

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert _rows(pg_url, "SELECT version, COUNT(*) FROM outbox_migrations GROUP BY version") == [
        (m[0], 1) for m in MIGRATIONS
    ]


def test_a_schema_migrated_by_a_newer_relay_is_refused(pg_url: str) -> None:
    """A database whose schema is newer than this relay knows is a ConfigError naming the
    database and both versions, not a relay writing to tables it does not understand."""
    _store(pg_url).close()
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO outbox_migrations VALUES (%s, 'from the future', 0)",
            (SCHEMA_VERSION + 1,),
        )
    with pytest.raises(ConfigError) as caught:
        _store(pg_url)
    message = caught.value.message
    assert f"version {SCHEMA_VERSION + 1}" in message
    assert f"relay's {SCHEMA_VERSION}" in message
    assert caught.value.location is not None
    assert caught.value.location.field == "store.url"


# --- a database that cannot be reached ---------------------------------------------------


def test_an_unreachable_database_names_its_host_never_the_password(
    postgres_cluster: PostgresCluster,
) -> None:
    """Nothing listening: a ConfigError at open naming host, port and database and the key
    store.url; the URL's user and password appear nowhere."""
    from fhir_server import free_port

    port = free_port()
    box = PostgresOutbox(f"postgresql://relayuser:Sup3rSecret@127.0.0.1:{port}/outboxdb")
    with pytest.raises(ConfigError) as caught:
        box.open()
    text = str(caught.value.to_operation_outcome())
    assert f"127.0.0.1:{port}/outboxdb" in caught.value.message
    assert caught.value.location is not None
    assert caught.value.location.field == "store.url"
    assert "Sup3rSecret" not in text
    assert "relayuser" not in text


def test_a_wrong_password_is_reported_without_it(postgres_cluster: PostgresCluster) -> None:
    """A database that refuses the relay's login: the reason is given, the password is not."""
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
        conn.execute("CREATE ROLE pw_user LOGIN PASSWORD 'right-one'")
    hba = postgres_cluster.data / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text("host all pw_user 127.0.0.1/32 scram-sha-256\n" + original)
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
    try:
        url = f"postgresql://pw_user:Wr0ngPassw0rd@127.0.0.1:{postgres_cluster.port}/postgres"
        with pytest.raises(ConfigError) as caught:
            PostgresOutbox(url).open()
        text = str(caught.value.to_operation_outcome())
        assert "password authentication failed" in text
        assert "Wr0ngPassw0rd" not in text
    finally:
        hba.write_text(original)
        with psycopg.connect(postgres_cluster.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
            conn.execute("DROP ROLE pw_user")


def test_serve_on_an_unreachable_database_exits_2_naming_the_host(tmp_path: Path) -> None:
    """``fhir-iapt serve`` with [store] url at a port nothing listens on: exit 2 before
    listening, an OperationOutcome naming the host and store.url, no traceback, no password."""
    from fhir_server import free_port

    port = free_port()
    tree = settings_tree(tmp_path / "data")
    tree["store"]["url"] = f"postgresql://relay:Sup3rSecret@127.0.0.1:{port}/outbox"
    config = tmp_path / "relay.toml"
    config.write_text(to_toml(tree), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("FHIR_IAPT_")}
    cli = "from fhir_iapt.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", cli, "serve", "--config", config],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    assert f"127.0.0.1:{port}/outbox" in output
    assert "store.url" in output
    assert "Sup3rSecret" not in output


def test_without_psycopg_the_store_url_is_a_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """[store] url without the postgresql extra installed: a ConfigError saying which extra,
    not an ImportError."""
    monkeypatch.setitem(sys.modules, "fhir_iapt.relay.postgres", None)
    settings = make_settings(
        tmp_path / "data", store={"url": "postgresql://relay@127.0.0.1:5432/outbox"}
    )
    with pytest.raises(ConfigError, match=r"fhir-iapt\[postgresql\]"):
        make_outbox(settings)


# --- several processes on one database ---------------------------------------------------


def test_concurrent_claims_from_two_processes_never_share_a_message(pg_url: str) -> None:
    """Two outboxes (two relay processes' pools) claiming from eight threads at once: every
    message is claimed exactly once, and all of them are claimed."""
    first, second = _store(pg_url, pool_size=8), _store(pg_url, pool_size=8)
    try:
        first.enqueue([_msg(f"m{i}") for i in range(600)])
        claimed: list[str] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def claimer(box: PostgresOutbox) -> None:
            start.wait()
            while batch := box.claim(7, lease_seconds=600):
                with lock:
                    claimed.extend(c.id for c in batch)

        threads = [threading.Thread(target=claimer, args=(b,)) for b in (first, second) * 4]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        counts = Counter(claimed)
        assert len(counts) == 600
        assert set(counts.values()) == {1}
    finally:
        first.close()
        second.close()


def test_the_same_record_enqueued_by_two_processes_at_once_is_one_message(pg_url: str) -> None:
    """Two processes enqueuing the same records concurrently get the same ids; each record is
    new for exactly one of them."""
    first, second = _store(pg_url), _store(pg_url)
    try:
        results: dict[int, list[Any]] = {}
        start = threading.Barrier(2)

        def enqueue(n: int, box: PostgresOutbox) -> None:
            start.wait()
            results[n] = box.enqueue([_msg(f"same-{i}") for i in range(200)])

        threads = [
            threading.Thread(target=enqueue, args=(n, b)) for n, b in enumerate((first, second))
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        a, b = results[0], results[1]
        assert [x.id for x in a] == [y.id for y in b]
        assert all(x.duplicate != y.duplicate for x, y in zip(a, b, strict=True))
        assert first.counts()["queued"] == 200
    finally:
        first.close()
        second.close()


def test_a_starting_process_leaves_the_others_leases_until_they_expire(
    pg_url: str, clock: FakeClock
) -> None:
    """A second process opening the database does not release the first one's leases (it may
    still be delivering); once they expire, the second claims the messages."""
    first = _store(pg_url, clock)
    [item] = first.enqueue([_msg("a")])
    first.claim(1, lease_seconds=30)
    second = _store(pg_url, clock)
    try:
        assert second.claim(1, lease_seconds=30) == []
        clock.now += 31
        [again] = second.claim(1, lease_seconds=30)
        assert (again.id, again.attempts) == (item.id, 2)
    finally:
        first.close()
        second.close()


def test_a_lost_lease_cannot_undo_another_process_delivery(pg_url: str, clock: FakeClock) -> None:
    """Process A's lease expires mid-delivery and B claims the message: A's late failure does
    not touch B's lease, and once B delivered, A's failure or dead letter leaves it delivered
    (nothing is sent a third time)."""
    a, b = _store(pg_url, clock), _store(pg_url, clock)
    try:
        [item] = a.enqueue([_msg("k")])
        a.claim(1, lease_seconds=30)
        clock.now += 31
        b.claim(1, lease_seconds=30)
        a.mark_failed(item.id, "FI712: late", retry_in=0)
        info = b.info(item.id)
        assert info is not None
        assert (info.status, info.leased, info.last_error) == ("queued", True, None)
        b.mark_delivered(item.id)
        a.mark_dead(item.id, "FI721: late")
        a.release(item.id)
        info = b.info(item.id)
        assert info is not None
        assert (info.status, info.last_error) == ("delivered", None)
        assert a.claim(1, lease_seconds=30) == []
    finally:
        a.close()
        b.close()


def test_graceful_release_gives_the_message_to_another_process_at_once(pg_url: str) -> None:
    """A process stopping gracefully gives its leased messages back unspent: another process
    claims them straight away, with the same attempt count."""
    a, b = _store(pg_url), _store(pg_url)
    try:
        [item] = a.enqueue([_msg("r")])
        a.claim(1, lease_seconds=600)
        a.release(item.id)
        [claimed] = b.claim(1, lease_seconds=600)
        assert (claimed.id, claimed.attempts) == (item.id, 1)
    finally:
        a.close()
        b.close()


def test_ledger_entries_are_moved_by_one_process_at_a_time(pg_url: str) -> None:
    """While one process moves the pending ledger entries into its ledger, another finds
    nothing to move; each entry is handed on once and deleted only after it was recorded."""
    a, b = _store(pg_url), _store(pg_url)
    try:
        a.enqueue([_msg("l")], ledger_rows=[["sys", "1", "9000000009"], ["sys", "2", "x"]])
        inside, leave = threading.Event(), threading.Event()
        moved: list[list[Any]] = []

        def slow_record(rows: list[list[Any]]) -> None:
            moved.extend(rows)
            inside.set()
            leave.wait(30)

        thread = threading.Thread(target=a.move_ledger_rows, args=(slow_record, 100))
        thread.start()
        assert inside.wait(30)
        seen: list[list[Any]] = []
        assert b.move_ledger_rows(seen.extend, 100) == 0
        assert len(b.pending_ledger_rows()) == 2  # not deleted before the ledger commit
        leave.set()
        thread.join(30)
        assert moved == [["sys", "1", "9000000009"], ["sys", "2", "x"]]
        assert seen == []
        assert b.pending_ledger_rows() == []
    finally:
        a.close()
        b.close()


def test_ledger_entries_stay_pending_when_the_ledger_fails(pg_url: str) -> None:
    """If recording raises, the entries are still pending (the next turn tries again)."""
    box = _store(pg_url)
    try:
        box.enqueue([_msg("f")], ledger_rows=[["sys", "1"]])

        def broken(rows: list[list[Any]]) -> None:
            raise OSError("disk full")

        with pytest.raises(OSError, match="disk full"):
            box.move_ledger_rows(broken, 100)
        assert [row for _, row in box.pending_ledger_rows()] == [["sys", "1"]]
    finally:
        box.close()


# --- one transaction, committed --------------------------------------------------------------


@pytest.mark.parametrize("count", [1, 20, ENQUEUE_CHUNK + 7])
def test_enqueue_is_one_transaction_with_its_ledger_entries(pg_url: str, count: int) -> None:
    """A batch whose last ledger entry the database refuses queues nothing, however many
    statements it takes (one transaction); once it returns, another connection sees every
    message and entry."""
    box = _store(pg_url)
    try:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
                " IF NEW.entry LIKE '%refuse-me%' THEN RAISE EXCEPTION 'ledger refused'; END IF;"
                " RETURN NEW; END $$"
            )
            conn.execute(
                "CREATE TRIGGER refuse BEFORE INSERT ON outbox_ledger_pending"
                " FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        messages = [_msg(f"x{i}") for i in range(count)]
        rows = [["sys", f"x{i}"] for i in range(count - 1)] + [["sys", "refuse-me"]]
        with pytest.raises(psycopg.Error, match="ledger refused"):
            box.enqueue(messages, ledger_rows=rows)
        assert box.counts()["queued"] == 0
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute("DROP TRIGGER refuse ON outbox_ledger_pending")
        items = box.enqueue(messages, ledger_rows=rows)
        assert [i.duplicate for i in items] == [False] * count
        stored = dict(_rows(pg_url, "SELECT id, dedup_key FROM outbox_messages"))
        assert [stored[i.id] for i in items] == [m.dedup_key for m in messages]
        entries = _rows(pg_url, "SELECT entry FROM outbox_ledger_pending ORDER BY seq")
        assert [json.loads(e) for (e,) in entries] == rows
    finally:
        box.close()


def test_a_batch_repeating_held_records_gets_their_first_ids(pg_url: str) -> None:
    """Across statements of one large batch, records already held, and a record twice in the
    batch, get the first id (duplicate), exactly as one at a time would."""
    box = _store(pg_url)
    try:
        [held] = box.enqueue([_msg("held")])
        batch = [_msg(f"b{i}") for i in range(ENQUEUE_CHUNK + 3)]
        batch[2] = _msg("held")
        batch[ENQUEUE_CHUNK + 1] = _msg("b0")  # in the second statement, first seen in the first
        items = box.enqueue(batch)
        assert (items[2].id, items[2].duplicate) == (held.id, True)
        assert (items[ENQUEUE_CHUNK + 1].id, items[ENQUEUE_CHUNK + 1].duplicate) == (
            items[0].id,
            True,
        )
        assert sum(not i.duplicate for i in items) == ENQUEUE_CHUNK + 1
        assert box.counts()["queued"] == ENQUEUE_CHUNK + 2
    finally:
        box.close()


@pytest.mark.parametrize(("synchronous", "expected"), [("full", "local"), ("normal", "off")])
def test_each_session_commits_as_durably_as_the_setting_says(
    pg_url: str, synchronous: Any, expected: str
) -> None:
    """``full`` never commits with synchronous_commit off (the test server defaults to off, so
    it is raised to local); ``normal`` turns it off for the relay's sessions."""
    box = _store(pg_url, synchronous=synchronous)
    try:
        with box._conn() as conn:
            row = conn.execute("SHOW synchronous_commit").fetchone()
        assert row is not None
        assert row[0] == expected
    finally:
        box.close()


# --- the relay on PostgreSQL end to end ----------------------------------------------------


def test_an_accepted_referral_reaches_the_ledger_through_the_postgresql_outbox(
    tmp_path: Path, pg_url: str
) -> None:
    """A referral accepted by a relay on PostgreSQL: its message and ledger entry committed
    together in the database, then moved into the referral ledger by the feed."""
    settings = make_settings(tmp_path / "data", store={"url": pg_url})
    with TestClient(create_app(settings)) as client:
        body = diabetes_csv([{"record_id": "PG-1", "nhs": nhs_number(4242)}])
        response = client.post(
            "/referrals?mapping=diabetes-csv",
            content=body,
            headers={"Content-Type": "text/csv", **auth("clinic")},
        )
        assert response.status_code == 202, response.text
        runtime: RelayRuntime = client.app.state.relay  # type: ignore[attr-defined]
        assert isinstance(runtime.outbox, PostgresOutbox)
        assert runtime.ledger_feed is not None
        runtime.ledger_feed.drain()
        assert runtime.ledger is not None
        assert runtime.ledger.count() == 1
        assert runtime.outbox.pending_ledger_rows() == []
    [(count,)] = _rows(pg_url, "SELECT COUNT(*) FROM outbox_messages")
    assert count == 1
