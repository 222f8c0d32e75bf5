"""SQLite's index for `q` in a file of its own, kept by a background indexer
(audit.adapters.sql.search_index): exact whatever the indexer has done, caught up soon
after a commit, rebuilt when lost, kept by one process at a time. Real SQLite files.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from tests.integration.test_search_plans import page_and_statements

from audit.adapters.clock import FixedClock
from audit.adapters.sql import (
    SqlUnitOfWorkFactory,
    create_engine_for,
    search_index,
    sqlite_file,
    upgrade_schema,
)
from audit.adapters.sql.search import fts5_trigrams
from audit.adapters.sql.search_index import (
    SearchIndexer,
    search_file,
    stop_indexers,
    wait_until_indexed,
)
from audit.application.querying import QueryEvents
from audit.application.recording import RecordEvents
from audit.domain.events import Event, NewEvent, Party
from audit.domain.query import EventFilter, PageRequest, matches

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TENANTS = ("acme", "globex")
NEEDLES = ["needle", "NEEDLE in", "hay", "haystack 1", "zzz-nowhere", "ne"]


@pytest.fixture
def live(sqlite_url: str) -> Iterator[tuple[str, Engine]]:
    """A migrated database file and an engine on it; its indexer starts with the first write."""
    upgrade_schema(sqlite_url)
    engine = create_engine_for(sqlite_url)
    try:
        yield str(sqlite_file(sqlite_url)), engine
    finally:
        engine.dispose()


@pytest.fixture
def manual(live: tuple[str, Engine], monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    """A database whose indexer runs only when the test says (no background thread)."""
    monkeypatch.setattr(search_index, "start_indexer", lambda database: None)
    database, engine = live
    return database, SqlUnitOfWorkFactory(engine)


def write_interleaved(storage: Any, rounds: int = 30, prefix: str = "") -> dict[str, list[Event]]:
    """Both tenants appending in turn (their rowids interleave), a needle in 1 of 3."""
    record = RecordEvents(storage, FixedClock(T0))
    stored: dict[str, list[Event]] = {tenant: [] for tenant in TENANTS}
    for n in range(rounds):
        for tenant in TENANTS:
            text = f"a NEEDLE in the haystack {n}" if n % 3 == 0 else f"plain hay {n}"
            batch = [
                NewEvent(
                    id=f"{prefix}{tenant}-{n}-{k}",
                    action="a",
                    actor=Party(id="u"),
                    description=f"{text} {tenant} {k}",
                )
                for k in range(2)
            ]
            stored[tenant] += [r.event for r in record(tenant, batch)]
    return stored


def expected(events: list[Event], where: EventFilter, page: PageRequest) -> list[Event]:
    after = page.after_seq
    found = [
        e
        for e in events
        if matches(e, where)
        and (after is None or (e.seq > after if page.order == "asc" else e.seq < after))
    ]
    return sorted(found, key=lambda e: e.seq, reverse=page.order == "desc")[: page.limit]


def assert_exact(storage: Any, stored: dict[str, list[Event]]) -> None:
    """Every needle, both orders, whole pages and pages of 4 followed by their cursor."""
    query = QueryEvents(storage)
    for tenant in TENANTS:
        for q in NEEDLES:
            for order in ("asc", "desc"):
                where = EventFilter(q=q)
                everything = PageRequest(limit=1000, order=order)
                want = expected(stored[tenant], where, everything)
                got = query(tenant, where, everything).events
                assert [(e.id, e.seq) for e in got] == [(e.id, e.seq) for e in want], (tenant, q)
                assert got == want, (tenant, q, order)
                seen: list[Event] = []
                page = PageRequest(limit=4, order=order)
                while True:
                    result = query(tenant, where, page)
                    seen += result.events
                    if result.next_cursor is None:
                        break
                    page = PageRequest(limit=4, order=order, after_seq=result.events[-1].seq)
                assert seen == want, (tenant, q, order)


def indexed_upto(database: str) -> int:
    with closing(sqlite3.connect(f"file:{search_file(database)}?mode=ro", uri=True)) as index:
        return int(index.execute("SELECT indexed_upto FROM search_progress").fetchone()[0])


def last_rowid(database: str) -> int:
    with closing(sqlite3.connect(database)) as events:
        return int(events.execute("SELECT max(rowid) FROM events").fetchone()[0])


def test_q_is_exact_before_during_and_after_indexing(manual: tuple[str, Any]) -> None:
    database, storage = manual
    stored = write_interleaved(storage)
    assert not os.path.exists(search_file(database))
    assert_exact(storage, stored)  # nothing indexed: the tail is every event
    indexer = SearchIndexer(database, batch=7)
    try:
        for through in (1, last_rowid(database) // 3, last_rowid(database) // 2 + 1):
            indexer.index_upto(through)  # some indexed, some not; tenants interleaved
            assert indexed_upto(database) == through
            assert_exact(storage, stored)
        indexer.catch_up()
        assert indexed_upto(database) == last_rowid(database)
        assert_exact(storage, stored)
        # More written after it caught up: a tail again.
        more = write_interleaved(storage, rounds=3, prefix="more-")
        for tenant in TENANTS:
            stored[tenant] += more[tenant]
        assert_exact(storage, stored)
    finally:
        indexer.close()


def test_a_page_reads_the_index_then_the_tail_by_rowid(manual: tuple[str, Any]) -> None:
    database, storage = manual
    stored = write_interleaved(storage)
    indexer = SearchIndexer(database)
    try:
        indexer.index_upto(last_rowid(database) // 2)
    finally:
        indexer.close()
    engine = storage.engine
    for order in ("asc", "desc"):
        page = PageRequest(limit=1000, order=order)
        found, statements = page_and_statements(engine, EventFilter(q="needle"), page)
        assert found == expected(stored["acme"], EventFilter(q="needle"), page)
        *_, first, second = statements
        index_part, tail_part = (first, second) if order == "asc" else (second, first)
        with engine.connect() as connection:
            plans = [
                [
                    str(row[-1])
                    for row in connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                ]
                for statement, params in (index_part, tail_part)
            ]
        assert plans[0][0].startswith("SCAN search.events_trigrams VIRTUAL TABLE"), plans
        assert plans[1][0] == "SEARCH tail USING INTEGER PRIMARY KEY (rowid>?)", plans
        for plan in plans:
            assert plan[1] == "SEARCH events USING INTEGER PRIMARY KEY (rowid=?)", plans
            assert not any("TEMP B-TREE" in line for line in plan), plans


def test_the_indexer_catches_up_soon_after_a_commit(live: tuple[str, Engine]) -> None:
    database, engine = live
    storage = SqlUnitOfWorkFactory(engine)
    record = RecordEvents(storage, FixedClock(T0))
    # The first write starts this process's indexer.
    record("acme", [NewEvent(id="e-1", action="a", actor=Party(id="u"), description="x")])
    wait_until_indexed(database, timeout_s=5)
    for n in range(3):
        record(
            "acme",
            [
                NewEvent(
                    id=f"n-{n}", action="a", actor=Party(id="u"), description=f"late needle {n}"
                )
            ],
        )
        began = time.monotonic()
        wait_until_indexed(database, timeout_s=5)
        assert time.monotonic() - began < 2  # it polls every 0.15 s
    # The engine's connections read the index (attached since the file exists).
    with engine.connect() as connection:
        upto = connection.exec_driver_sql(
            "SELECT indexed_upto FROM search.search_progress"
        ).scalar_one()
        hits = connection.exec_driver_sql(
            "SELECT count(*) FROM search.events_trigrams WHERE events_trigrams MATCH ?",
            (fts5_trigrams("late needle"),),
        ).scalar_one()
    assert (upto, hits) == (4, 3)
    page = QueryEvents(storage)("acme", EventFilter(q="late needle"), PageRequest(limit=10))
    assert [e.id for e in page.events] == ["n-2", "n-1", "n-0"]


def test_the_files_are_the_owners_only(live: tuple[str, Engine]) -> None:
    database, engine = live
    RecordEvents(SqlUnitOfWorkFactory(engine), FixedClock(T0))(
        "acme", [NewEvent(id="e", action="a", actor=Party(id="u"), description="text")]
    )
    wait_until_indexed(database, timeout_s=5)
    for path in (search_file(database), search_file(database) + ".lock"):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, path
    # Nothing left behind of making the file.
    assert sorted(p.name for p in Path(database).parent.glob("*.new*")) == []


def test_a_removed_or_damaged_search_file_is_rebuilt(live: tuple[str, Engine]) -> None:
    database, engine = live
    storage = SqlUnitOfWorkFactory(engine)
    record = RecordEvents(storage, FixedClock(T0))
    stored = [
        r.event
        for r in record(
            "acme",
            [
                NewEvent(id=f"e-{n}", action="a", actor=Party(id="u"), description=f"needle {n}")
                for n in range(50)
            ],
        )
    ]
    query = QueryEvents(storage)
    where, page = EventFilter(q="needle 4"), PageRequest(limit=100, order="asc")
    want = expected(stored, where, page)
    wait_until_indexed(database, timeout_s=5)
    assert query("acme", where, page).events == want

    for damage in ("remove", "garble"):
        path = search_file(database)
        if damage == "remove":
            for suffix in ("", "-wal", "-shm"):
                Path(path + suffix).unlink(missing_ok=True)
        else:
            Path(path + ".tmp").write_bytes(b"not a database at all " * 300)
            os.replace(path + ".tmp", path)
        assert query("acme", where, page).events == want  # meanwhile, read directly
        # The indexer rebuilds it from the first event ...
        deadline = time.monotonic() + 10
        while True:
            try:
                if indexed_upto(database) == 50:
                    break
            except sqlite3.Error:
                pass
            assert time.monotonic() < deadline, damage
            time.sleep(0.05)
        # ... and the engine's connections read the new file (one that found the
        # damaged file tries again a second later).
        while True:
            with engine.connect() as connection:
                upto = connection.exec_driver_sql(
                    "SELECT indexed_upto FROM search.search_progress"
                ).scalar_one()
            if upto == 50:
                break
            assert time.monotonic() < deadline, damage
            time.sleep(0.05)
        assert query("acme", where, page).events == want, damage


def test_a_kept_reading_connection_follows_a_rebuilt_search_file(
    live: tuple[str, Engine],
) -> None:
    # Reading units of work keep their connection out of the pool between them, so the
    # pool's checkout hook does not see it: taking it again must look at the file too.
    database, engine = live
    storage = SqlUnitOfWorkFactory(engine)
    record = RecordEvents(storage, FixedClock(T0))

    def add(first: int, count: int) -> None:
        record(
            "acme",
            [
                NewEvent(id=f"e-{n}", action="a", actor=Party(id="u"))
                for n in range(first, first + count)
            ],
        )

    def upto_seen_by_a_reader() -> int:
        with storage() as uow:
            return int(
                uow.events._conn.exec_driver_sql(
                    "SELECT indexed_upto FROM search.search_progress"
                ).scalar_one()
            )

    add(0, 10)
    wait_until_indexed(database, timeout_s=5)
    assert upto_seen_by_a_reader() == 10  # the file, attached by the kept connection
    for suffix in ("", "-wal", "-shm"):
        Path(search_file(database) + suffix).unlink()
    add(10, 5)
    wait_until_indexed(database, timeout_s=5)  # a new file, indexed from the start
    assert indexed_upto(database) == 15
    assert upto_seen_by_a_reader() == 15  # not the removed file's 10


def test_one_indexer_at_a_time(sqlite_url: str) -> None:
    upgrade_schema(sqlite_url)
    database = str(sqlite_file(sqlite_url))
    first, second = SearchIndexer(database), SearchIndexer(database)
    try:
        assert first.try_lock()
        assert not second.try_lock()  # another engine or process: it waits its turn
        # Another process, too.
        other = [
            sys.executable,
            "-c",
            (
                "import sys; from audit.adapters.sql.search_index import SearchIndexer;"
                " sys.exit(0 if SearchIndexer(sys.argv[1]).try_lock() else 3)"
            ),
            database,
        ]
        assert subprocess.run(other, check=False).returncode == 3
        first.unlock()
        assert subprocess.run(other, check=False).returncode == 0  # its lock ended with it
        assert second.try_lock()
        assert not first.try_lock()
    finally:
        first.unlock()
        second.unlock()


def test_two_engines_writing_one_file_index_it_once(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_index, "start_indexer", lambda database: None)
    upgrade_schema(sqlite_url)
    database = str(sqlite_file(sqlite_url))
    engines = [create_engine_for(sqlite_url) for _ in range(2)]
    started: list[SearchIndexer] = []
    try:
        # Two indexers, as two processes would have (one per process in real life).
        for _ in engines:
            indexer = SearchIndexer(database, poll_s=0.02)
            indexer.start()
            started.append(indexer)
        for n in range(20):
            RecordEvents(SqlUnitOfWorkFactory(engines[n % 2]), FixedClock(T0))(
                "acme",
                [
                    NewEvent(
                        id=f"e-{n}-{k}",
                        action="a",
                        actor=Party(id="u"),
                        description=f"needle {n} {k}",
                    )
                    for k in range(30)
                ],
            )
        wait_until_indexed(database, timeout_s=10)
        holders = [indexer for indexer in started if indexer._lock_fd is not None]
        assert len(holders) == 1
        # Every event indexed once: a contentless index counts its rows.
        with closing(sqlite3.connect(search_file(database))) as index:
            rows = index.execute("SELECT count(*) FROM events_trigrams").fetchone()[0]
        assert rows == 600
    finally:
        for indexer in started:
            indexer.stop()
        for engine in engines:
            engine.dispose()


def test_upgrading_from_0006_keeps_q_exact(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_index, "start_indexer", lambda database: None)
    upgrade_schema(sqlite_url, revision="0006")
    database = str(sqlite_file(sqlite_url))
    engine = create_engine_for(sqlite_url)
    try:
        storage = SqlUnitOfWorkFactory(engine)
        stored = write_interleaved(storage, rounds=10)  # indexed by 0003's trigger
        upgrade_schema(sqlite_url)
        with closing(sqlite3.connect(database)) as connection:
            kept = connection.execute(
                "SELECT name FROM sqlite_master WHERE name LIKE 'events_fts%'"
            ).fetchall()
        assert kept == []
        assert_exact(storage, stored)  # nothing indexed yet: read directly
        indexer = SearchIndexer(database)
        try:
            indexer.index_upto(15)
            assert_exact(storage, stored)
            indexer.catch_up()
        finally:
            indexer.close()
        assert indexed_upto(database) == 40
        assert_exact(storage, stored)
    finally:
        engine.dispose()


def test_text_changed_behind_the_service(manual: tuple[str, Any]) -> None:
    # The service never changes an event; someone with the file may. A candidate is
    # always checked against the text in `events`, so nothing is found for text that is
    # no longer there; text written into an indexed event is found once the index is
    # rebuilt (removing the file).
    database, storage = manual
    RecordEvents(storage, FixedClock(T0))(
        "acme",
        [
            NewEvent(id=t, action="a", actor=Party(id="u"), description=t)
            for t in ("alpha original", "beta original", "gamma other")
        ],
    )
    indexer = SearchIndexer(database)
    try:
        indexer.catch_up()
        with storage.engine.begin() as connection:
            connection.exec_driver_sql(
                "UPDATE events SET description = 'tampered', search_text = 'tampered' WHERE seq = 1"
            )
            connection.exec_driver_sql("DELETE FROM events WHERE seq = 2")
        query = QueryEvents(storage)

        def seqs(q: str) -> list[int]:
            return [e.seq for e in query("acme", EventFilter(q=q), PageRequest(limit=10)).events]

        assert seqs("original") == []
        assert seqs("other") == [3]
        assert seqs("tampered") == []  # the index holds the old text of seq 1
        indexer.close()
        indexer.remove_file()
        indexer.catch_up()
        assert seqs("tampered") == [1]
    finally:
        indexer.close()


def test_reading_commands_make_no_search_file(live: tuple[str, Engine]) -> None:
    database, engine = live
    with engine.connect() as connection:
        # Without the file, an empty index in memory stands in: every event is tail.
        assert (
            connection.exec_driver_sql(
                "SELECT indexed_upto FROM search.search_progress"
            ).scalar_one()
            == 0
        )
    storage = SqlUnitOfWorkFactory(engine)
    QueryEvents(storage)("acme", EventFilter(q="anything"), PageRequest(limit=10))
    assert not os.path.exists(search_file(database))


def test_stopping_the_indexers_ends_their_threads(live: tuple[str, Engine]) -> None:
    _, engine = live
    RecordEvents(SqlUnitOfWorkFactory(engine), FixedClock(T0))(
        "acme", [NewEvent(id="e", action="a", actor=Party(id="u"))]
    )
    assert any(t.name == "audit-search-indexer" for t in threading.enumerate())
    stop_indexers()
    assert not any(t.name == "audit-search-indexer" for t in threading.enumerate())


def test_a_database_restored_from_a_backup_is_indexed_again(manual: tuple[str, Any]) -> None:
    database, storage = manual
    record = RecordEvents(storage, FixedClock(T0))

    def write(prefix: str, text: str, count: int) -> list[Event]:
        batch = [
            NewEvent(id=f"{prefix}-{n}", action="a", actor=Party(id="u"), description=f"{text} {n}")
            for n in range(count)
        ]
        return [r.event for r in record("acme", batch)]

    kept = write("early", "early text", 20)
    backup = database + ".backup"
    with closing(sqlite3.connect(database)) as source, closing(sqlite3.connect(backup)) as copy:
        source.backup(copy)
    write("later", "later text", 30)
    indexer = SearchIndexer(database)
    try:
        indexer.catch_up()
        assert indexed_upto(database) == 50
        # The database goes back to the backup (the search file stays), and the log goes
        # on from there: new events take the rowids the index holds other text for.
        storage.engine.dispose()
        for suffix in ("-wal", "-shm"):
            Path(database + suffix).unlink(missing_ok=True)
        os.replace(backup, database)
        after = write("after", "after text", 40)
        query = QueryEvents(storage)
        page = PageRequest(limit=100, order="asc")
        for _ in range(2):  # before the indexer sees it (read directly), and after
            assert query("acme", EventFilter(q="after text"), page).events == after
            assert query("acme", EventFilter(q="later text"), page).events == []
            assert query("acme", EventFilter(q="early text 1"), page).events == [
                e for e in kept if "early text 1" in e.description
            ]
            indexer.catch_up()
        assert indexed_upto(database) == 60
    finally:
        indexer.close()


def test_a_search_file_of_the_earlier_format_is_rebuilt(manual: tuple[str, Any]) -> None:
    # Files made before the index kept no positions (FTS5's default, detail=full): the
    # indexer replaces one with a file of this format, and q stays exact meanwhile.
    database, storage = manual
    stored = write_interleaved(storage, rounds=10)
    with closing(sqlite3.connect(search_file(database))) as old:
        old.execute(
            "CREATE VIRTUAL TABLE events_trigrams USING fts5("
            "search_text, content='', tokenize='trigram')"
        )
        old.execute(
            "CREATE TABLE search_progress (id INTEGER PRIMARY KEY CHECK (id = 1),"
            " indexed_upto INTEGER NOT NULL, last_hash TEXT)"
        )
        old.execute("INSERT INTO search_progress (id, indexed_upto) VALUES (1, 0)")
        old.commit()
    assert_exact(storage, stored)  # the old file attached, nothing in it yet
    before = os.stat(search_file(database)).st_ino
    indexer = SearchIndexer(database)
    try:
        indexer.catch_up()
    finally:
        indexer.close()
    assert os.stat(search_file(database)).st_ino != before
    with closing(sqlite3.connect(search_file(database))) as index:
        [made] = index.execute(
            "SELECT sql FROM sqlite_master WHERE name = 'events_trigrams'"
        ).fetchone()
    assert "detail=none" in made
    assert indexed_upto(database) == 40
    assert_exact(storage, stored)


def test_the_index_is_asked_for_at_most_32_runs_each_literal() -> None:
    assert fts5_trigrams('a"bc') == '"a""b" AND """bc"'
    assert fts5_trigrams("abcabc") == '"abc" AND "bca" AND "cab"'  # each run once
    many = fts5_trigrams("".join(chr(0x4E00 + n) for n in range(100)))
    assert many.count(" AND ") == 31


def test_long_needles_and_fts5_syntax_are_found_exactly(manual: tuple[str, Any]) -> None:
    database, storage = manual
    texts = [
        "the quick brown fox jumps over the lazy dog, then naps under the old oak tree",
        'quoted "AND" NEAR(a b) col:umn ^caret -minus *star (paren)',
        "the quick brown fox jumps over the lazy cat",
    ]
    RecordEvents(storage, FixedClock(T0))(
        "acme",
        [
            NewEvent(id=f"t-{n}", action="a", actor=Party(id="u"), description=text)
            for n, text in enumerate(texts)
        ],
    )
    SearchIndexer(database).catch_up()
    query = QueryEvents(storage)

    def ids(q: str) -> list[str]:
        page = query("acme", EventFilter(q=q), PageRequest(limit=10, order="asc"))
        return [e.id for e in page.events]

    assert ids("jumps over the lazy dog, then naps under the old oak") == ["t-0"]
    assert ids("the quick brown fox jumps over the lazy") == ["t-0", "t-2"]
    assert ids('"AND" NEAR(a b) col:umn ^caret -minus *star (paren)') == ["t-1"]
    assert ids("lazy dog cat") == []
