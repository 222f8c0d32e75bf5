"""SQLite's index for `q`, kept off the ingest path: a trigram index in a file of its own.

A trigram index costs about 70 us of CPU per event to keep, and kept by a trigger in the
database file it held the file's one write lock for that long: batch ingest ran at a
quarter of the speed of the same writes without it. SQLite has one writer per file, so
deferring the work into the same file would have bought nothing. Here the index lives in
`<database>-search`, a contentless FTS5 table (`content=''`, trigram tokenizer, no
positions) keyed by `events`' rowids, with a one-row table `search_progress` holding
`indexed_upto`: every event of rowid <= indexed_upto is in the index, none above it. Both
change in the same transaction, so they never disagree.

A daemon thread in each process using the database (started by the unit-of-work factory)
copies new events' text into it in batches, on its own write lock, while ingest holds
the database's; sqlite3 lets go of the GIL inside a statement, so it runs on another core.
One process at a time indexes: the thread that holds a lock on `<database>-search.lock`.

`q` stays exact whatever the index's lag (repositories.py): the index's candidates below
indexed_upto, plus the events above it read directly, every one checked against the text
in `events`. Each connection of the engine attaches the file as schema `search`. The
file holds nothing that is not in `events`: a missing or damaged one is rebuilt from the
start (meanwhile `q` reads the unindexed events directly), and backups may leave it out.

The service never updates or deletes an event. Text someone writes into an indexed event
behind its back is found only once the index is rebuilt (delete the file); a search never
returns an event whose text does not hold the needle, as each candidate is checked.

One module though over 400 lines: the file, its tables, the indexer thread and the
per-process registry share one lock file and one set of fork rules (an indexer stopped
before a fork, its lock left to the parent after it); apart, each would reach into the
others' private state.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import logging
import os
import sqlite3
import threading
import time
import urllib.parse
import weakref
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from audit.adapters.files import OWNER_ONLY, create_owner_only

log = logging.getLogger(__name__)

SCHEMA = "search"
# Events copied into the index per transaction: about 0.2 s of the indexer's CPU.
BATCH = 2000
# How often an indexer with nothing to do looks for new events, and how often a process
# that another one's lock keeps from indexing tries to take it.
POLL_S = 0.15
LOCK_RETRY_S = 1.0
# How long a connection answering from the stand-in in memory waits before it tries the
# file again.
STAND_IN_RETRY_S = 1.0

# Each trigram's list of rowids only, no positions: 0.6 of the CPU to keep and a third of
# the file of FTS5's default (`detail=full`), whose positions only a phrase query reads,
# and `q` asks for the trigrams one by one (search.fts5_trigrams). A file of the default,
# made before, is rebuilt.
_DETAIL = "detail=none"
# The statements, for a connection that has the search file attached as `schema`.
_TABLES = [
    "CREATE VIRTUAL TABLE IF NOT EXISTS {s}.events_trigrams USING fts5("
    f"search_text, content='', tokenize='trigram', {_DETAIL})",
    # last_hash: the chain hash of the event at indexed_upto (NULL at 0), which names the
    # log the index is of: a database restored from a backup, or another one in its
    # place, no longer has it there.
    "CREATE TABLE IF NOT EXISTS {s}.search_progress ("
    "id INTEGER PRIMARY KEY CHECK (id = 1), indexed_upto INTEGER NOT NULL, last_hash TEXT)",
    "INSERT OR IGNORE INTO {s}.search_progress (id, indexed_upto) VALUES (1, 0)",
]
_HAS_TABLES = (
    "SELECT count(*) FROM {s}.sqlite_master WHERE name IN ('events_trigrams', 'search_progress')"
)

_DATABASES = "PRAGMA database_list"
_LAST_ROWID = 2**63 - 1

# SQLite primary result codes meaning the file is not a sound database.
_SQLITE_CORRUPT = 11
_SQLITE_NOTADB = 26

# For the page and count statements (search.py): the index and its progress, attached.
events_trigrams = sa.table(
    "events_trigrams", sa.column("rowid"), sa.column("events_trigrams"), schema=SCHEMA
)
search_progress = sa.table(
    "search_progress", sa.column("indexed_upto"), sa.column("last_hash"), schema=SCHEMA
)


def search_file(database: str) -> str:
    """The file of the search index of the SQLite database `database`: beside the file
    itself, as SQLite puts its -wal and -shm, so that a process naming the database
    through a symbolic link finds the same index (and the same lock)."""
    return f"{os.path.realpath(database)}-search"


def read_only(path: str) -> str:
    """A `file:` URI opening `path` read only."""
    return "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"


def _lock_file(database: str) -> str:
    return f"{search_file(database)}.lock"


def _has_tables(connection: sqlite3.Connection, schema: str) -> bool:
    return bool(connection.execute(_HAS_TABLES.format(s=schema)).fetchone()[0] == 2)


def _create_tables(connection: sqlite3.Connection, schema: str) -> None:
    """The index's tables in `schema`, if missing; in WAL mode, so readers never wait."""
    if _has_tables(connection, schema):
        return
    mode = connection.execute(f"PRAGMA {schema}.journal_mode").fetchone()[0]
    if str(mode).lower() not in ("wal", "memory"):
        connection.execute(f"PRAGMA {schema}.journal_mode = WAL")
    # Deferred: BEGIN IMMEDIATE would also take the write lock of every other file
    # attached (the database's, on the engine's connections).
    connection.execute("BEGIN")
    try:
        for statement in _TABLES:
            connection.execute(statement.format(s=schema))
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise


