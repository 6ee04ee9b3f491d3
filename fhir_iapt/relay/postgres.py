"""The outbox on PostgreSQL (``[store] url``): the SQLite outbox's semantics, for several relay
processes on one database.

Same states and rules as :class:`~fhir_iapt.relay.store.Outbox` (queued, leased, failed with a
persisted ``next_attempt_at``, delivered, dead with its payload and last error until replayed;
``dedup_key`` UNIQUE; the answers kept per ``Idempotency-Key``; the referral-ledger entries
committed with their messages). What differs, and why:

* **Committed before the answer** by PostgreSQL: :meth:`PostgresOutbox.enqueue` is one
  transaction (messages and ledger entries) committed before it returns. Concurrent commits
  share WAL flushes in the server, so no group commit is made here. ``synchronous = "full"``
  keeps the server's ``synchronous_commit`` (raised to ``local`` if it is ``off``);
  ``"normal"`` sets it ``off`` for the relay's sessions (a killed relay loses nothing, a
  crashed database server may lose the last commits).
* **Claims** are ``SELECT ... FOR UPDATE SKIP LOCKED`` inside the claiming ``UPDATE``: relay
  processes (and each one's worker) claiming at once never get the same message, and none
  waits for another's claim.
* **Leases expire**; nothing releases them at start. Another relay process may be running, so
  a starting one cannot know that a lease's holder is gone (the SQLite outbox can: it owns its
  data directory). A killed process's messages are claimable again once their leases expire
  (``[delivery] lease_seconds``), by any process. A graceful stop gives its leases back.
* **A lost lease is fenced**: each claim writes a fresh lease id, and a process marks a message
  failed or dead, or releases it, only while the lease id is still the one it claimed with and
  the message is not delivered. A process whose lease expired mid-delivery and was taken over
  cannot turn the other's delivery back into a retry. Delivered is always recorded.
* **Several ledger feeds**: every process's :class:`~fhir_iapt.relay.ledger_feed.LedgerFeed`
  moves pending entries under a transaction-level advisory lock, one process at a time, in
  ``seq`` order; entries are deleted only once recorded (:meth:`move_ledger_rows`).
* **Schema made by the relay**: :meth:`PostgresOutbox.open` applies the numbered
  :data:`MIGRATIONS` not yet recorded in ``outbox_migrations``, each in its own transaction,
  under an advisory lock, so two processes starting at once apply each step once. A database
  migrated by a newer relay (a version this one does not know) is refused.

Connections come from a psycopg pool (``[store] pool_size`` per process), each checked before
use, so a database restart costs the requests in flight, not the process. Timestamps are the
relay's clock (epoch seconds), as in SQLite: hosts sharing a database need synchronised clocks.
Nothing here logs; errors name the host, port and database, never the URL (it may hold a
password) or a payload.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from functools import cache
from itertools import zip_longest
from typing import Any, Final, Literal

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import ConnectionPool, PoolTimeout

from fhir_iapt.errors import ConfigError, Location
from fhir_iapt.relay.store import (
    STATUSES,
    Claimed,
    Clock,
    Enqueued,
    MessageInfo,
    NewMessage,
    StoredResponse,
    unavailable_on,
)

#: Advisory lock keys (one 64-bit space per database): schema migrations, the ledger feed.
MIGRATION_LOCK: Final = zlib.crc32(b"fhir-iapt relay outbox migrations")
LEDGER_FEED_LOCK: Final = zlib.crc32(b"fhir-iapt relay outbox ledger feed")

#: Seconds to wait for the database at start (connect) and for a pooled connection.
CONNECT_TIMEOUT: Final = 10
POOL_TIMEOUT: Final = 30.0
#: Seconds a request waits for a pooled connection before it is answered 503 + Retry-After
#: (a database outage, or every connection busy: the client is told to come back, not held).
REQUEST_WAIT: Final = 5.0

#: The schema, step by step: (version, what it does, statements). Never edit a released step;
#: add the next one. Each runs in one transaction with its row in ``outbox_migrations``.
MIGRATIONS: Final[tuple[tuple[int, str, tuple[str, ...]], ...]] = (
    (
        1,
        "messages, idempotency answers, pending ledger entries",
        (
            """
            CREATE TABLE outbox_messages (
                id              TEXT PRIMARY KEY,
                direction       TEXT NOT NULL CHECK (direction IN ('referral', 'outcome')),
                dedup_key       TEXT NOT NULL UNIQUE,
                destination     TEXT NOT NULL,
                payload         BYTEA NOT NULL,
                status          TEXT NOT NULL
                                CHECK (status IN ('queued', 'failed', 'delivered', 'dead')),
                attempts        INTEGER NOT NULL DEFAULT 0,
                next_attempt_at DOUBLE PRECISION NOT NULL,
                lease_until     DOUBLE PRECISION,
                lease_id        TEXT,
                last_error      TEXT,
                created_at      DOUBLE PRECISION NOT NULL,
                updated_at      DOUBLE PRECISION NOT NULL,
                delivered_at    DOUBLE PRECISION
            )
            """,
            """
            CREATE INDEX outbox_messages_due ON outbox_messages (next_attempt_at)
                WHERE status IN ('queued', 'failed')
            """,
            # Payloads (bundle JSON) compressed with lz4 where the server has it: about a
            # third of the size, at a fraction of the default pglz's cost per commit.
            """
            DO $$
            BEGIN
                IF EXISTS (SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression'
                           AND 'lz4' = ANY(enumvals)) THEN
                    ALTER TABLE outbox_messages ALTER COLUMN payload SET COMPRESSION lz4;
                END IF;
            END $$
            """,
            """
            CREATE TABLE outbox_idempotency (
                principal       TEXT NOT NULL,
                idempotency_key TEXT NOT NULL,
                route           TEXT NOT NULL,
                body_digest     TEXT NOT NULL,
                status_code     INTEGER NOT NULL,
                response        BYTEA NOT NULL,
                created_at      DOUBLE PRECISION NOT NULL,
                PRIMARY KEY (principal, idempotency_key)
            )
            """,
            """
            CREATE TABLE outbox_ledger_pending (
                seq             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                entry           TEXT NOT NULL
            )
            """,
        ),
    ),
)
SCHEMA_VERSION: Final = MIGRATIONS[-1][0]

_MIGRATIONS_TABLE = """
CREATE TABLE IF NOT EXISTS outbox_migrations (
    version     INTEGER PRIMARY KEY,
    description TEXT NOT NULL,
    applied_at  DOUBLE PRECISION NOT NULL
)
"""

#: Rows per enqueue statement (a larger batch is several statements in one transaction).
ENQUEUE_CHUNK: Final = 500
_MESSAGE_ROW = "(%s, %s, %s, %s, %s, 'queued', 0, %s, %s, %s)"


_INSERT_MESSAGES = (
    "INSERT INTO outbox_messages (id, direction, dedup_key, destination, payload, status,"
    " attempts, next_attempt_at, created_at, updated_at) VALUES {rows}"
    " ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
)
_INSERT_LEDGER = "INSERT INTO outbox_ledger_pending (entry) VALUES {rows}"
_WITH_LEDGER = "WITH new AS ({insert}), ledger AS ({ledger}) SELECT id, dedup_key FROM new"


@cache
def _enqueue_statement(messages: int, ledger_rows: int) -> str:
    """One statement inserting ``messages`` messages and ``ledger_rows`` ledger entries: a
    single round trip, atomic on its own (multi-row VALUES: large array parameters were
    several times slower). Returns the new messages' ``(id, dedup_key)``. Only placeholders
    are put in, never a value."""
    ledger = _INSERT_LEDGER.format(rows=", ".join(["(%s)"] * ledger_rows))
    if not messages:
        return ledger + " RETURNING NULL, NULL"
    insert = _INSERT_MESSAGES.format(rows=", ".join([_MESSAGE_ROW] * messages))
    if not ledger_rows:
        return insert
    return _WITH_LEDGER.format(insert=insert, ledger=ledger)


_CLAIM = """
UPDATE outbox_messages AS m
SET lease_until = %(until)s, lease_id = %(lease)s, attempts = m.attempts + 1, updated_at = %(now)s
FROM (
    SELECT id FROM outbox_messages
    WHERE status IN ('queued', 'failed') AND next_attempt_at <= %(now)s
      AND (lease_until IS NULL OR lease_until < %(now)s)
    ORDER BY next_attempt_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
) AS due
WHERE m.id = due.id
RETURNING m.id, m.direction, m.destination, m.payload, m.attempts, m.created_at
"""

_INFO = (
    "SELECT id, direction, destination, status, attempts, last_error, created_at, updated_at,"
    " next_attempt_at, delivered_at, lease_until FROM outbox_messages WHERE id = %s"
)


def where(url: str) -> str:
    """``host:port/dbname`` of a PostgreSQL URL, for messages: never the user or password."""
    try:
        params = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        return "(an unreadable PostgreSQL URL)"
    host = str(params.get("host") or "localhost")
    port = str(params.get("port") or "5432")
    return f"{host}:{port}/{params.get('dbname') or '(default database)'}"


def _reason(exc: BaseException, url: str) -> str:
    """libpq's reason, first line, without anything of the URL's password."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    try:
        password = conninfo_to_dict(url).get("password")
    except psycopg.ProgrammingError:
        password = None
    if password:
        text = text.replace(str(password), "***")
    return text[:300]


