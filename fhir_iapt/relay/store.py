"""The durable outbox: one SQLite file (WAL) holding every message until it is delivered or dead.

(:class:`OutboxStore` is what the rest of the relay uses; :mod:`fhir_iapt.relay.postgres` is the
same outbox on PostgreSQL, for several relay processes on one database.)

One table of messages, one row per accepted record::

    queued ──claim──▶ (leased) ──ok──▶ delivered
      ▲                  │  └──retryable, attempts left──▶ failed ──(next_attempt_at)──▶ claimable
      │                  └──not retryable / last attempt──▶ dead ──replay──▶ queued
      └──── lease expired or released on shutdown (no attempt lost) ◀─┘

* **Committed before the answer**: :meth:`Outbox.enqueue` commits (``synchronous=FULL`` by
  default) before the route answers 202. Writes that arrive while another commit is under way
  (enqueues, and the worker's claims and marks) wait for it and are then committed together,
  in one transaction (*group commit*: one fsync for all of them, each write in its own
  savepoint so a refused row fails only its caller); each caller returns only once the
  transaction holding its rows has committed.
* **One writer at a time, queued in the process**: every write transaction takes the outbox's
  lock before ``BEGIN IMMEDIATE``, so writers (intake threads, the delivery worker) wait on a
  lock that wakes them at once, never in SQLite's busy handler, whose growing sleeps let one
  writer starve for seconds while others keep winning the database lock.
* **Checkpoints off the commit path**: SQLite would copy the WAL into the database file (and
  fsync it) inside whichever commit crossed 1000 pages, so every few hundred requests one paid
  it while holding the write lock. Here a background thread runs a PASSIVE checkpoint (it never
  blocks a writer) twice a second after writes; a commit checkpoints only if the WAL still
  grew past 10 000 pages (the background cannot finish while writes never pause), which
  keeps the WAL bounded.
* **Lease / claim**: :meth:`Outbox.claim` marks due messages leased until ``lease_until`` and
  counts the attempt; a crashed worker's leases expire, and a restarted relay (the only owner of
  its data directory, see :meth:`Outbox.open`) releases them at once.
* **Idempotency**: ``dedup_key`` is UNIQUE: enqueuing a record already held returns the first
  message id instead of making a second one. A second table keeps the answer given to each
  ``Idempotency-Key`` so a retried request gets the same answer.
* **No patient data outside the payload**: ``last_error`` holds error codes, HTTP statuses and
  our own messages only; status reads never return the payload.
"""

from __future__ import annotations

import fcntl
import functools
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, Protocol, TypeVar

from fhir_iapt.errors import ConfigError, Location, OutboxUnavailableError