class _OtherLog(Exception):
    """The search file was made for other events than the database's."""


class _OldFormat(Exception):
    """The search file's index is of an earlier format."""


def _of_this_format(connection: sqlite3.Connection) -> bool:
    row = connection.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'events_trigrams'"
    ).fetchone()
    return row is not None and _DETAIL in str(row[0])


def _hash_at(events: sqlite3.Connection, rowid: int) -> str | None:
    row = events.execute("SELECT hash FROM events WHERE rowid = ?", (rowid,)).fetchone()
    return None if row is None else str(row[0])


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def attach_search_index(engine: Engine, database: str | None) -> None:
    """Attach the search file of `database`, read only, as schema `search` on every
    connection of `engine` (an SQLite engine whose isolation_level None is set by an
    earlier hook).

    Read only, or a writer's BEGIN IMMEDIATE would take the search file's write lock too,
    and wait for the indexer. Until the indexer has made the file (or where it cannot be
    read) an empty index in memory stands in: `q` then reads every event directly, still
    exact. A connection whose file was since made, replaced (rebuilt by the indexer) or
    removed attaches it again when next checked out of the pool.
    """
    path = search_file(database) if database else None
    warned: list[bool] = []

    def attach(dbapi_connection: Any) -> tuple[bool, int | None, float]:
        """Attach the file, or else the stand-in: whether the file, its inode, and when."""
        inode = None if path is None else _inode(path)
        if path is not None and inode is not None:
            try:
                dbapi_connection.execute(f"ATTACH DATABASE ? AS {SCHEMA}", (read_only(path),))
                attached = {row[1]: row[2] for row in dbapi_connection.execute(_DATABASES)}
                # A build of SQLite that reads no URI here would have made a file named so.
                if attached.get(SCHEMA) == path and _has_tables(dbapi_connection, SCHEMA):
                    return True, inode, time.monotonic()
            except sqlite3.Error as exc:
                # Once per engine: a file that stays unreadable is tried every second.
                level = logging.DEBUG if warned else logging.WARNING
                warned.append(True)
                log.log(level, "the search index cannot be read (%s): q reads events", exc)
            _detach(dbapi_connection)
        dbapi_connection.execute(f"ATTACH DATABASE ':memory:' AS {SCHEMA}")
        _create_tables(dbapi_connection, SCHEMA)
        return False, inode, time.monotonic()

    @event.listens_for(engine, "connect")
    def _attach(dbapi_connection: Any, record: Any) -> None:
        record.info["search_attached"] = attach(dbapi_connection)

    if path is None:
        return

    def reattach(dbapi_connection: Any, info: dict[str, Any]) -> None:
        file, inode, when = info.get("search_attached", (False, None, 0.0))
        now = _inode(path)
        if now == inode and (file or now is None or time.monotonic() - when < STAND_IN_RETRY_S):
            # The same file; or the stand-in for a file not there yet, or there but not
            # readable, or not ready (tried again a little later).
            return
        _detach(dbapi_connection)
        info["search_attached"] = attach(dbapi_connection)

    @event.listens_for(engine, "checkout")
    def _reattach(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        reattach(dbapi_connection, record.info)

    _reattachers[engine] = reattach


# What the checkout hook of each engine with a search file runs (attach_search_index).
_reattachers: weakref.WeakKeyDictionary[Engine, Callable[[Any, dict[str, Any]], None]] = (
    weakref.WeakKeyDictionary()
)


def refresh_search_index(connection: Connection) -> None:
    """What the pool's checkout does for `connection`, kept out of the pool since its last
    unit of work: attach the search file again if it was since made, replaced or removed."""
    reattach = _reattachers.get(connection.engine)
    if reattach is not None:
        proxied = connection.connection
        reattach(proxied.dbapi_connection, proxied.info)


def _detach(dbapi_connection: Any) -> None:
    with contextlib.suppress(sqlite3.Error):  # not attached
        dbapi_connection.execute(f"DETACH DATABASE {SCHEMA}")


class SearchIndexer:
    """Copies new events' text into the search file of one SQLite database.

    `catch_up()` indexes everything committed so far (tests, tools); `start()` runs a
    daemon thread that keeps doing so while this process holds the indexing lock.
    """

    def __init__(self, database: str, *, batch: int = BATCH, poll_s: float = POLL_S) -> None:
        self.database = database
        self.path = search_file(database)
        self._batch = batch
        self._poll_s = poll_s
        self._events: sqlite3.Connection | None = None
        self._index: sqlite3.Connection | None = None
        self._index_inode: int | None = None
        self._events_inode: int | None = None
        self._lock_fd: int | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- the lock ---------------------------------------------------------------------

    def try_lock(self) -> bool:
        """Take the indexing lock if no one holds it; True if this indexer holds it."""
        if self._lock_fd is not None:
            return True
        fd = os.open(_lock_file(self.database), os.O_RDWR | os.O_CREAT, OWNER_ONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- indexing ---------------------------------------------------------------------

    def _open(self) -> tuple[sqlite3.Connection, sqlite3.Connection]:
        """The connections to `events` (read only) and to the search file, reopened when
        either file was removed or replaced."""
        if self._index is not None and _inode(self.path) != self._index_inode:
            self.close()
        if self._events is not None and _inode(self.database) != self._events_inode:
            self.close()  # the database was replaced (restored from a backup, say)
        if self._events is None:
            self._events = sqlite3.connect(read_only(self.database), uri=True, isolation_level=None)
            self._events.execute("PRAGMA busy_timeout = 5000")
            self._events_inode = _inode(self.database)
        if self._index is None:
            if _inode(self.path) is None:
                self._make_file()
            index = sqlite3.connect(self.path, isolation_level=None)
            try:
                index.execute("PRAGMA busy_timeout = 5000")
                # NORMAL: a crash may lose the last batches, index and progress together.
                index.execute("PRAGMA synchronous = NORMAL")
                _create_tables(index, "main")
                if not _of_this_format(index):
                    raise _OldFormat
            except BaseException:
                index.close()
                raise
            self._index = index
            self._index_inode = _inode(self.path)
        return self._events, self._index

    def _make_file(self) -> None:
        """A new, empty search file, made whole beside its place and moved in: a reader
        never meets a file without the tables."""
        making = f"{self.path}.{os.getpid()}.{threading.get_ident()}.new"
        try:
            create_owner_only(making)
            index = sqlite3.connect(making, isolation_level=None)
            try:
                _create_tables(index, "main")  # closing it folds its -wal in, and removes it
            finally:
                index.close()
            # A -wal left by a removed file would otherwise be read as this one's.
            for stale in (f"{self.path}-wal", f"{self.path}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
            with contextlib.suppress(FileExistsError):  # made by another meanwhile
                os.link(making, self.path)
        finally:
            for leftover in (making, f"{making}-wal", f"{making}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(leftover)

    def close(self) -> None:
        for connection in (self._events, self._index):
            if connection is not None:
                connection.close()
        self._events = self._index = None
        self._index_inode = None

    def index_batch(self, through: int | None = None) -> int:
        """Index the next batch of events (up to rowid `through`, if given); how many it
        indexed (0: caught up).

        A search file found damaged, or holding another log's events, is removed and
        rebuilt from the first event.
        """
        try:
            return self._index_batch(through)
        except _OtherLog:
            log.warning(
                "the search index is not of these events (a database restored from"
                " a backup?): rebuilding it"
            )
        except _OldFormat:
            log.info("the search index is of an earlier format: rebuilding it")
        except sqlite3.DatabaseError as exc:
            code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
            if code not in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
                raise
            log.warning("the search index is damaged (%s): rebuilding it", exc)
        self.close()
        self.remove_file()
        return self._index_batch(through)

    def _index_batch(self, through: int | None) -> int:
        events, index = self._open()
        upto, last_hash = index.execute(
            "SELECT indexed_upto, last_hash FROM search_progress"
        ).fetchone()
        if upto and _hash_at(events, upto) != last_hash:
            raise _OtherLog
        rows = events.execute(
            "SELECT rowid, search_text FROM events WHERE rowid > ? AND rowid <= ?"
            " ORDER BY rowid LIMIT ?",
            (upto, _LAST_ROWID if through is None else through, self._batch),
        ).fetchall()
        if not rows:
            return 0
        index.execute("BEGIN IMMEDIATE")
        try:
            # Still ours: no other indexer moved it meanwhile (the lock says none runs).
            now = int(index.execute("SELECT indexed_upto FROM search_progress").fetchone()[0])
            if now != upto:
                index.execute("ROLLBACK")
                return 0
            index.executemany(
                "INSERT INTO events_trigrams (rowid, search_text) VALUES (?, ?)", rows
            )
            index.execute(
                "UPDATE search_progress SET indexed_upto = ?, last_hash = ?",
                (rows[-1][0], _hash_at(events, rows[-1][0])),
            )
            index.execute("COMMIT")
        except BaseException:
            if index.in_transaction:
                index.execute("ROLLBACK")
            raise
        return len(rows)

    def remove_file(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + suffix)

    def catch_up(self) -> int:
        """Index every event committed so far; how many it indexed."""
        total = 0
        while count := self.index_batch():
            total += count
        return total

    def index_upto(self, through: int) -> None:
        """Index the events up to rowid `through` only (tests: an index half-way)."""
        while self.index_batch(through):
            pass

    def indexed_upto(self) -> int:
        _events, index = self._open()
        return int(index.execute("SELECT indexed_upto FROM search_progress").fetchone()[0])

    # --- the thread -------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(
                target=self._run, name="audit-search-indexer", daemon=True
            )
            self._thread.start()

    def wake(self) -> None:
        """Look for new events now rather than at the next poll."""
        self._wake.set()

    def stop(self, timeout_s: float = 10.0) -> bool:
        """Stop the thread (after the batch it is writing); False if it did not stop."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True

    def running(self) -> bool:
        return self._thread is not None

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            pause = self._poll_s
            try:
                if not self.try_lock():
                    pause = LOCK_RETRY_S
                elif self.index_batch():
                    pause = 0.0
                failures = 0
            except Exception as exc:  # never let the thread die; the next round retries
                failures += 1
                # The error's class and SQLite's message only: no SQL parameters.
                if failures in (1, 10) or failures % 100 == 0:
                    log.warning("indexing for q failed (%s: %s)", type(exc).__name__, exc)
                self.close()
                pause = min(LOCK_RETRY_S * failures, 30.0)
            if pause:
                self._wake.wait(pause)
                self._wake.clear()
        self.close()
        self.unlock()


# One indexer per database file per process (a forked child starts its own).
_indexers: dict[tuple[int, str], SearchIndexer] = {}
_indexers_lock = threading.Lock()
_paused: list[SearchIndexer] = []


def _before_fork() -> None:
    # A thread inside SQLite at the fork would leave SQLite's mutexes held, forever, in
    # the child (`audit serve` records the signing key before forking its workers).
    _paused[:] = [i for i in list(_indexers.values()) if i.running() and i.stop()]


def _after_fork_in_parent() -> None:
    for indexer in _paused:
        indexer.start()
    _paused.clear()


def _after_fork_in_child() -> None:
    # The parent's indexers are the parent's: their connections must not be used here
    # (they are kept, never closed), and a lock they hold stays the parent's.
    _paused.clear()
    for key, indexer in list(_indexers.items()):
        if key[0] != os.getpid():
            _inherited.append(indexer)
            del _indexers[key]
            if indexer._lock_fd is not None:
                os.close(indexer._lock_fd)  # the parent's descriptor keeps the lock
                indexer._lock_fd = None


_inherited: list[SearchIndexer] = []
os.register_at_fork(
    before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
)


def start_indexer(database: str) -> SearchIndexer:
    """The running indexer of `database` in this process, started if need be."""
    key = (os.getpid(), os.path.realpath(database))
    indexer = _indexers.get(key)
    if indexer is not None:
        return indexer
    with _indexers_lock:
        indexer = _indexers.get(key)
        if indexer is None:
            indexer = _indexers[key] = SearchIndexer(database)
            indexer.start()
    return indexer


def indexer_starter(url: sa.URL) -> Callable[[], None]:
    """What the unit-of-work factory calls on each use: starts this process's indexer of
    the SQLite file at `url` once (a no-op for PostgreSQL or a `file:` URI)."""
    database = url.database
    if url.get_backend_name() != "sqlite" or not database or url.query.get("uri"):
        return _nothing
    started_in: list[int] = []

    def ensure() -> None:
        if not started_in or started_in[0] != os.getpid():
            start_indexer(database)
            started_in[:] = [os.getpid()]

    return ensure


def _nothing() -> None:
    return None


def wait_until_indexed(database: str, timeout_s: float = 10.0) -> None:
    """Wait until the search index holds every event committed so far (tests)."""
    target = sqlite3.connect(read_only(database), uri=True)
    try:
        last = target.execute("SELECT coalesce(max(rowid), 0) FROM events").fetchone()[0]
    finally:
        target.close()
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            index = sqlite3.connect(read_only(search_file(database)), uri=True)
            try:
                upto = index.execute("SELECT indexed_upto FROM search_progress").fetchone()[0]
            finally:
                index.close()
        except sqlite3.Error:
            upto = -1
        if upto >= last:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"indexed up to {upto} of {last} after {timeout_s} s")
        time.sleep(0.02)


def stop_indexers() -> None:
    """Stop every indexer thread of this process (tests, between databases; and at exit,
    so a command that wrote once, `audit tokens create` say, never leaves the thread
    killed halfway through making its file)."""
    with _indexers_lock:
        stopping = list(_indexers.values())
        _indexers.clear()
    for indexer in stopping:
        indexer.stop()


atexit.register(stop_indexers)
