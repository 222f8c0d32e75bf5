"""Group commit: concurrent requests share transactions, yet each stands or falls alone."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.adapters.clock import FixedClock
from audit.adapters.memory import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from audit.application.querying import VerifyChain
from audit.application.recording import GroupCommit, RecordEvents
from audit.domain.errors import (
    Conflict,
    StaleCredentials,
    StorageUnavailable,
    ValidationFailed,
)
from audit.domain.events import NewEvent, Party

NOW = datetime(2026, 12, 6, tzinfo=UTC)


def new(event_id: str, action: str = "document.update") -> NewEvent:
    return NewEvent(id=event_id, action=action, actor=Party(id="u-1"))


class SlowCountingFactory(InMemoryUnitOfWorkFactory):
    """Counts write transactions, and makes each commit take a while, like an fsync."""

    def __init__(self, commit_seconds: float = 0.005) -> None:
        super().__init__()
        self.write_transactions = 0
        self.commit_seconds = commit_seconds

    def __call__(self, write: bool = False) -> InMemoryUnitOfWork:
        unit = super().__call__(write)
        if write:
            self.write_transactions += 1
            commit = unit.commit

            def slow_commit() -> None:
                time.sleep(self.commit_seconds)
                commit()

            unit.commit = slow_commit  # type: ignore[method-assign]
        return unit


def test_concurrent_requests_share_transactions_and_all_are_stored(clock: FixedClock) -> None:
    storage = SlowCountingFactory()
    group = GroupCommit(RecordEvents(storage, clock))
    results: dict[int, Any] = {}

    def send(worker: int) -> None:
        for n in range(10):
            results[worker * 100 + n] = group("acme", [new(f"e-{worker}-{n}")])

    threads = [threading.Thread(target=send, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(results) == 160
    assert all(r[0].created for r in results.values())
    seqs = sorted(r[0].event.seq for r in results.values())
    assert seqs == list(range(1, 161))
    # 160 requests, far fewer transactions: waiting requests joined a leader's commit.
    assert storage.write_transactions < 160 / 2
    report = VerifyChain(storage)("acme")
    assert report.valid
    assert report.checked == 160


def test_a_lone_request_commits_at_once(clock: FixedClock) -> None:
    storage = SlowCountingFactory(commit_seconds=0)
    group = GroupCommit(RecordEvents(storage, clock))
    [recorded] = group("acme", [new("e-1")])
    assert recorded.created
    assert recorded.event.seq == 1
    assert storage.write_transactions == 1


def test_each_request_of_a_group_stands_or_falls_alone(clock: FixedClock) -> None:
    storage = InMemoryUnitOfWorkFactory()
    record = RecordEvents(storage, clock)
    record("acme", [new("stored")])
    outcomes = record.commit_group(
        [
            record.submit("acme", [new("a-1"), new("a-2")]),
            record.submit("acme", [new("stored", action="document.delete")]),  # conflict
            record.submit("globex", [new("a-1")]),  # another tenant: its own id space
            record.submit("acme", [new("a-2"), new("a-3")]),  # a-2: duplicate of the first
            record.submit("acme", [new("a-1", action="x.y"), new("a-9")]),  # conflict in group
        ]
    )
    first, conflict, globex, retry, in_group_conflict = outcomes
    assert isinstance(conflict, Conflict)
    assert isinstance(in_group_conflict, Conflict)
    assert isinstance(first, list)
    assert [(r.event.seq, r.created) for r in first] == [(2, True), (3, True)]
    assert isinstance(globex, list)
    assert [(r.event.seq, r.created) for r in globex] == [(1, True)]
    assert isinstance(retry, list)
    assert [(r.event.id, r.event.seq, r.created) for r in retry] == [
        ("a-2", 3, False),
        ("a-3", 4, True),
    ]
    with storage() as uow:
        assert uow.events.head("acme").seq == 4
        assert uow.events.get("acme", "a-9") is None
    assert VerifyChain(storage)("acme").valid


def test_a_request_repeating_an_id_with_new_content_is_refused_before_it_waits(
    clock: FixedClock,
) -> None:
    group = GroupCommit(RecordEvents(InMemoryUnitOfWorkFactory(), clock))
    with pytest.raises(ValidationFailed):
        group("acme", [new("a"), new("a", action="other.action")])


class FailingFactory(InMemoryUnitOfWorkFactory):
    failing = True
    delay = 0.01
    write_attempts = 0

    def __call__(self, write: bool = False) -> InMemoryUnitOfWork:
        unit = super().__call__(write)
        if write and self.failing:
            self.write_attempts += 1

            def fail() -> None:
                time.sleep(self.delay)
                raise StorageUnavailable("the disk is full")

            unit.commit = fail  # type: ignore[method-assign]
        return unit


def test_a_storage_failure_reaches_every_waiter_and_stores_nothing(clock: FixedClock) -> None:
    storage = FailingFactory()
    group = GroupCommit(RecordEvents(storage, clock))
    errors: list[BaseException] = []

    def send(n: int) -> None:
        try:
            group("acme", [new(f"e-{n}")])
        except StorageUnavailable as exc:
            errors.append(exc)

    threads = [threading.Thread(target=send, args=(n,)) for n in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(errors) == 12
    with storage() as uow:
        assert uow.events.head("acme").seq == 0
    # ... and once storage recovers, the same group commit serves the next request.
    storage.failing = False
    assert group("acme", [new("later")])[0].event.seq == 1


def revoke_any_token(storage: InMemoryUnitOfWorkFactory) -> None:
    """Advance the revocation epoch, as revoking a token does."""
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_gone", NOW)
        uow.commit()


def test_a_request_checked_before_a_revocation_is_refused_and_stores_nothing(
    clock: FixedClock,
) -> None:
    storage = InMemoryUnitOfWorkFactory()
    record = RecordEvents(storage, clock)
    before = storage.store.revocation_epoch
    revoke_any_token(storage)
    outcomes = record.commit_group(
        [
            record.submit("acme", [new("a-1")], epoch=before),  # checked before: refused
            record.submit("acme", [new("a-2")], epoch=before + 1),  # the current epoch
            record.submit("acme", [new("a-3")]),  # checked by its caller: never asked
        ]
    )
    stale, current, unchecked = outcomes
    assert isinstance(stale, StaleCredentials)
    assert isinstance(current, list)
    assert isinstance(unchecked, list)
    assert [r.event.seq for r in current + unchecked] == [1, 2]
    with storage() as uow:
        assert uow.events.get("acme", "a-1") is None
    # Refused before anything else: even a duplicate of a stored event is not answered.
    [again] = record.commit_group([record.submit("acme", [new("a-2")], epoch=before)])
    assert isinstance(again, StaleCredentials)
    with pytest.raises(StaleCredentials):
        record("acme", [new("a-4")], epoch=before)
    with pytest.raises(StaleCredentials):
        GroupCommit(record)("acme", [new("a-4")], epoch=before)
    assert VerifyChain(storage)("acme").checked == 2


def test_a_revocation_in_the_transaction_that_records_is_seen() -> None:
    # The epoch is read in the recording's own transaction: one it made itself counts.
    storage = InMemoryUnitOfWorkFactory()
    before = storage.store.revocation_epoch
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_gone", NOW)
        assert uow.tokens.revocation_epoch() == before + 1
        uow.rollback()
    assert storage.store.revocation_epoch == before


def test_requests_queued_behind_a_refused_group_are_refused_with_it(clock: FixedClock) -> None:
    """A lock timeout is waited out once: who queued meanwhile is answered when it ends,
    not after a second wait of their own."""
    storage = FailingFactory()
    storage.delay = 0.3  # the first group waits this long for a lock, then fails
    group = GroupCommit(RecordEvents(storage, clock))
    took: list[float] = []

    def send(n: int) -> None:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            group("acme", [new(f"e-{n}")])
        took.append(time.monotonic() - started)

    first = threading.Thread(target=send, args=(0,))
    first.start()
    time.sleep(0.1)  # the first group is waiting now
    rest = [threading.Thread(target=send, args=(n,)) for n in range(1, 6)]
    for thread in rest:
        thread.start()
    for thread in [first, *rest]:
        thread.join()
    assert len(took) == 6
    assert storage.write_attempts == 1
    assert max(took) < 0.3 + 0.2  # one wait, not two
