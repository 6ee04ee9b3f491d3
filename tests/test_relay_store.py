"""The outbox: durable enqueue, dedup, leases, backoff, dead letters, replay, on SQLite and on
PostgreSQL (``relay_store``); the SQLite file's own rules (one owner per data directory, leases
released at a restart) on SQLite only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from relay_helpers import open_outbox

from fhir_iapt.errors import ConfigError
from fhir_iapt.relay.store import NewMessage, Outbox, OutboxStore, StoredResponse


class FakeClock:
    """A hand-driven clock (the outbox's timestamps and due times follow it)."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def outbox(tmp_path: Path, clock: FakeClock, relay_store: str) -> Iterator[OutboxStore]:
    box = open_outbox(tmp_path / "outbox.sqlite3", clock=clock, synchronous="full")
    yield box
    box.close()


def _msg(key: str, payload: bytes = b'{"resourceType":"Bundle"}') -> NewMessage:
    return NewMessage("referral", "iapt", key, payload)


def test_enqueue_returns_the_same_id_for_a_held_key(outbox: OutboxStore) -> None:
    """A record already held gets its first id back, marked duplicate, and no second row."""
    first = outbox.enqueue([_msg("a"), _msg("b")])
    again = outbox.enqueue([_msg("b"), _msg("c")])
    assert [e.duplicate for e in first] == [False, False]
    assert again[0].id == first[1].id
    assert again[0].duplicate is True
    assert again[1].duplicate is False
    assert outbox.counts()["queued"] == 3


def test_enqueued_messages_survive_reopening(
    tmp_path: Path, clock: FakeClock, relay_store: str
) -> None:
    """What enqueue returned is stored: a new outbox on the same file (database) sees it."""
    box = open_outbox(tmp_path / "o.sqlite3", clock=clock, synchronous="full")
    [item] = box.enqueue([_msg("a")])
    box.close()
    reopened = open_outbox(tmp_path / "o.sqlite3", clock=clock, synchronous="full")
    info = reopened.info(item.id)
    assert info is not None
    assert info.status == "queued"
    assert reopened.payload(item.id) == b'{"resourceType":"Bundle"}'
    reopened.close()


def test_second_owner_of_a_data_directory_is_refused(tmp_path: Path) -> None:
    """Only one relay may own a data directory (the lock is what makes lease release safe)."""
    first = Outbox(tmp_path / "outbox.sqlite3")
    first.open()
    other = Outbox(tmp_path / "outbox.sqlite3")
    try:
        with pytest.raises(ConfigError, match="in use"):
            other.open()
    finally:
        first.close()


def test_claim_leases_and_counts_the_attempt(outbox: OutboxStore) -> None:
    """A claimed message is not claimed again while leased, and its attempt is counted."""
    [item] = outbox.enqueue([_msg("a")])
    [claimed] = outbox.claim(10, lease_seconds=60)
    assert claimed.id == item.id
    assert claimed.attempts == 1
    assert outbox.claim(10, lease_seconds=60) == []
    info = outbox.info(item.id)
    assert info is not None
    assert info.leased is True


def test_expired_lease_returns_the_message(outbox: OutboxStore, clock: FakeClock) -> None:
    """A worker that died mid-delivery: once its lease expires the message is claimable."""
    outbox.enqueue([_msg("a")])
    outbox.claim(1, lease_seconds=30)
    clock.now += 31
    [again] = outbox.claim(1, lease_seconds=30)
    assert again.attempts == 2


def test_reopening_releases_leases_at_once(tmp_path: Path, clock: FakeClock) -> None:
    """A restarted relay (the previous owner is gone) does not wait for old leases."""
    box = Outbox(tmp_path / "o.sqlite3", clock=clock)
    box.open()
    box.enqueue([_msg("a")])
    box.claim(1, lease_seconds=3600)
    box.close()
    reopened = Outbox(tmp_path / "o.sqlite3", clock=clock)
    reopened.open()
    assert len(reopened.claim(1, lease_seconds=30)) == 1
    reopened.close()


def test_failed_waits_for_its_backoff(outbox: OutboxStore, clock: FakeClock) -> None:
    """mark_failed persists next_attempt_at: not claimable before it, claimable after."""
    [item] = outbox.enqueue([_msg("a")])
    outbox.claim(1, lease_seconds=30)
    outbox.mark_failed(item.id, "FI712: could not connect", retry_in=10)
    info = outbox.info(item.id)
    assert info is not None
    assert (info.status, info.last_error) == ("failed", "FI712: could not connect")
    assert outbox.claim(1, lease_seconds=30) == []
    assert outbox.next_due() == clock.now + 10
    clock.now += 10
    assert len(outbox.claim(1, lease_seconds=30)) == 1


def test_release_gives_the_attempt_back(outbox: OutboxStore) -> None:
    """A graceful shutdown returns a leased message without spending an attempt."""
    [item] = outbox.enqueue([_msg("a")])
    outbox.claim(1, lease_seconds=30)
    outbox.release(item.id)
    [again] = outbox.claim(1, lease_seconds=30)
    assert again.attempts == 1


def test_dead_letter_keeps_payload_and_error_until_replayed(outbox: OutboxStore) -> None:
    """Dead letters are never claimed; replay re-queues them with fresh attempts."""
    [item] = outbox.enqueue([_msg("a", b"payload-1")])
    outbox.claim(1, lease_seconds=30)
    outbox.mark_dead(item.id, "FI721 HTTP 400: refused")
    assert outbox.claim(1, lease_seconds=30) == []
    assert outbox.payload(item.id) == b"payload-1"
    info = outbox.info(item.id)
    assert info is not None
    assert (info.status, info.last_error) == ("dead", "FI721 HTTP 400: refused")
    replayed = outbox.replay(item.id)
    assert replayed is not None
    assert (replayed.status, replayed.attempts) == ("queued", 0)
    [claimed] = outbox.claim(1, lease_seconds=30)
    assert claimed.payload == b"payload-1"


def test_replay_refuses_what_is_not_dead(outbox: OutboxStore) -> None:
    """Only dead letters can be replayed (a delivered message is never sent twice)."""
    [item] = outbox.enqueue([_msg("a")])
    outbox.claim(1, lease_seconds=30)
    outbox.mark_delivered(item.id)
    assert outbox.replay(item.id) is None
    assert outbox.replay("no-such-id") is None


def test_idempotency_answers_are_kept_per_caller(outbox: OutboxStore) -> None:
    """A stored answer is found by (caller, key); another caller's same key is separate."""
    answer = StoredResponse("/referrals", "d1", 202, b"{}")
    outbox.remember_response("clinic", "k1", answer)
    outbox.remember_response("clinic", "k1", StoredResponse("/referrals", "d2", 422, b"[]"))
    assert outbox.stored_response("clinic", "k1") == answer
    assert outbox.stored_response("other", "k1") is None
