"""Hands the referral-ledger entries the outbox committed on to the referral ledger.

A referral the relay accepts is recorded in the referral ledger (:mod:`fhir_iapt.ledger`). Doing
that in the request would cost every POST a second durable commit (the ledger is its own SQLite
file): measured, the relay's records/s at one record per request fell from ~330 to ~140. So the
entry is written into the outbox in the same transaction as its message (``ledger_pending``,
:meth:`~fhir_iapt.relay.store.Outbox.enqueue`): as durable as the message, at no extra commit.
This thread then moves pending entries into the ledger every half second, in batches (one ledger
commit and one outbox commit per batch, not per request: waking per request put two more fsyncs,
one of them on the outbox's write lock, behind every POST), and forgets them in the outbox only
after the ledger commit (:meth:`~fhir_iapt.relay.store.OutboxStore.move_ledger_rows`; on
PostgreSQL one relay process at a time moves them). A crash at any point leaves them pending
(recording again is idempotent); start-up and shutdown drain what is left. If the ledger cannot
be written, or the outbox cannot be reached (a database outage: OutboxUnavailableError), the
entries stay pending and the next turn tries again (logged, no patient data): the thread never
dies of it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from fhir_iapt._logging import log_event
from fhir_iapt.errors import FhirIaptError
from fhir_iapt.ledger import Ledger, LedgerRow, ledger_row
from fhir_iapt.relay.store import OutboxStore

_log = logging.getLogger("fhir_iapt.relay.ledger")

#: Seconds between turns (an outcomes run may miss referrals accepted in the last turn).
FEED_SECONDS = 0.5
#: Entries moved per ledger commit.
FEED_BATCH = 1000


class LedgerFeed:
    """Moves pending ledger entries from the outbox into the ledger (module docstring)."""

    def __init__(
        self, outbox: OutboxStore, ledger: Ledger, *, interval: float = FEED_SECONDS
    ) -> None:
        self.outbox = outbox
        self.ledger = ledger
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one drain at a time (the thread, or a caller)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._drain_logged()  # what a previous process left pending
        self._thread = threading.Thread(target=self._run, name="ledger-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread, then move what is still pending (a failure leaves it for the next
        start)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self._drain_logged()

    def drain(self) -> int:
        """Move every pending entry now; return how many were recorded. Raises the ledger's
        error (the entries stay pending)."""
        moved = 0

        def record(pending: list[list[Any]]) -> None:
            rows: list[LedgerRow] = [ledger_row(r) for r in pending]
            self.ledger.record_rows(rows)

        with self._lock:
            while count := self.outbox.move_ledger_rows(record, FEED_BATCH):
                moved += count
            return moved

    def _drain_logged(self) -> None:
        try:
            self.drain()
        except (FhirIaptError, OSError) as exc:
            log_event(
                _log,
                logging.ERROR,
                "accepted referrals could not be recorded in the referral ledger yet; they stay"
                " pending in the outbox and are tried again",
                error_code=getattr(exc, "error_code", None),
                exception=type(exc).__name__,
            )

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._drain_logged()


__all__ = ["FEED_BATCH", "FEED_SECONDS", "LedgerFeed"]