#: What a PostgreSQL outbox that cannot be reached raises (the server down or restarting, the
#: pool out of connections).
_PG_DOWN = (psycopg.OperationalError, psycopg.InterfaceError, PoolTimeout)


class PostgresOutbox:
    """The outbox on PostgreSQL (module docstring). Thread-safe (a connection pool).

    Call :meth:`open` once before use (it connects, creates or migrates the schema and opens
    the pool) and :meth:`close` at the end.
    """

    def __init__(
        self,
        url: str,
        *,
        synchronous: Literal["full", "normal"] = "full",
        clock: Clock = time.time,
        pool_size: int = 10,
    ) -> None:
        self.url = url
        self.synchronous = synchronous
        self.clock = clock
        self.pool_size = pool_size
        self.where = where(url)
        self._pool: ConnectionPool[psycopg.Connection[Any]] | None = None
        #: message id -> the lease id this process claimed it with (the fence, see above)
        self._leases: dict[str, str] = {}
        self._leases_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"PostgresOutbox({self.where!r})"

    # --- lifecycle -----------------------------------------------------------------------

    def _error(self, what: str, exc: BaseException) -> ConfigError:
        return ConfigError(
            f"{what} the PostgreSQL outbox at {self.where}: {_reason(exc, self.url)}",
            location=Location(file=f"postgresql://{self.where}", field="store.url"),
        )

    def open(self) -> None:
        """Connect, apply the missing migrations and open the pool; a database that cannot be
        reached (or was migrated by a newer relay) is a :class:`ConfigError` naming its host.
        Opening an open outbox does nothing."""
        if self._pool is not None:
            return
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT)
        except psycopg.Error as exc:
            raise self._error("cannot connect to", exc) from None
        try:
            with conn:
                migrate(conn, self.clock)
        except psycopg.Error as exc:
            raise self._error("cannot create or migrate the tables of", exc) from None
        except NewerSchema as exc:
            raise ConfigError(
                f"the PostgreSQL outbox at {self.where} has schema version {exc.version},"
                f" newer than this relay's {SCHEMA_VERSION}: a newer fhir-iapt migrated it;"
                " run that version or a later one",
                location=Location(file=f"postgresql://{self.where}", field="store.url"),
            ) from None
        pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            kwargs={"autocommit": True, "connect_timeout": CONNECT_TIMEOUT},
            configure=self._configure,
            check=ConnectionPool.check_connection,
            timeout=POOL_TIMEOUT,
            name="fhir-iapt-outbox",
            open=False,
        )
        try:
            pool.open(wait=True, timeout=CONNECT_TIMEOUT)
        except PoolTimeout as exc:
            pool.close()
            raise self._error("cannot connect to", exc) from None
        self._pool = pool

    def _configure(self, conn: psycopg.Connection[Any]) -> None:
        """Each pooled session's durability (module docstring)."""
        if self.synchronous == "normal":
            conn.execute("SET synchronous_commit = off")
            return
        row = conn.execute("SHOW synchronous_commit").fetchone()
        if row is not None and row[0] == "off":
            conn.execute("SET synchronous_commit = local")

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _conn(self, wait: float | None = None) -> AbstractContextManager[psycopg.Connection[Any]]:
        """A pooled connection (a context manager giving it back); ``wait`` seconds at most
        for one (default: the pool's timeout)."""
        if self._pool is None:
            raise RuntimeError("the outbox is not open")
        return self._pool.connection(timeout=wait)

    def ping(self) -> bool:
        """Whether the database answers (for ``/readyz``)."""
        if self._pool is None:
            return False
        try:
            with self._pool.connection(timeout=5.0) as conn:
                conn.execute("SELECT 1").fetchone()
        except (psycopg.Error, PoolTimeout):
            return False
        return True

    # --- accept --------------------------------------------------------------------------

    @unavailable_on(_PG_DOWN, "store the records")
    def enqueue(
        self, messages: Sequence[NewMessage], *, ledger_rows: Sequence[Sequence[Any]] = ()
    ) -> list[Enqueued]:
        """Queue ``messages`` in one committed transaction with ``ledger_rows``; their ids in
        order. A message whose ``dedup_key`` is already held (or earlier in ``messages``) gets
        the existing id, marked ``duplicate``."""
        if not messages:
            return []
        now = self.clock()
        message_chunks = [
            messages[i : i + ENQUEUE_CHUNK] for i in range(0, len(messages), ENQUEUE_CHUNK)
        ]
        ledger_chunks = [
            [json.dumps(list(row)) for row in ledger_rows[i : i + ENQUEUE_CHUNK]]
            for i in range(0, len(ledger_rows), ENQUEUE_CHUNK)
        ]
        statements: list[tuple[str, list[Any]]] = []
        for chunk, entries in zip_longest(message_chunks, ledger_chunks, fillvalue=()):
            params: list[Any] = []
            for msg in chunk:
                params += [uuid.uuid4().hex, msg.direction, msg.dedup_key, msg.destination]
                params += [msg.payload, now, now, now]
            params += entries
            statements.append((_enqueue_statement(len(chunk), len(entries)), params))
        new: dict[str, str] = {}
        held: dict[str, str] = {}
        # One statement commits on its own; several share one transaction.
        with (
            self._conn(REQUEST_WAIT) as conn,
            conn.transaction() if len(statements) > 1 else nullcontext(),
        ):
            for statement, params in statements:
                for id_, key in conn.execute(statement, params, binary=True).fetchall():
                    if key is not None:
                        new[key] = id_
            missing = sorted({m.dedup_key for m in messages} - new.keys())
            if missing:
                held = {
                    key: id_
                    for id_, key in conn.execute(
                        "SELECT id, dedup_key FROM outbox_messages WHERE dedup_key = ANY(%s)",
                        (missing,),
                    ).fetchall()
                }
        out: list[Enqueued] = []
        for msg in messages:
            first = new.pop(msg.dedup_key, None)
            if first is not None:
                held[msg.dedup_key] = first  # a second copy in this batch is a duplicate
                out.append(Enqueued(first, duplicate=False))
            else:
                out.append(Enqueued(held[msg.dedup_key], duplicate=True))
        return out

    def pending_ledger_rows(self, limit: int = 1000) -> list[tuple[int, list[Any]]]:
        """Ledger entries committed with their messages and not yet in the ledger, oldest
        first: ``(seq, row)``."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT seq, entry FROM outbox_ledger_pending ORDER BY seq LIMIT %s", (limit,)
            ).fetchall()
        return [(int(seq), json.loads(entry)) for seq, entry in rows]

    @unavailable_on(_PG_DOWN, "move the ledger entries")
    def move_ledger_rows(self, record: Callable[[list[list[Any]]], object], limit: int) -> int:
        """Hand up to ``limit`` pending entries (oldest first) to ``record`` and delete them
        once it returned, holding the feed's advisory lock (one process at a time); how many
        (0: none pending, or another process is moving them now). If ``record`` raises, they
        stay pending."""
        with self._conn() as conn, conn.transaction():
            locked = conn.execute(
                "SELECT pg_try_advisory_xact_lock(%s)", (LEDGER_FEED_LOCK,)
            ).fetchone()
            if locked is None or not locked[0]:
                return 0
            rows = conn.execute(
                "SELECT seq, entry FROM outbox_ledger_pending ORDER BY seq LIMIT %s", (limit,)
            ).fetchall()
            if not rows:
                return 0
            record([json.loads(entry) for _, entry in rows])
            conn.execute(
                "DELETE FROM outbox_ledger_pending WHERE seq = ANY(%s)",
                ([int(seq) for seq, _ in rows],),
            )
        return len(rows)

    @unavailable_on(_PG_DOWN, "keep the answer")
    def remember_response(self, principal: str, key: str, response: StoredResponse) -> None:
        """Keep the answer given to ``key`` (first answer wins)."""
        with self._conn(REQUEST_WAIT) as conn:
            conn.execute(
                "INSERT INTO outbox_idempotency (principal, idempotency_key, route, body_digest,"
                " status_code, response, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (principal, idempotency_key) DO NOTHING",
                (
                    principal,
                    key,
                    response.route,
                    response.body_digest,
                    response.status_code,
                    response.response,
                    self.clock(),
                ),
            )

    @unavailable_on(_PG_DOWN, "look up the idempotency key")
    def stored_response(self, principal: str, key: str) -> StoredResponse | None:
        with self._conn(REQUEST_WAIT) as conn:
            row = conn.execute(
                "SELECT route, body_digest, status_code, response FROM outbox_idempotency"
                " WHERE principal = %s AND idempotency_key = %s",
                (principal, key),
            ).fetchone()
        return None if row is None else StoredResponse(row[0], row[1], row[2], bytes(row[3]))

    # --- deliver -------------------------------------------------------------------------

    def claim(self, limit: int, *, lease_seconds: float) -> list[Claimed]:
        """Lease up to ``limit`` due messages (oldest due first, skipping rows another claim
        holds) and count their attempt."""
        now = self.clock()
        lease = uuid.uuid4().hex
        with self._conn() as conn:
            rows = conn.execute(
                _CLAIM,
                {"now": now, "until": now + lease_seconds, "lease": lease, "limit": limit},
                binary=True,  # the payloads as bytes, not hex text
            ).fetchall()
        with self._leases_lock:
            for row in rows:
                self._leases[row[0]] = lease
        return [Claimed(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    def _lease(self, message_id: str) -> str | None:
        with self._leases_lock:
            return self._leases.pop(message_id, None)

    def _fenced(self, message_id: str, assignments: str, values: tuple[Any, ...]) -> None:
        """``UPDATE ... SET assignments`` unless the message is delivered, or was claimed
        again (by another process) since this process claimed it."""
        lease = self._lease(message_id)
        statement = (
            f"UPDATE outbox_messages SET {assignments}, lease_until = NULL, lease_id = NULL"  # noqa: S608
            " WHERE id = %s AND status IN ('queued', 'failed')"
        )
        if lease is None:  # not claimed here (an administrator's call): no lease to keep
            with self._conn() as conn:
                conn.execute(statement, (*values, message_id))
            return
        with self._conn() as conn:
            conn.execute(statement + " AND lease_id = %s", (*values, message_id, lease))

    def mark_delivered(self, message_id: str) -> None:
        now = self.clock()
        self._lease(message_id)
        with self._conn() as conn:
            conn.execute(
                "UPDATE outbox_messages SET status = 'delivered', lease_until = NULL,"
                " lease_id = NULL, last_error = NULL, delivered_at = %s, updated_at = %s"
                " WHERE id = %s",
                (now, now, message_id),
            )

    def mark_failed(self, message_id: str, error: str, *, retry_in: float) -> None:
        """A retryable failure: back to the queue at ``now + retry_in`` (persisted)."""
        now = self.clock()
        self._fenced(
            message_id,
            "status = 'failed', last_error = %s, next_attempt_at = %s, updated_at = %s",
            (error, now + retry_in, now),
        )

    def mark_dead(self, message_id: str, error: str) -> None:
        """A dead letter: kept with its payload and the last error until replayed."""
        now = self.clock()
        self._fenced(message_id, "status = 'dead', last_error = %s, updated_at = %s", (error, now))

    def release(self, message_id: str) -> None:
        """Give a leased message back without spending its attempt (graceful shutdown)."""
        lease = self._lease(message_id)
        if lease is None:
            return
        with self._conn() as conn:
            conn.execute(
                "UPDATE outbox_messages SET lease_until = NULL, lease_id = NULL,"
                " attempts = GREATEST(attempts - 1, 0), updated_at = %s"
                " WHERE id = %s AND lease_id = %s AND status IN ('queued', 'failed')",
                (self.clock(), message_id, lease),
            )

    def next_due(self) -> float | None:
        """When the earliest waiting message becomes claimable: its next attempt, or the end
        of a lease another process holds (None when nothing waits)."""
        with self._conn() as conn:
            row = conn.execute(
                "SELECT MIN(GREATEST(next_attempt_at, COALESCE(lease_until, next_attempt_at)))"
                " FROM outbox_messages WHERE status IN ('queued', 'failed')"
            ).fetchone()
        return None if row is None or row[0] is None else float(row[0])

    # --- read / admin --------------------------------------------------------------------

    @unavailable_on(_PG_DOWN, "read the message")
    def info(self, message_id: str) -> MessageInfo | None:
        with self._conn(REQUEST_WAIT) as conn:
            row = conn.execute(_INFO, (message_id,)).fetchone()
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

    @unavailable_on(_PG_DOWN, "read the message")
    def payload(self, message_id: str) -> bytes | None:
        with self._conn(REQUEST_WAIT) as conn:
            row = conn.execute(
                "SELECT payload FROM outbox_messages WHERE id = %s", (message_id,), binary=True
            ).fetchone()
        return None if row is None else bytes(row[0])

    @unavailable_on(_PG_DOWN, "replay the message")
    def replay(self, message_id: str) -> MessageInfo | None:
        """Put a dead letter back in the queue with fresh attempts; None if it is not dead."""
        now = self.clock()
        with self._conn(REQUEST_WAIT) as conn:
            replayed = conn.execute(
                "UPDATE outbox_messages SET status = 'queued', attempts = 0,"
                " next_attempt_at = %s, lease_until = NULL, lease_id = NULL, updated_at = %s"
                " WHERE id = %s AND status = 'dead'",
                (now, now, message_id),
            ).rowcount
        if replayed == 0:
            return None
        return self.info(message_id)

    def counts(self) -> dict[str, int]:
        """Messages by status (for metrics and readiness)."""
        out: dict[str, int] = dict.fromkeys(STATUSES, 0)
        with self._conn() as conn:
            for status, count in conn.execute(
                "SELECT status, COUNT(*) FROM outbox_messages GROUP BY status"
            ).fetchall():
                out[status] = int(count)
        return out


class NewerSchema(ConfigError):
    """The database was migrated by a newer relay: this one does not know its schema (turned
    into the ConfigError naming the database by :meth:`PostgresOutbox.open`)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"schema version {version}", error_code="FI800")
        self.version = version