T = TypeVar("T")
Direction = Literal["referral", "outcome"]
Status = Literal["queued", "delivered", "failed", "dead"]
STATUSES: tuple[Status, ...] = ("queued", "failed", "delivered", "dead")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id              TEXT PRIMARY KEY,
    direction       TEXT NOT NULL CHECK (direction IN ('referral', 'outcome')),
    dedup_key       TEXT NOT NULL UNIQUE,
    destination     TEXT NOT NULL,
    payload         BLOB NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('queued', 'failed', 'delivered', 'dead')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL,
    lease_until     REAL,
    last_error      TEXT,
    created_at      REAL NOT NULL,
    updated_at      REAL NOT NULL,
    delivered_at    REAL
);
CREATE INDEX IF NOT EXISTS messages_due ON messages (status, next_attempt_at);
CREATE TABLE IF NOT EXISTS idempotency (
    principal       TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    route           TEXT NOT NULL,
    body_digest     TEXT NOT NULL,
    status_code     INTEGER NOT NULL,
    response        BLOB NOT NULL,
    created_at      REAL NOT NULL,
    PRIMARY KEY (principal, idempotency_key)
);
CREATE TABLE IF NOT EXISTS ledger_pending (
    seq             INTEGER PRIMARY KEY,
    entry           TEXT NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A converted record ready to be queued."""

    direction: Direction
    destination: str
    dedup_key: str
    payload: bytes


@dataclass(frozen=True, slots=True)
class Enqueued:
    """The id given to a record, and whether it was already held (no second delivery)."""

    id: str
    duplicate: bool


@dataclass(slots=True)
class _Waiting:
    """One caller's write, waiting to be committed (by itself or with others)."""

    work: Callable[[sqlite3.Connection], Any]
    result: Any = None
    error: BaseException | None = None
    done: bool = False


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What a status read returns: no payload, no patient data."""

    id: str
    direction: Direction
    destination: str
    status: Status
    attempts: int
    last_error: str | None
    created_at: float
    updated_at: float
    next_attempt_at: float
    delivered_at: float | None
    leased: bool


@dataclass(frozen=True, slots=True)
class Claimed:
    """A leased message handed to the worker; ``attempts`` counts this attempt."""

    id: str
    direction: Direction
    destination: str
    payload: bytes
    attempts: int
    created_at: float


@dataclass(frozen=True, slots=True)
class StoredResponse:
    """The answer kept for an ``Idempotency-Key``."""

    route: str
    body_digest: str
    status_code: int
    response: bytes


Clock = Callable[[], float]
#: Seconds between the background checkpoints (module docstring).
_CHECKPOINT_SECONDS = 0.5
#: WAL pages past which a commit checkpoints itself (SQLite's default is 1000).
_COMMIT_CHECKPOINT_PAGES = 10_000
_WAL_KEEP_BYTES = 64 * 1024 * 1024


class OutboxStore(Protocol):
    """What the relay's routes, delivery worker, ledger feed and metrics use of an outbox.

    :class:`Outbox` (SQLite, the default) and
    :class:`~fhir_iapt.relay.postgres.PostgresOutbox` (``[store] url``) implement it with the
    same semantics: :meth:`enqueue` has committed (the ledger entries with the messages) when
    it returns; :meth:`claim` leases due messages and counts the attempt, a lease that expires
    makes its message claimable again; :meth:`mark_failed` persists the next attempt's time;
    a dead letter keeps its payload and last error until :meth:`replay`; a ``dedup_key``
    already held gets its first id back; idempotency answers are kept per caller and key.
    """

    clock: Clock

    def open(self) -> None: ...
    def close(self) -> None: ...
    def ping(self) -> bool: ...
    def enqueue(
        self, messages: Sequence[NewMessage], *, ledger_rows: Sequence[Sequence[Any]] = ()
    ) -> list[Enqueued]: ...
    def pending_ledger_rows(self, limit: int = 1000) -> list[tuple[int, list[Any]]]: ...
    def move_ledger_rows(self, record: Callable[[list[list[Any]]], object], limit: int) -> int: ...
    def remember_response(self, principal: str, key: str, response: StoredResponse) -> None: ...
    def stored_response(self, principal: str, key: str) -> StoredResponse | None: ...
    def claim(self, limit: int, *, lease_seconds: float) -> list[Claimed]: ...
    def mark_delivered(self, message_id: str) -> None: ...
    def mark_failed(self, message_id: str, error: str, *, retry_in: float) -> None: ...
    def mark_dead(self, message_id: str, error: str) -> None: ...
    def release(self, message_id: str) -> None: ...
    def next_due(self) -> float | None: ...
    def info(self, message_id: str) -> MessageInfo | None: ...
    def payload(self, message_id: str) -> bytes | None: ...
    def replay(self, message_id: str) -> MessageInfo | None: ...
    def counts(self) -> dict[str, int]: ...


F = TypeVar("F", bound=Callable[..., Any])


def unavailable_on(
    errors: tuple[type[BaseException], ...],
    what: str,
    *,
    keep: tuple[type[BaseException], ...] = (),
) -> Callable[[F], F]:
    """For a store method a request waits on: a database that cannot be reached or written
    (one of ``errors``; not ``keep``) becomes :class:`OutboxUnavailableError` - the request is
    answered 503 with Retry-After instead of 500, and nothing of it was accepted."""

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def inner(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except keep:
                raise
            except errors:
                raise OutboxUnavailableError(what) from None

        return inner  # type: ignore[return-value]

    return wrap


#: What a SQLite outbox that cannot be written or read raises (a refused row is not it).
_SQLITE_DOWN = (sqlite3.OperationalError, sqlite3.DatabaseError)
_SQLITE_KEEP = (sqlite3.IntegrityError,)


class Outbox:
    """The SQLite outbox. Thread-safe: each thread gets its own connection.

    Call :meth:`open` once before use (it takes the data directory's lock and releases leases a
    previous process left behind) and :meth:`close` at the end.
    """

    def __init__(
        self,
        path: Path,
        *,
        synchronous: Literal["full", "normal"] = "full",
        clock: Clock = time.time,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.clock = clock
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._lock_file: IO[bytes] | None = None
        #: held for every write transaction of this process (module docstring)
        self._write_lock = threading.Lock()
        self._waiting: list[_Waiting] = []
        self._waiting_lock = threading.Lock()
        self._written = False
        self._stop_checkpoints = threading.Event()
        self._checkpointer: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def open(self) -> None:
        """Create the file and schema, take the directory lock, and release stale leases.

        Only one relay may own a data directory: a second gets a :class:`ConfigError`.
        Opening an open outbox does nothing.
        """
        if self._lock_file is not None:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the data directory: {exc.strerror or exc}",
                location=Location(file=str(self.path.parent), field="store.data_dir"),
            ) from None
        lock = (self.path.parent / "relay.lock").open("ab")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ConfigError(
                "the data directory is in use by another relay process",
                location=Location(file=str(self.path.parent), field="store.data_dir"),
            ) from None
        self._lock_file = lock
        conn = self._conn()
        conn.executescript(_SCHEMA)
        self.release_all_leases()
        self._stop_checkpoints.clear()
        self._checkpointer = threading.Thread(
            target=self._checkpoints, name="fhir-iapt-outbox-checkpoint", daemon=True
        )
        self._checkpointer.start()

    def close(self) -> None:
        if self._checkpointer is not None:
            self._stop_checkpoints.set()
            self._checkpointer.join()
            self._checkpointer = None
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()
        if self._lock_file is not None:
            fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
            self._lock_file.close()
            self._lock_file = None

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            conn.execute("PRAGMA busy_timeout=10000")
            # Commits checkpoint only when the background has fallen far behind (module
            # docstring); a WAL reset after a checkpoint is truncated back to this size.
            conn.execute(f"PRAGMA wal_autocheckpoint={_COMMIT_CHECKPOINT_PAGES}")
            conn.execute(f"PRAGMA journal_size_limit={_WAL_KEEP_BYTES}")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    def _checkpoints(self) -> None:
        """Copy the WAL into the database file after writes, never inside a commit."""
        while not self._stop_checkpoints.wait(_CHECKPOINT_SECONDS):
            if not self._written:
                continue
            self._written = False
            try:
                self._conn().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error:
                self._written = True  # the next turn tries again; no commit waits for it

    def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``work`` in a committed write transaction and return what it returned.

        Writes that queue while another commit is under way are committed together, each in
        its own savepoint (group commit, module docstring): an error raised by ``work`` undoes
        its own statements only and is raised here; this returns only after the commit.
        """
        mine = _Waiting(work)
        with self._waiting_lock:
            self._waiting.append(mine)
        with self._write_lock:
            if not mine.done:
                self._commit_waiting(mine)
        if mine.error is not None:
            raise mine.error
        result: T = mine.result
        return result

    def _commit_waiting(self, mine: _Waiting) -> None:
        """Commit every waiting write in one transaction (the caller holds the write lock)."""
        conn = self._conn()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except BaseException:
            with self._waiting_lock:
                self._waiting.remove(mine)  # the others stay queued for the next writer
            raise
        # Taken once the database lock is ours: every write that queued meanwhile comes along.
        with self._waiting_lock:
            batch, self._waiting = self._waiting, []
        try:
            for waiting in batch:
                conn.execute("SAVEPOINT write")
                try:
                    waiting.result = waiting.work(conn)
                except Exception as exc:  # this caller's statements only
                    conn.execute("ROLLBACK TO write")
                    waiting.error = exc
                conn.execute("RELEASE write")
            conn.execute("COMMIT")
            self._written = True
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            for waiting in batch:  # nothing of this transaction was committed
                waiting.result = None
                waiting.error = waiting.error or exc
            raise
        finally:
            for waiting in batch:
                waiting.done = True

    def ping(self) -> bool:
        """Whether the database answers (for ``/readyz``)."""
        try:
            self._conn().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return self._lock_file is not None

    # --- accept --------------------------------------------------------------------------

    @unavailable_on(_SQLITE_DOWN, "store the records", keep=_SQLITE_KEEP)
    def enqueue(
        self, messages: Sequence[NewMessage], *, ledger_rows: Sequence[Sequence[Any]] = ()
    ) -> list[Enqueued]:
        """Queue ``messages`` in a committed transaction; return their ids in order.

        A message whose ``dedup_key`` is already held gets the existing id (``duplicate``).
        Concurrent calls share one transaction (group commit, module docstring); each returns
        only after that transaction committed, and a call whose rows are refused raises alone.
        ``ledger_rows`` (the referral ledger's entries for these messages) are kept in the same
        transaction, so they are as durable as the messages and cost no commit of their own;
        :meth:`pending_ledger_rows` hands them on to the ledger.
        """
        now = self.clock()

        def work(conn: sqlite3.Connection) -> list[Enqueued]:
            out = self._insert(conn, messages, now)
            if ledger_rows:
                conn.executemany(
                    "INSERT INTO ledger_pending (entry) VALUES (?)",
                    [(json.dumps(list(row)),) for row in ledger_rows],
                )
            return out

        return self._write(work)

    def pending_ledger_rows(self, limit: int = 1000) -> list[tuple[int, list[Any]]]:
        """Ledger entries committed with their messages and not yet in the ledger, oldest
        first: ``(seq, row)``. :meth:`ledger_rows_done` removes them once recorded."""
        rows = (
            self._conn()
            .execute("SELECT seq, entry FROM ledger_pending ORDER BY seq LIMIT ?", (limit,))
            .fetchall()
        )
        return [(int(seq), json.loads(entry)) for seq, entry in rows]

    def ledger_rows_done(self, last_seq: int) -> None:
        """The pending ledger entries up to ``last_seq`` are in the ledger: forget them."""
        self._write(
            lambda conn: conn.execute("DELETE FROM ledger_pending WHERE seq <= ?", (last_seq,))
        )

    @unavailable_on(_SQLITE_DOWN, "move the ledger entries", keep=_SQLITE_KEEP)
    def move_ledger_rows(self, record: Callable[[list[list[Any]]], object], limit: int) -> int:
        """Hand up to ``limit`` pending ledger entries (oldest first) to ``record`` and forget
        them once it has returned; how many it was given (0: none pending). If ``record``
        raises, they stay pending."""
        pending = self.pending_ledger_rows(limit)
        if not pending:
            return 0
        record([row for _, row in pending])
        self.ledger_rows_done(pending[-1][0])
        return len(pending)

    @staticmethod
    def _insert(
        conn: sqlite3.Connection, messages: Sequence[NewMessage], now: float
    ) -> list[Enqueued]:
        out: list[Enqueued] = []
        for msg in messages:
            new_id = uuid.uuid4().hex
            row = conn.execute(
                "INSERT INTO messages (id, direction, dedup_key, destination, payload, status,"
                " attempts, next_attempt_at, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, 'queued', 0, ?, ?, ?)"
                " ON CONFLICT (dedup_key) DO NOTHING RETURNING id",
                (new_id, msg.direction, msg.dedup_key, msg.destination, msg.payload, now, now, now),
            ).fetchone()
            if row is not None:
                out.append(Enqueued(row[0], duplicate=False))
                continue
            existing = conn.execute(
                "SELECT id FROM messages WHERE dedup_key = ?", (msg.dedup_key,)
            ).fetchone()
            out.append(Enqueued(existing[0], duplicate=True))
        return out

    @unavailable_on(_SQLITE_DOWN, "keep the answer", keep=_SQLITE_KEEP)
    def remember_response(self, principal: str, key: str, response: StoredResponse) -> None:
        """Keep the answer given to ``key`` (first answer wins).

        Written after :meth:`enqueue`: if the process dies between the two, the client's retry
        is converted again and gets the same message ids through ``dedup_key``.
        """
        now = self.clock()

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO idempotency (principal, idempotency_key, route, body_digest,"
                " status_code, response, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (principal, idempotency_key) DO NOTHING",
                (
                    principal,
                    key,
                    response.route,
                    response.body_digest,
                    response.status_code,
                    response.response,
                    now,
                ),
            )

        self._write(work)

    @unavailable_on(_SQLITE_DOWN, "look up the idempotency key", keep=_SQLITE_KEEP)
    def stored_response(self, principal: str, key: str) -> StoredResponse | None:
        row = (
            self._conn()
            .execute(
                "SELECT route, body_digest, status_code, response FROM idempotency"
                " WHERE principal = ? AND idempotency_key = ?",
                (principal, key),
            )
            .fetchone()
        )
        return None if row is None else StoredResponse(row[0], row[1], row[2], bytes(row[3]))

    # --- deliver -------------------------------------------------------------------------

    def claim(self, limit: int, *, lease_seconds: float) -> list[Claimed]:
        """Lease up to ``limit`` due messages (oldest due first) and count their attempt."""
        now = self.clock()

        def work(conn: sqlite3.Connection) -> list[Any]:
            return conn.execute(
                "UPDATE messages SET lease_until = ?, attempts = attempts + 1, updated_at = ?"
                " WHERE id IN (SELECT id FROM messages WHERE status IN ('queued', 'failed')"
                "   AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)"
                "   ORDER BY next_attempt_at LIMIT ?)"
                " RETURNING id, direction, destination, payload, attempts, created_at",
                (now + lease_seconds, now, now, now, limit),
            ).fetchall()

        rows = self._write(work)
        return [Claimed(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    def mark_delivered(self, message_id: str) -> None:
        now = self.clock()
        self._write(
            lambda conn: conn.execute(
                "UPDATE messages SET status = 'delivered', lease_until = NULL, last_error = NULL,"
                " delivered_at = ?, updated_at = ? WHERE id = ?",
                (now, now, message_id),
            )
        )

    def mark_failed(self, message_id: str, error: str, *, retry_in: float) -> None:
        """A retryable failure: back to the queue at ``now + retry_in`` (persisted)."""
        now = self.clock()
        self._write(
            lambda conn: conn.execute(
                "UPDATE messages SET status = 'failed', lease_until = NULL, last_error = ?,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (error, now + retry_in, now, message_id),
            )
        )

    def mark_dead(self, message_id: str, error: str) -> None:
        """A dead letter: kept with its payload and the last error until replayed."""
        now = self.clock()
        self._write(
            lambda conn: conn.execute(
                "UPDATE messages SET status = 'dead', lease_until = NULL, last_error = ?,"
                " updated_at = ? WHERE id = ?",
                (error, now, message_id),
            )
        )

    def release(self, message_id: str) -> None:
        """Give a leased message back without spending its attempt (graceful shutdown)."""
        now = self.clock()
        self._write(
            lambda conn: conn.execute(
                "UPDATE messages SET lease_until = NULL, attempts = MAX(attempts - 1, 0),"
                " updated_at = ? WHERE id = ? AND lease_until IS NOT NULL",
                (now, message_id),
            )
        )

    def release_all_leases(self) -> int:
        """Release every lease (at start: the previous owner of the directory is gone)."""
        return self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE messages SET lease_until = NULL WHERE lease_until IS NOT NULL"
                ).rowcount
            )
        )

    def next_due(self) -> float | None:
        """When the earliest waiting message becomes due (None when nothing waits)."""
        row = (
            self._conn()
            .execute(
                "SELECT MIN(next_attempt_at) FROM messages WHERE status IN ('queued', 'failed')"
                " AND lease_until IS NULL"
            )
            .fetchone()
        )
        return None if row is None or row[0] is None else float(row[0])

    # --- read / admin --------------------------------------------------------------------

    @unavailable_on(_SQLITE_DOWN, "read the message", keep=_SQLITE_KEEP)
    def info(self, message_id: str) -> MessageInfo | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, direction, destination, status, attempts, last_error, created_at,"
                " updated_at, next_attempt_at, delivered_at, lease_until FROM messages"
                " WHERE id = ?",
                (message_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        return MessageInfo(
            id=row[0],
            direction=row[1],
            destination=row[2],
            status=row[3],
            attempts=row[4],
            last_error=row[5],
            created_at=row[6],
            updated_at=row[7],
            next_attempt_at=row[8],
            delivered_at=row[9],
            leased=row[10] is not None and row[10] >= self.clock(),
        )

    @unavailable_on(_SQLITE_DOWN, "read the message", keep=_SQLITE_KEEP)
    def payload(self, message_id: str) -> bytes | None:
        row = (
            self._conn()
            .execute("SELECT payload FROM messages WHERE id = ?", (message_id,))
            .fetchone()
        )
        return None if row is None else bytes(row[0])

    @unavailable_on(_SQLITE_DOWN, "replay the message", keep=_SQLITE_KEEP)
    def replay(self, message_id: str) -> MessageInfo | None:
        """Put a dead letter back in the queue with fresh attempts; None if it is not dead."""
        now = self.clock()
        replayed = self._write(
            lambda conn: (
                conn.execute(
                    "UPDATE messages SET status = 'queued', attempts = 0, next_attempt_at = ?,"
                    " lease_until = NULL, updated_at = ? WHERE id = ? AND status = 'dead'",
                    (now, now, message_id),
                ).rowcount
            )
        )
        if replayed == 0:
            return None
        return self.info(message_id)

    def counts(self) -> dict[str, int]:
        """Messages by status (for metrics and readiness)."""
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        for status, count in self._conn().execute(
            "SELECT status, COUNT(*) FROM messages GROUP BY status"
        ):
            out[status] = count
        return out


__all__ = [
    "STATUSES",
    "Claimed",
    "Clock",
    "Direction",
    "Enqueued",
    "MessageInfo",
    "NewMessage",
    "Outbox",
    "OutboxStore",
    "Status",
    "StoredResponse",
    "unavailable_on",
]
