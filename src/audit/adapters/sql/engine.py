"""Engines for SQLite and PostgreSQL, and the one place driver errors become domain errors."""

from __future__ import annotations

import fcntl
import os
import re
import select
import sqlite3
import time
import weakref
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, ExceptionContext, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from audit.adapters.files import OWNER_ONLY, create_owner_only
from audit.adapters.sql.search_index import attach_search_index
from audit.domain.errors import StorageUnavailable
from audit.settings import SettingsError

# Execution option a unit of work sets on its Connection: on SQLite a writer begins
# with BEGIN IMMEDIATE, so writers queue on the busy timeout rather than failing later.
WRITE_OPTION = "audit_write"
# Execution option beside it: when (time.monotonic()) the writer began waiting for its turn,
# so the turn and SQLite's lock together take no longer than the one lock timeout.
WAITING_SINCE_OPTION = "audit_waiting_since"

DEFAULT_LOCK_TIMEOUT_MS = 5000
DEFAULT_POOL_SIZE = 5
CONNECT_TIMEOUT_S = 10

_SQLITE_SCHEMES = {"sqlite", "sqlite+pysqlite"}
_POSTGRES_SCHEMES = {"postgresql", "postgres", "postgresql+psycopg"}


class DatabaseUrlError(SettingsError, ValueError):
    """A database URL this service cannot use (a ValueError, as it always was)."""


def _url(url: str) -> URL:
    try:
        return make_url(url)
    except ArgumentError:  # the URL is not quoted back: it may hold a password
        raise DatabaseUrlError(
            "the database URL is not a URL: use sqlite:///path/to/file.db or "
            "postgresql://user@host/db"
        ) from None


def parse_database_url(url: str) -> URL:
    """The SQLAlchemy URL for a database URL this service accepts, or ValueError.

    `postgresql://` and `postgres://` mean psycopg 3. SQLite needs a file: an in-memory
    SQLite database is one per connection, which a pool of connections cannot share
    (use the `memory://` storage instead).
    """
    parsed = _url(url)
    if parsed.drivername in _POSTGRES_SCHEMES:
        return parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername in _SQLITE_SCHEMES:
        database = parsed.database or ""
        if database in ("", ":memory:") or parsed.query.get("mode") == "memory":
            raise DatabaseUrlError(
                "an SQLite database URL must name a file: sqlite:///path/to/audit.db"
            )
        return parsed
    raise DatabaseUrlError(
        f"unsupported database URL scheme {parsed.drivername!r}: "
        "use sqlite:///path/to/file.db or postgresql://user@host/db"
    )


def sqlite_file(url: str) -> Path | None:
    """The file of a `sqlite:///PATH` URL; None for any other database."""
    parsed = _url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


# PostgreSQL refuses a connection to a database or role that does not exist with no
# SQLSTATE the client sees: only its message says so.
_PG_MISSING = re.compile(r'\b(database|role) "([^"]*)" does not exist')


def describe_failure(error: BaseException) -> str | None:
    """One line for a database failure (for the command line), or None if it is not one.

    A PostgreSQL database or role that does not exist is named as such, not as a database
    that cannot be reached.
    """
    link: BaseException | None = error
    while link is not None:
        missing = _PG_MISSING.search(str(link))
        if missing:
            return f"the PostgreSQL {missing[1]} {missing[2]!r} does not exist"
        link = link.__cause__ or link.__context__
    if not isinstance(error, SQLAlchemyError):
        return None
    detail = str(getattr(error, "orig", None) or type(error).__name__).splitlines()[0]
    return f"the database failed: {detail}"


