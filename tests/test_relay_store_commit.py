"""The outbox's group commit: concurrent enqueues share one transaction, each still durable."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fhir_iapt.relay.store import Enqueued, NewMessage, Outbox

_CONNECT = sqlite3.connect  # the real one: the lock holder's commits are not counted


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.sqlite3", synchronous="full")
    box.open()
    yield box
    box.close()


def _msg(key: str, direction: Any = "referral") -> NewMessage:
    return NewMessage(direction, "iapt", key, b'{"resourceType":"Bundle"}')


class _Commits:
    """Counts the COMMIT statements every outbox connection made after it was installed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        self._lock = threading.Lock()

        def connect(*args: Any, **kwargs: Any) -> sqlite3.Connection:
            conn = _CONNECT(*args, **kwargs)
            conn.set_trace_callback(self._seen)
            return conn

        monkeypatch.setattr(sqlite3, "connect", connect)

    def _seen(self, statement: str) -> None:
        if statement.strip().upper() == "COMMIT":
            with self._lock:
                self.count += 1


def _while_locked(
    path: Path, calls: list[Any], box: Outbox
) -> list[Enqueued | BaseException | list[Enqueued]]:
    """Run every call (messages for ``box.enqueue``, or a function of no arguments) from its
    own thread while another connection holds the database's write lock, then release it:
    every call is waiting when the lock goes."""
    holder = _CONNECT(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    results: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            call = calls[i]
            results[i] = call() if callable(call) else box.enqueue(call)
        except BaseException as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    time.sleep(0.5)
    holder.execute("COMMIT")
    holder.close()
    for t in threads:
        t.join(timeout=30)
    return results


def test_enqueues_waiting_together_are_committed_in_one_transaction(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Five requests that wait for the write lock at once cost one commit (one fsync), not five."""
    outbox.close()
    commits = _Commits(monkeypatch)
    outbox.open()
    calls = [[_msg(f"k{i}-a"), _msg(f"k{i}-b")] for i in range(5)]
    before = commits.count
    results = _while_locked(outbox.path, calls, outbox)
    assert commits.count - before == 1
    for result in results:
        assert isinstance(result, list)
        assert [e.duplicate for e in result] == [False, False]
    assert outbox.counts()["queued"] == 10


def test_the_workers_writes_join_the_shared_commit(
    outbox: Outbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Delivery marks waiting beside enqueues are committed in the same one transaction, and
    each takes effect as it would alone."""
    outbox.close()
    commits = _Commits(monkeypatch)
    outbox.open()
    held = outbox.enqueue([_msg("held-1"), _msg("held-2")])
    claimed = {c.id for c in outbox.claim(2, lease_seconds=60)}
    assert claimed == {e.id for e in held}
    before = commits.count
    calls: list[Any] = [
        [_msg("new-1")],
        lambda: outbox.mark_failed(held[0].id, "FI712: test", retry_in=60),
        lambda: outbox.mark_dead(held[1].id, "FI713: test"),
        [_msg("new-2")],
    ]
    _while_locked(outbox.path, calls, outbox)
    assert commits.count - before == 1
    failed, dead = outbox.info(held[0].id), outbox.info(held[1].id)
    assert failed is not None
    assert (failed.status, failed.last_error, failed.leased) == ("failed", "FI712: test", False)
    assert dead is not None
    assert dead.status == "dead"
    assert outbox.counts() == {"queued": 2, "failed": 1, "delivered": 0, "dead": 1}


def test_a_failing_request_in_a_shared_commit_fails_alone(outbox: Outbox) -> None:
    """A request whose rows the database refuses gets the error; the others are committed."""
    calls = [[_msg("good-1")], [_msg("bad", direction="sideways")], [_msg("good-2")]]
    results = _while_locked(outbox.path, calls, outbox)
    assert isinstance(results[1], sqlite3.IntegrityError)
    for i in (0, 2):
        result = results[i]
        assert isinstance(result, list)
        assert outbox.info(result[0].id) is not None
    assert outbox.counts()["queued"] == 2


def test_the_same_record_in_one_shared_commit_is_queued_once(outbox: Outbox) -> None:
    """Two requests carrying the same record in one commit get one id; the second is a
    duplicate, exactly as if they had come one after the other."""
    results = _while_locked(outbox.path, [[_msg("same")], [_msg("same")]], outbox)
    first, second = results
    assert isinstance(first, list)
    assert isinstance(second, list)
    assert first[0].id == second[0].id
    assert sorted([first[0].duplicate, second[0].duplicate]) == [False, True]
    assert outbox.counts()["queued"] == 1


def test_enqueue_returns_after_the_rows_are_committed(outbox: Outbox) -> None:
    """What enqueue returned is readable from a fresh connection the moment it returns."""
    ids: list[str] = []
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            for i in range(20):
                [item] = outbox.enqueue([_msg(f"t{n}-{i}")])
                fresh = sqlite3.connect(outbox.path)
                try:
                    row = fresh.execute(
                        "SELECT status FROM messages WHERE id = ?", (item.id,)
                    ).fetchone()
                finally:
                    fresh.close()
                assert row == ("queued",)
                ids.append(item.id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    assert len(set(ids)) == 120


def test_worker_writes_do_not_starve_intake(outbox: Outbox) -> None:
    """Intake commits while the delivery side writes all the time: no enqueue waits for seconds
    (SQLite's own busy wait sleeps and can starve a writer; in-process writers queue instead)."""
    stop = threading.Event()
    worst: list[float] = []

    def deliver() -> None:
        while not stop.is_set():
            for claimed in outbox.claim(4, lease_seconds=60):
                outbox.mark_failed(claimed.id, "FI712: test", retry_in=3600)

    def intake(n: int) -> None:
        for i in range(40):
            start = time.perf_counter()
            outbox.enqueue([_msg(f"w{n}-{i}-{j}") for j in range(10)])
            worst.append(time.perf_counter() - start)

    worker = threading.Thread(target=deliver)
    worker.start()
    threads = [threading.Thread(target=intake, args=(n,)) for n in range(4)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        stop.set()
        worker.join(timeout=30)
    assert len(worst) == 160
    assert max(worst) < 0.5


def test_commits_leave_checkpoints_to_the_background(outbox: Outbox) -> None:
    """A commit does not copy the WAL into the database file at SQLite's 1000 pages; the
    outbox's background checkpoint does it soon after the writes."""
    before = outbox.path.stat().st_size
    for i in range(300):  # about 600 pages of 4 KiB
        outbox.enqueue([NewMessage("referral", "iapt", f"c{i}", b"x" * 8000)])
    pages = outbox._conn().execute("PRAGMA wal_autocheckpoint").fetchone()[0]
    assert pages > 1000
    deadline = time.monotonic() + 10
    while outbox.path.stat().st_size < before + 300 * 8000:
        assert time.monotonic() < deadline, "no checkpoint copied the WAL"
        time.sleep(0.05)
    assert outbox.counts()["queued"] == 300
