"""Viewer sessions: StartSession, SessionHolds and EndSession on the in-memory adapter."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from audit.adapters.clock import FixedClock
from audit.adapters.memory import InMemoryUnitOfWork, InMemoryUnitOfWorkFactory
from audit.application.sessions import (
    SESSION_LIFETIME,
    EndSession,
    Session,
    SessionHolds,
    StartSession,
)
from audit.domain.errors import StorageUnavailable

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


class ReadOnlyStorage(InMemoryUnitOfWorkFactory):
    """Storage that answers reads and refuses every write, as a full disk does."""

    def __call__(self, write: bool = False) -> InMemoryUnitOfWork:
        if write:
            raise StorageUnavailable("the database's disk is full", 30, "disk_full")
        return super().__call__(write)


def test_a_session_holds_until_it_ends_or_is_signed_out() -> None:
    clock, storage = FixedClock(T0), InMemoryUnitOfWorkFactory()
    holds, end = SessionHolds(storage, clock), EndSession(storage, clock)
    first, second = StartSession(clock)(), StartSession(clock)()
    assert len({first.id, second.id}) == 2
    assert len(first.id) >= 22  # 128 random bits
    end(first)
    assert (holds(first), holds(second)) == (False, True)
    clock.advance(SESSION_LIFETIME - timedelta(microseconds=1))
    assert holds(second)
    clock.advance(timedelta(microseconds=1))
    assert not holds(second)


def test_checking_a_session_needs_no_write() -> None:
    clock = FixedClock(T0)
    assert SessionHolds(ReadOnlyStorage(), clock)(StartSession(clock)())


def test_signing_out_where_writes_fail_raises_and_records_nothing() -> None:
    clock, storage = FixedClock(T0), ReadOnlyStorage()
    session = StartSession(clock)()
    with pytest.raises(StorageUnavailable):
        EndSession(storage, clock)(session)
    assert SessionHolds(storage, clock)(session)


def test_signing_out_a_session_already_over_writes_nothing() -> None:
    clock = FixedClock(T0)
    EndSession(ReadOnlyStorage(), clock)(Session("s-1", T0))


def test_signing_out_forgets_the_sessions_past_their_end() -> None:
    clock, storage = FixedClock(T0), InMemoryUnitOfWorkFactory()
    early = Session("early", T0 + timedelta(hours=1))
    late = Session("late", T0 + timedelta(hours=8))
    end = EndSession(storage, clock)
    end(early)
    end(late)
    clock.advance(timedelta(hours=2))
    end(StartSession(clock)())
    assert set(storage.store.ended_sessions) - {"early", "late"} != set()
    assert "early" not in storage.store.ended_sessions
    assert storage.store.ended_sessions["late"] == late.expires_at