def create_engine_for(
    url: str,
    *,
    lock_timeout_ms: int = DEFAULT_LOCK_TIMEOUT_MS,
    pool_size: int = DEFAULT_POOL_SIZE,
) -> Engine:
    """An Engine for `sqlite:///PATH` or `postgresql://...`, set up for this service.

    `lock_timeout_ms` is how long a writer waits for another writer's lock before the
    work fails with StorageUnavailable: SQLite's busy timeout, PostgreSQL's lock_timeout.
    Connects lazily: nothing is opened until the first unit of work.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, lock_timeout_ms)
    else:
        engine = _postgres_engine(parsed, lock_timeout_ms, pool_size)
    event.listen(engine, "handle_error", _translate_error)
    _forget_connections_in_forked_children(engine)
    return engine


def _forget_connections_in_forked_children(engine: Engine) -> None:
    # A connection must never be shared by two processes (a forked server worker would
    # otherwise reuse its parent's). Weak, so the hook does not keep the engine alive.
    ref = weakref.ref(engine)

    def forget() -> None:
        inherited = ref()
        if inherited is not None:
            inherited.dispose(close=False)

    os.register_at_fork(after_in_child=forget)


def _sqlite_engine(url: URL, lock_timeout_ms: int) -> Engine:
    # Enough connections for every thread of a worker: SQLite connections are cheap, and a
    # request waiting for one held up authentication under load.
    engine = sa.create_engine(
        url, connect_args={"timeout": lock_timeout_ms / 1000}, pool_size=32, max_overflow=32
    )

    @event.listens_for(engine, "do_connect")
    def _owner_only(*_args: Any) -> None:
        # SQLite would make the file with the umask's mode (0644: every local user reads
        # every event and token hash); its -wal and -shm take the database's mode.
        if url.database and not url.query.get("uri"):  # a file: URI is SQLite's to parse
            create_owner_only(url.database)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite (SQLAlchemy's documented recipe): it
        # would otherwise BEGIN lazily, before the first write only, and in DEFERRED mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(lock_timeout_ms)}")
            _use_wal(cursor, lock_timeout_ms / 1000)
            # FULL: a commit is on disk before it returns, even in WAL mode.
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        # A writer takes the write lock at once (waiting on the busy timeout); a deferred
        # transaction that upgrades to writing later fails at once if another writer
        # committed meanwhile (SQLITE_BUSY_SNAPSHOT), whatever the timeout.
        options = connection.get_execution_options()
        write = options.get(WRITE_OPTION, False)
        # On the driver's connection: through SQLAlchemy's execute this one statement
        # cost as much as the query after it (a quarter of authenticating a request).
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None  # a Connection in a begin event is checked out
        since = options.get(WAITING_SINCE_OPTION) if write else None
        waited_ms = 0.0 if since is None else (time.monotonic() - since) * 1000
        try:
            if waited_ms >= 1:
                # The turn in the writer queue took part of the timeout: wait the rest only.
                left = max(1, int(lock_timeout_ms - waited_ms))
                dbapi_connection.execute(f"PRAGMA busy_timeout = {left}")
            dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        except sqlite3.Error as exc:
            # Bypassing execute bypasses the handle_error hook: translate here.
            raise storage_unavailable(exc) or exc from None
        finally:
            if waited_ms >= 1:
                dbapi_connection.execute(f"PRAGMA busy_timeout = {int(lock_timeout_ms)}")

    if url.database and url.database != ":memory:" and not url.query.get("uri"):
        # Beside the file itself (as its -wal): the same queue through a symbolic link.
        queue = f"{os.path.realpath(url.database)}-writer"
        _writer_queues[engine] = WriterQueue(queue, lock_timeout_ms / 1000)
    # After _configure: `q`'s index, in a file of its own (search_index.py).
    attach_search_index(engine, None if url.query.get("uri") else url.database)
    return engine


class WriterQueue:
    """Writers of one SQLite file, across processes, take turns on a file lock beside it.

    SQLite makes a writer that finds the write lock taken sleep in steps of up to 100 ms
    before it tries again, so two server processes writing at once wasted most of each
    other's time. A lock on `<database>-writer` wakes the next writer as soon as the last
    one lets go. Programs that do not take it still meet SQLite's own lock and its busy
    timeout, as before.
    """

    def __init__(self, path: str, timeout_s: float) -> None:
        self._path = path
        self._timeout_s = timeout_s

    def acquire(self) -> int:
        """Wait for the lock (StorageUnavailable after the timeout); returns its handle."""
        fd = os.open(self._path, os.O_RDWR | os.O_CREAT, OWNER_ONLY)
        deadline = time.monotonic() + self._timeout_s
        pause = 0.0001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise StorageUnavailable(
                        "another writer holds the database", 1, reason="busy"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.002)

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)  # closing the last descriptor of the open file lets the lock go


_writer_queues: weakref.WeakKeyDictionary[Engine, WriterQueue] = weakref.WeakKeyDictionary()


def writer_queue(engine: Engine) -> WriterQueue | None:
    """The file lock that SQLite writers on this engine queue on; None for PostgreSQL."""
    return _writer_queues.get(engine)


def _use_wal(cursor: Any, timeout_s: float) -> None:
    """Put the file in WAL mode (it stays so): readers then never wait for the writer.

    Switching takes an exclusive lock for which SQLite does not call the busy handler, so
    connections racing to open a new file retry here, up to the busy timeout.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", 0) & 0xFF in _SQLITE_BUSY
            if not busy or time.monotonic() >= deadline:
                raise
            time.sleep(0.005)


