"""SqlRevocationEpoch: what every authenticated request asks, on each engine; on SQLite, kept
while the revocation beacon (revocation_beacon.py) says no revocation has begun."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.adapters.clock import SystemClock
from audit.adapters.sql import (
    SqlRevocationEpoch,
    SqlUnitOfWorkFactory,
    create_engine_for,
    upgrade_schema,
)
from audit.adapters.sql.revocation_beacon import RevocationBeacon, revocation_beacon
from audit.application.recording import RecordEvents
from audit.domain.errors import StorageUnavailable
from audit.domain.events import NewEvent, Party
from audit.domain.query import EventFilter, PageRequest
from audit.domain.tokens import Scope, Token

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    """An engine on a fresh SQLite file, whose processes share the revocation beacon."""
    upgrade_schema(sqlite_url)
    engine = create_engine_for(sqlite_url)
    yield engine
    engine.dispose()


def revoke_one(engine: Engine) -> None:
    storage = SqlUnitOfWorkFactory(engine)
    token = Token(f"tok_{T0.timestamp()}", "acme", "t", frozenset({Scope.EVENTS_READ}), "h", T0)
    with storage(write=True) as uow:
        if uow.tokens.get(token.id) is None:
            uow.tokens.add(token)
        uow.tokens.revoke(token.id, T0)
        uow.commit()


def test_each_read_sees_the_revocations_committed_before_it(engine: Engine) -> None:
    epoch = SqlRevocationEpoch(engine)
    start = epoch.current()
    for n in range(1, 4):
        revoke_one(engine)
        assert epoch.current() == start + n  # the same kept connection, a new snapshot


def test_concurrent_reads_keep_only_a_few_connections(engine: Engine) -> None:
    epoch = SqlRevocationEpoch(engine, keep=2)
    barrier = threading.Barrier(8)

    def read(_: int) -> int:
        barrier.wait(timeout=30)
        return epoch.current()

    with ThreadPoolExecutor(8) as pool:
        assert len(set(pool.map(read, range(8)))) == 1
    assert len(epoch._idle) <= 2


def test_a_broken_connection_is_replaced_on_the_same_read(engine: Engine) -> None:
    epoch = SqlRevocationEpoch(engine)
    start = epoch.current()
    [kept] = epoch._idle
    kept.close()  # as a restarted server or a dropped socket leaves it
    revoke_one(engine)
    assert epoch.current() == start + 1
    assert epoch._idle
    assert epoch._idle[0] is not kept


def test_a_missing_row_reads_as_zero_and_the_next_revocation_makes_it(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM revocation_epoch"))
    epoch = SqlRevocationEpoch(engine)
    assert epoch.current() == 0
    revoke_one(engine)
    assert epoch.current() == 1


def test_storage_that_cannot_be_read_is_unavailable() -> None:
    engine = create_engine_for("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        with pytest.raises(StorageUnavailable):
            SqlRevocationEpoch(engine).current()
    finally:
        engine.dispose()


def bump_behind_its_back(engine: Engine, by: int) -> None:
    """Advance the stored epoch as no revocation does: without a note in the beacon."""
    with engine.begin() as connection:
        connection.execute(sa.text(f"UPDATE revocation_epoch SET epoch = epoch + {by}"))


def test_sqlite_keeps_the_epoch_until_a_revocation_begins(sqlite_engine: Engine) -> None:
    epoch = SqlRevocationEpoch(sqlite_engine)
    start = epoch.current()
    bump_behind_its_back(sqlite_engine, 10)
    # Not read again: the beacon saw no revocation begin.
    assert [epoch.current() for _ in range(3)] == [start] * 3
    revoke_one(sqlite_engine)  # noted in the beacon: the next call reads the table
    assert epoch.current() == start + 11
    # Another process's reader (a fresh one here) reads it at once too.
    assert SqlRevocationEpoch(sqlite_engine).current() == start + 11


@pytest.mark.postgres
def test_postgres_reads_the_epoch_on_every_call(postgres_url: str) -> None:
    # Its servers need not share a host, so no file can tell them.
    upgrade_schema(postgres_url)
    engine = create_engine_for(postgres_url)
    try:
        epoch = SqlRevocationEpoch(engine)
        start = epoch.current()
        bump_behind_its_back(engine, 10)
        assert epoch.current() == start + 10
    finally:
        engine.dispose()


def test_a_revocation_under_way_makes_every_call_read_the_table(sqlite_engine: Engine) -> None:
    epoch = SqlRevocationEpoch(sqlite_engine)
    start = epoch.current()
    beacon = revocation_beacon(sqlite_engine.url)
    assert beacon is not None
    beacon.begin()  # and never ended, as by a revoker killed before its second note
    for n in range(1, 4):
        bump_behind_its_back(sqlite_engine, 1)
        assert epoch.current() == start + n


def test_a_rolled_back_revocation_ends_its_note(sqlite_engine: Engine) -> None:
    beacon = revocation_beacon(sqlite_engine.url)
    assert beacon is not None
    assert beacon.readable()
    storage = SqlUnitOfWorkFactory(sqlite_engine)
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_missing", T0)
        assert beacon.settled() is None  # under way
    assert beacon.settled() == beacon.begun() == 1


def test_the_beacon_counts_every_note_of_concurrent_processes(tmp_path: Path) -> None:
    beacon = RevocationBeacon(tmp_path / "db-revocations")
    assert beacon.readable()
    assert beacon.settled() == 0
    context = multiprocessing.get_context("fork")
    processes = [context.Process(target=_note, args=(beacon.path, 200)) for _ in range(3)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert beacon.settled() == beacon.begun() == 600


def _note(path: Path, times: int) -> None:
    beacon = RevocationBeacon(path)
    for _ in range(times):
        beacon.begin()
        beacon.end()


def test_without_its_file_a_reader_reads_the_table(tmp_path: Path) -> None:
    missing = tmp_path / "no such folder" / "db-revocations"
    beacon = RevocationBeacon(missing)
    assert not beacon.readable()
    beacon.begin()  # no file, so no process can be trusting one: nothing to note
    assert not missing.exists()


def test_a_revocation_through_a_link_to_the_file_is_seen_at_once(
    linked_database: tuple[Path, Path],
) -> None:
    real, link = linked_database
    serving = create_engine_for(f"sqlite:///{real}")
    revoking = create_engine_for(f"sqlite:///{link}")
    try:
        epoch = SqlRevocationEpoch(serving)
        start = epoch.current()
        revoke_one(revoking)
        assert epoch.current() == start + 1
    finally:
        serving.dispose()
        revoking.dispose()


def test_a_page_reads_the_epoch_in_its_own_statement(engine: Engine) -> None:
    """A reading unit of work that read a page answers revocation_epoch() with no
    statement of its own: on PostgreSQL with the epoch the page's statement read (one
    round trip, not two), on SQLite from the process's reader (the beacon). Either way
    it is the epoch of every revocation committed before."""
    storage = SqlUnitOfWorkFactory(engine, epoch=SqlRevocationEpoch(engine))
    RecordEvents(storage, SystemClock())("acme", [NewEvent(action="a.b", actor=Party(id="u"))])
    statements: list[str] = []

    def seen(_conn: object, _cursor: object, sql: str, *_: object) -> None:
        statements.append(sql)

    sa.event.listen(engine, "before_cursor_execute", seen)
    try:
        for tenant in ("acme", "acme", "globex"):  # globex has no event: an empty page
            revoke_one(engine)
            statements.clear()
            with storage() as uow:
                page = uow.events.page_json(tenant, EventFilter(), PageRequest(limit=5))
                epoch = uow.tokens.revocation_epoch()
            assert [e.seq for e in page] == ([1] if tenant == "acme" else [])
            assert epoch == SqlRevocationEpoch(engine).current()
            assert len(statements) == 1  # the page's
            if engine.dialect.name == "postgresql" and page:
                assert "revocation_epoch" in statements[0]
    finally:
        sa.event.remove(engine, "before_cursor_execute", seen)
