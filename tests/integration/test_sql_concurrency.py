"""The SQL adapter under concurrent writers, and when storage cannot take the work.

Many writers at once (threads, and separate engines standing for separate servers) must
leave each tenant one gap-free chain holding each event once. Storage that is locked,
full, read-only or unreachable must answer StorageUnavailable with nothing half-written.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from audit.adapters.clock import SystemClock
from audit.adapters.sql import SqlUnitOfWorkFactory, create_engine_for, upgrade_schema
from audit.adapters.sql.engine import storage_unavailable
from audit.application.health import CheckReadiness
from audit.application.querying import GetEvent, VerifyChain
from audit.application.recording import Recorded, RecordEvents
from audit.application.tokens import IssueToken
from audit.domain.errors import StorageUnavailable
from audit.domain.events import Event, NewEvent, Party
from audit.domain.query import EventFilter, PageRequest
from audit.domain.tokens import Scope

TENANTS = ["acme", "globex"]
SHARED_IDS = [f"retry-{n}" for n in range(12)]


def new(event_id: str, **fields: Any) -> NewEvent:
    base: dict[str, Any] = {"action": "document.update", "actor": Party(id="u-1")}
    base.update(fields)
    return NewEvent(id=event_id, **base)


def shared(event_id: str) -> NewEvent:
    """An event every writer sends, as a client retrying it would: same id, same content."""
    return new(event_id, description=f"sent by everyone: {event_id}", metadata={"n": 1.5})


@pytest.fixture
def engines(request: pytest.FixtureRequest) -> Iterator[Callable[..., sa.Engine]]:
    """Make engines on demand; all are disposed at the end of the test."""
    made: list[sa.Engine] = []

    def make(url: str, **kwargs: Any) -> sa.Engine:
        engine = create_engine_for(url, **kwargs)
        made.append(engine)
        return engine

    yield make
    for engine in made:
        engine.dispose()


def stored_log(factory: SqlUnitOfWorkFactory, tenant: str) -> list[Event]:
    with factory() as uow:
        return uow.events.page(tenant, EventFilter(), PageRequest(limit=100_000, order="asc"))


def write_concurrently(
    factories: list[SqlUnitOfWorkFactory], threads: int = 8, rounds: int = 12
) -> list[tuple[str, list[NewEvent], list[Recorded]]]:
    """Threads, spread over the factories, recording singles, batches and shared retries.

    No retries on StorageUnavailable: writers must queue for the lock, not fail.
    """
    start = threading.Barrier(threads)

    def writer(number: int) -> list[tuple[str, list[NewEvent], list[Recorded]]]:
        record = RecordEvents(factories[number % len(factories)], SystemClock())
        rng = random.Random(number)
        done = []
        start.wait()
        for turn in range(rounds):
            tenant = TENANTS[(number + turn) % len(TENANTS)]
            own = f"w{number}-t{turn}"
            if turn % 3 == 0:
                batch = [new(own)]
            elif turn % 3 == 1:
                batch = [new(f"{own}-{k}", metadata={"k": k}) for k in range(rng.randint(2, 25))]
            else:
                ids = rng.sample(SHARED_IDS, rng.randint(1, 5))
                batch = [shared(i) for i in ids] + [new(own)]
                rng.shuffle(batch)
            done.append((tenant, batch, record(tenant, batch)))
        return done

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(writer, n) for n in range(threads)]
        return [item for future in futures for item in future.result(timeout=60)]


def assert_one_valid_chain_per_tenant(
    factory: SqlUnitOfWorkFactory, results: list[tuple[str, list[NewEvent], list[Recorded]]]
) -> None:
    for tenant in TENANTS:
        sent = [(b, r) for t, b, r in results if t == tenant]
        sent_ids = {e.id or "" for batch, _ in sent for e in batch}
        log = stored_log(factory, tenant)
        assert [e.seq for e in log] == list(range(1, len(log) + 1))  # every seq once, no gap
        assert sorted(e.id for e in log) == sorted(sent_ids)  # every event once
        by_id = {e.id: e for e in log}
        created: dict[str, int] = {}
        for batch, recorded in sent:
            assert [r.event.id for r in recorded] == [e.id for e in batch]
            for r in recorded:
                assert r.event == by_id[r.event.id]  # what each writer was told is stored
                created[r.event.id] = created.get(r.event.id, 0) + r.created
        assert set(created.values()) == {1}  # each id created by exactly one request
        report = VerifyChain(factory)(tenant)
        assert (report.valid, report.checked) == (True, len(log)), report
        with factory() as uow:
            assert uow.events.head(tenant).seq == len(log)


@pytest.mark.parametrize("keep_writer", [False, True])
def test_concurrent_writers_on_one_sqlite_file(
    sqlite_url: str, engines: Callable[..., sa.Engine], keep_writer: bool
) -> None:
    upgrade_schema(sqlite_url)
    # Two engines on one file stand for two processes.
    factories = [
        SqlUnitOfWorkFactory(engines(sqlite_url), keep_writer=keep_writer) for _ in range(2)
    ]
    results = write_concurrently(factories)
    assert_one_valid_chain_per_tenant(factories[0], results)


def test_writing_units_of_work_keep_one_sqlite_connection_until_one_fails(
    sqlite_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(sqlite_url)
    engine = engines(sqlite_url)
    checkouts: list[int] = []
    sa.event.listen(engine, "checkout", lambda dbapi, *_: checkouts.append(id(dbapi)))
    factory = SqlUnitOfWorkFactory(engine, keep_writer=True)
    record = RecordEvents(factory, SystemClock())
    for n in range(5):
        record("acme", [new(f"kept-{n}")])
    assert len(checkouts) == 1
    stored_log(factory, "acme")  # reads keep a connection of their own
    stored_log(factory, "acme")
    assert len(checkouts) == 2

    def fail_midway() -> None:
        with factory(write=True) as uow:
            uow.events.lock_head("acme")
            raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        fail_midway()
    record("acme", [new("after")])  # on a fresh connection: the failed one was let go
    assert len(checkouts) == 3
    assert [e.seq for e in stored_log(factory, "acme")] == [1, 2, 3, 4, 5, 6]


def test_reading_units_of_work_keep_a_connection_per_concurrent_reader(
    sqlite_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(sqlite_url)
    engine = engines(sqlite_url)
    checkouts: list[Any] = []
    checkins: list[Any] = []
    sa.event.listen(engine, "checkout", lambda dbapi, *_: checkouts.append(dbapi))
    sa.event.listen(engine, "checkin", lambda dbapi, *_: checkins.append(dbapi))
    factory = SqlUnitOfWorkFactory(engine)
    RecordEvents(factory, SystemClock())("acme", [new("one")])
    del checkouts[:], checkins[:]  # the writer's: writers keep no connection here
    readers = 4
    inside = threading.Barrier(readers)
    seen: list[int] = []

    def read() -> None:
        with factory() as uow:
            inside.wait(timeout=10)  # all four at once, each on its own connection
            seen.append(uow.events.head("acme").seq)

    for _round in range(3):
        threads = [threading.Thread(target=read) for _ in range(readers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
    assert seen == [1] * readers * 3
    # Made in the first round, taken again after, never given back to the pool.
    assert (len(checkouts), checkins) == (readers, [])

    def fail_midway() -> None:
        with factory() as uow:
            uow.events.head("acme")
            raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        fail_midway()
    assert len(checkins) == 1  # a connection whose work failed goes back to the pool
    engine.dispose()
    for dbapi in checkouts:  # and the kept ones are closed with the engine
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            dbapi.execute("SELECT 1")


@pytest.mark.postgres
def test_concurrent_writers_on_two_postgres_servers(
    postgres_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(postgres_url)
    factories = [SqlUnitOfWorkFactory(engines(postgres_url)) for _ in range(2)]
    results = write_concurrently(factories, threads=10)
    assert_one_valid_chain_per_tenant(factories[1], results)


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_servers_starting_together_upgrade_the_schema_once(
    request: pytest.FixtureRequest, kind: str, engines: Callable[..., sa.Engine]
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    start = threading.Barrier(4)

    def upgrade() -> None:
        start.wait()
        upgrade_schema(url, lock_timeout_ms=10_000)

    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(upgrade) for _ in range(4)]:
            future.result(timeout=60)
    with engines(url).connect() as connection:
        versions = connection.execute(sa.text("SELECT version_num FROM alembic_version")).all()
    assert versions == [("0008",)]
    record = RecordEvents(SqlUnitOfWorkFactory(engines(url)), SystemClock())
    assert record("acme", [new("a")])[0].event.seq == 1


def test_a_forked_child_opens_its_own_connections(
    sqlite_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(sqlite_url)
    engine = engines(sqlite_url)
    factory = SqlUnitOfWorkFactory(engine)
    RecordEvents(factory, SystemClock())("acme", [new("parent")])
    assert engine.pool.checkedin() == 1  # type: ignore[attr-defined]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a server worker forked after the parent used the engine
        try:
            inherited = engine.pool.checkedin()  # type: ignore[attr-defined]
            RecordEvents(factory, SystemClock())("acme", [new("child")])
            os.write(write, str(inherited).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    assert os.read(read, 16) == b"0"
    os.close(read)
    assert [e.id for e in stored_log(factory, "acme")] == ["parent", "child"]
    assert VerifyChain(factory)("acme").valid


# --- storage that cannot take the work ---------------------------------------------------


def assert_clean_message(error: StorageUnavailable, *secrets: str) -> None:
    for leak in ("SELECT", "INSERT", "BEGIN", "UPDATE", "events", *secrets):
        assert leak not in error.message
        assert leak not in str(error)


def test_a_locked_sqlite_database_fails_writers_after_the_busy_timeout(
    sqlite_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(sqlite_url)
    factory = SqlUnitOfWorkFactory(engines(sqlite_url, lock_timeout_ms=300))
    record = RecordEvents(factory, SystemClock())
    [before] = record("acme", [new("before")])
    path = make_url(sqlite_url).database
    assert path is not None
    blocker = sqlite3.connect(path, isolation_level=None)
    try:
        blocker.execute("BEGIN IMMEDIATE")
        blocker.execute("UPDATE chain_heads SET seq = seq")
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as caught:
            record("acme", [new("during-1"), new("during-2", targets=(Party(id="t"),))])
        waited = time.monotonic() - started
        assert 0.25 <= waited < 3
        assert caught.value.retry_after >= 1
        assert_clean_message(caught.value, path)
        with pytest.raises(StorageUnavailable):
            IssueToken(factory, SystemClock())("acme", "n", frozenset({Scope.EVENTS_READ}))
        # Readers are not held up by a writer (WAL).
        assert GetEvent(factory)("acme", "before") == before.event
        CheckReadiness(factory)()
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    # Nothing of the failed work was written, and the chain goes on from where it was.
    assert [e.id for e in stored_log(factory, "acme")] == ["before"]
    with factory() as uow:
        assert uow.tokens.list() == []
        assert uow.events.head("acme").seq == 1
    [after] = record("acme", [new("during-1")])
    assert (after.event.seq, after.created) == (2, True)
    assert VerifyChain(factory)("acme").valid


def test_a_full_sqlite_database_fails_cleanly(
    sqlite_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(sqlite_url)
    engine = engines(sqlite_url)
    factory = SqlUnitOfWorkFactory(engine)
    record = RecordEvents(factory, SystemClock())
    record("acme", [new("before")])

    # SQLite's page limit stands in for a full disk: the same error, SQLITE_FULL.
    @sa.event.listens_for(engine, "connect")
    def limit_size(dbapi_connection: Any, _record: Any) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count = {pages + 4}")

    engine.dispose()  # new connections, with the limit
    big = [new(f"big-{n}", description="x" * 1000) for n in range(200)]
    with pytest.raises(StorageUnavailable) as caught:
        record("acme", big)
    assert "full" in caught.value.message
    assert_clean_message(caught.value)
    assert [e.id for e in stored_log(factory, "acme")] == ["before"]
    [small] = record("acme", [new("small")])
    assert small.event.seq == 2
    assert VerifyChain(factory)("acme").valid


def test_an_sqlite_file_that_cannot_be_opened_is_unavailable(
    tmp_path: Any, engines: Callable[..., sa.Engine]
) -> None:
    url = f"sqlite:///{tmp_path / 'missing-folder' / 'audit.db'}"
    with pytest.raises(StorageUnavailable) as caught:
        CheckReadiness(SqlUnitOfWorkFactory(engines(url)))()
    assert_clean_message(caught.value, str(tmp_path))


@pytest.mark.postgres
def test_a_locked_postgres_head_fails_writers_after_the_lock_timeout(
    postgres_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(postgres_url)
    factory = SqlUnitOfWorkFactory(engines(postgres_url, lock_timeout_ms=300))
    record = RecordEvents(factory, SystemClock())
    record("acme", [new("before")])
    with engines(postgres_url).connect() as blocker:
        blocker.execute(sa.text("SELECT * FROM chain_heads WHERE tenant = 'acme' FOR UPDATE"))
        started = time.monotonic()
        with pytest.raises(StorageUnavailable) as caught:
            record("acme", [new("during")])
        assert 0.25 <= time.monotonic() - started < 3
        assert caught.value.retry_after >= 1
        assert_clean_message(caught.value)
        # Another tenant's writers do not wait for acme's.
        assert record("globex", [new("elsewhere")])[0].created
        blocker.rollback()
    assert [e.id for e in stored_log(factory, "acme")] == ["before"]
    assert record("acme", [new("during")])[0].event.seq == 2


@pytest.mark.postgres
def test_a_read_only_postgres_database_refuses_writes_cleanly(
    postgres_url: str, engines: Callable[..., sa.Engine]
) -> None:
    upgrade_schema(postgres_url)
    name = make_url(postgres_url).database
    with engines(postgres_url, pool_size=1).connect() as admin:
        admin.execute(sa.text(f'ALTER DATABASE "{name}" SET default_transaction_read_only = on'))
        admin.commit()
    factory = SqlUnitOfWorkFactory(engines(postgres_url))
    with pytest.raises(StorageUnavailable) as caught:
        RecordEvents(factory, SystemClock())("acme", [new("a")])
    assert "read-only" in caught.value.message
    with pytest.raises(StorageUnavailable):
        IssueToken(factory, SystemClock())("acme", "n", frozenset({Scope.EVENTS_READ}))
    CheckReadiness(factory)()
    assert stored_log(factory, "acme") == []


@pytest.mark.postgres
def test_an_unreachable_postgres_server_is_unavailable_without_leaking_the_url(
    engines: Callable[..., sa.Engine], postgres_url: str
) -> None:
    url = "postgresql://auditor:s3cret-pw@127.0.0.1:1/nowhere"
    started = time.monotonic()
    with pytest.raises(StorageUnavailable) as caught:
        CheckReadiness(SqlUnitOfWorkFactory(engines(url)))()
    assert time.monotonic() - started < 15
    assert_clean_message(caught.value, "s3cret-pw", "auditor", "nowhere")


@pytest.mark.postgres
def test_postgres_pings_only_a_connection_the_server_may_have_dropped(
    postgres_url: str, engines: Callable[..., sa.Engine], monkeypatch: pytest.MonkeyPatch
) -> None:
    upgrade_schema(postgres_url)
    engine = engines(postgres_url)
    pings: list[int] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    factory = SqlUnitOfWorkFactory(engine)
    record = RecordEvents(factory, SystemClock())
    for n in range(5):
        record("acme", [new(f"quiet-{n}")])
        stored_log(factory, "acme")
    assert pings == []  # a healthy idle connection costs no round trip to check out

    with engines(postgres_url).connect() as admin:
        admin.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
        admin.commit()
    # With a timeout, pg_terminate_backend returns once the backend has ended: its
    # goodbye is on the pooled socket by then (without, the next checkout could come first).
    assert [e.id for e in stored_log(factory, "acme")][-1] == "quiet-4"
    assert pings  # the dropped connection was pinged, failed, and was replaced unseen


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_reads_open_no_transaction_and_writes_stay_transactions(
    kind: str, sqlite_url: str, engines: Callable[..., sa.Engine], request: pytest.FixtureRequest
) -> None:
    url = sqlite_url if kind == "sqlite" else request.getfixturevalue("postgres_url")
    upgrade_schema(url)
    factory = SqlUnitOfWorkFactory(engines(url))
    record = RecordEvents(factory, SystemClock())
    record("acme", [new("a")])

    def in_transaction(driver: Any) -> bool:
        if kind == "sqlite":
            return bool(driver.in_transaction)
        from psycopg.pq import TransactionStatus

        return bool(driver.info.transaction_status != TransactionStatus.IDLE)

    with factory() as uow:
        assert uow.events.head("acme").seq == 1
        assert len(uow.events.page("acme", EventFilter(), PageRequest(limit=10))) == 1
        reader = uow.events._conn.connection.dbapi_connection
        # Nothing begun, so nothing to end: no BEGIN and no ROLLBACK.
        assert not in_transaction(reader)

    # A writer's work is one transaction, rolled back whole when it fails; on PostgreSQL
    # (one thread, one pooled connection) on the very connection the reader had.
    def fail_midway() -> None:
        with factory(write=True) as uow:
            writer = uow.events._conn.connection.dbapi_connection
            assert kind == "sqlite" or writer is reader
            uow.events.lock_head("acme")
            assert in_transaction(writer)
            raise RuntimeError("midway")

    with pytest.raises(RuntimeError, match="midway"):
        fail_midway()
    assert [e.id for e in stored_log(factory, "acme")] == ["a"]


@pytest.mark.postgres
@pytest.mark.parametrize("keep_writer", [False, True])  # kept on SQLite only
def test_postgres_connections_lost_are_replaced(
    postgres_url: str, engines: Callable[..., sa.Engine], keep_writer: bool
) -> None:
    upgrade_schema(postgres_url)
    factory = SqlUnitOfWorkFactory(engines(postgres_url), keep_writer=keep_writer)
    record = RecordEvents(factory, SystemClock())
    record("acme", [new("a")])
    admin = engines(postgres_url)
    name = make_url(postgres_url).database

    def kill_other_connections() -> None:
        with admin.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity"
                    " WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
            connection.commit()

    # Between units of work: the pool's pre-ping notices and reconnects, nobody sees it.
    kill_other_connections()
    assert record("acme", [new("b")])[0].event.seq == 2

    # In the middle of one: that work fails as unavailable, and the next succeeds.
    def lose_connection_midway() -> None:
        with factory(write=True) as uow:
            uow.events.lock_head("acme")
            kill_other_connections()
            uow.events.existing("acme", ["c"])

    with pytest.raises(StorageUnavailable):
        lose_connection_midway()
    assert record("acme", [new("c")])[0].event.seq == 3
    assert VerifyChain(factory)("acme").valid


def test_sqlite_writers_of_other_processes_queue_on_the_writer_lock(
    sqlite_url: str, engines: Callable[..., sa.Engine]
) -> None:
    """A server process stuck mid-write holds the writer lock: others wait, then 503."""
    import fcntl

    upgrade_schema(sqlite_url)
    factory = SqlUnitOfWorkFactory(engines(sqlite_url, lock_timeout_ms=300))
    record = RecordEvents(factory, SystemClock())
    record("acme", [new("first")])
    lock_path = f"{make_url(sqlite_url).database}-writer"
    holder = os.open(lock_path, os.O_RDWR)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable, match="another writer"):
            record("acme", [new("blocked")])
        assert 0.25 <= time.monotonic() - started < 3
        # A writer waiting when the lock is let go gets in (before its 0.3 s run out).
        threading.Timer(0.1, os.close, [holder]).start()
        holder = -1
        [waited] = record("acme", [new("waited")])
        assert waited.event.seq == 2
    finally:
        if holder >= 0:
            os.close(holder)
    assert VerifyChain(factory)("acme").valid


def test_a_checkout_whose_reconnection_fails_too_is_storage_unavailable(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy's pool, finding a connection cut and the new one cut as well, raises
    InvalidRequestError ("This connection is closed"): a 503, not a 500."""
    upgrade_schema(sqlite_url)
    engine = create_engine_for(sqlite_url)
    try:

        def cut(*args: Any, **kwargs: Any) -> Any:
            raise sa.exc.InvalidRequestError("This connection is closed")

        monkeypatch.setattr(engine, "connect", cut)
        with pytest.raises(StorageUnavailable) as refused, SqlUnitOfWorkFactory(engine)(write=True):
            pass
        assert refused.value.reason == "unreachable"
    finally:
        monkeypatch.undo()
        engine.dispose()


def test_postgres_refusing_more_connections_is_said_so() -> None:
    class TooMany(Exception):
        sqlstate = "53300"

    refused = storage_unavailable(TooMany("sorry, too many clients already"), connecting=True)
    assert refused is not None
    assert refused.reason == "exhausted"
    assert "takes no more connections" in refused.message