def _postgres_engine(url: URL, lock_timeout_ms: int, pool_size: int) -> Engine:
    connect_args: dict[str, Any] = {}
    if "connect_timeout" not in url.query:
        connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
    # Custom plans: psycopg prepares a statement after a few runs, and PostgreSQL's generic
    # plan for it cannot see that a search term is rare, so `q` walked the whole log
    # instead of using the trigram index (bench/README.md).
    options = f"-c lock_timeout={int(lock_timeout_ms)} -c plan_cache_mode=force_custom_plan"
    given = url.query.get("options")
    if isinstance(given, str) and given:
        options = f"{given} {options}"
    connect_args["options"] = options
    # READ COMMITTED suffices: writers serialise on their tenant's chain_heads row.
    engine = sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        isolation_level="READ COMMITTED",
        connect_args=connect_args,
    )

    @event.listens_for(engine, "checkout")
    def _ping_if_suspect(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # SQLAlchemy's pre-ping, but only for a connection the server may have dropped:
        # a ping is a round trip on every unit of work. An idle connection whose socket
        # has something to read holds the server's goodbye (a terminated backend, a
        # restart: its error, then the close); the ping then fails, and the pool replaces
        # the connection unseen (SQLAlchemy's documented pessimistic-disconnect recipe).
        try:
            suspect = dbapi_connection.closed or _readable(dbapi_connection.fileno())
        except Exception:
            suspect = True  # no socket to look at: the ping says what is wrong
        if not suspect:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:
            raise sa.exc.DisconnectionError() from exc

    return engine


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN | select.POLLPRI)
    return bool(poller.poll(0))


# SQLite primary result codes (https://www.sqlite.org/rescode.html).
_SQLITE_BUSY = {5, 6}  # SQLITE_BUSY, SQLITE_LOCKED
_SQLITE_FULL = 13
_SQLITE_READONLY = 8
_SQLITE_UNREACHABLE = {7, 10, 15}  # NOMEM, IOERR, PROTOCOL
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

# PostgreSQL SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html).
_PG_BUSY = {"40001", "40P01", "55P03", "57014"}  # serialization, deadlock, lock/statement timeout
_PG_DISK_FULL = "53100"
_PG_READ_ONLY = "25006"
_PG_TOO_MANY_CONNECTIONS = "53300"
_PG_UNREACHABLE_CLASSES = ("08", "53", "57P", "58")  # connection, resources, shutdown, system

_BUSY = ("the database is busy with other writers; try again", 1, "busy")
_FULL = ("the database's disk is full", 30, "disk_full")
_READ_ONLY = ("the database is read-only", 30, "read_only")
_UNREACHABLE = ("the database cannot be reached", 5, "unreachable")
_NO_CONNECTION_LEFT = (
    "the database takes no more connections (its max_connections, or the role's limit)",
    5,
    "exhausted",
)
_CANTOPEN = ("the SQLite database file cannot be opened", 5, "unreachable")
_NOTADB = ("the file named as the SQLite database is not one", 5, "unreachable")


def storage_unavailable(
    error: BaseException, *, connecting: bool = False, disconnected: bool = False
) -> StorageUnavailable | None:
    """The StorageUnavailable a driver error stands for, or None if it is not one.

    The message names the condition only: never SQL text, parameters or the URL.
    """
    reason: tuple[str, int, str] | None = None
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in _SQLITE_BUSY:
            reason = _BUSY
        elif primary == _SQLITE_FULL:
            reason = _FULL
        elif primary == _SQLITE_READONLY:
            reason = _READ_ONLY
        elif primary in _SQLITE_UNREACHABLE:
            reason = _UNREACHABLE
        elif primary == _SQLITE_CANTOPEN:
            reason = _CANTOPEN
        elif primary == _SQLITE_NOTADB:
            reason = _NOTADB
    else:
        state = getattr(error, "sqlstate", None)
        if isinstance(state, str):
            if state in _PG_BUSY:
                reason = _BUSY
            elif state == _PG_DISK_FULL:
                reason = _FULL
            elif state == _PG_READ_ONLY:
                reason = _READ_ONLY
            elif state == _PG_TOO_MANY_CONNECTIONS:
                reason = _NO_CONNECTION_LEFT
            elif state.startswith(_PG_UNREACHABLE_CLASSES):
                reason = _UNREACHABLE
    if reason is None and (connecting or disconnected):
        reason = _UNREACHABLE
    if reason is None:
        return None
    message, retry_after, kind = reason
    return StorageUnavailable(message, retry_after=retry_after, reason=kind)


def _translate_error(context: ExceptionContext) -> BaseException | None:
    return storage_unavailable(
        context.original_exception,
        # No Connection yet: the error came from opening one.
        connecting=context.connection is None,
        disconnected=context.is_disconnect,
    )