def schema_version(conn: psycopg.Connection[Any]) -> int:
    """The highest migration applied to this database (0: none, or no outbox there)."""
    exists = conn.execute("SELECT to_regclass('outbox_migrations') IS NOT NULL").fetchone()
    if exists is None or not exists[0]:
        return 0
    row = conn.execute("SELECT COALESCE(MAX(version), 0) FROM outbox_migrations").fetchone()
    return int(row[0]) if row is not None else 0


def migrate(conn: psycopg.Connection[Any], clock: Clock = time.time) -> list[int]:
    """Apply the :data:`MIGRATIONS` this database lacks, in order, each in one transaction
    holding the migration lock (so processes starting together apply each step once);
    the versions applied. Raises :class:`NewerSchema` for a schema newer than this code."""
    applied: list[int] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        conn.execute(_MIGRATIONS_TABLE)
    for version, description, statements in MIGRATIONS:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            current = schema_version(conn)
            if current > SCHEMA_VERSION:
                raise NewerSchema(current)
            if version <= current:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO outbox_migrations (version, description, applied_at)"
                " VALUES (%s, %s, %s)",
                (version, description, clock()),
            )
            applied.append(version)
    return applied


__all__ = [
    "ENQUEUE_CHUNK",
    "LEDGER_FEED_LOCK",
    "MIGRATIONS",
    "MIGRATION_LOCK",
    "SCHEMA_VERSION",
    "NewerSchema",
    "PostgresOutbox",
    "migrate",
    "schema_version",
    "where",
]
