"""The SQL unit of work: one Connection; a writer's work one transaction, rolled back
unless committed."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.adapters.sql.engine import WAITING_SINCE_OPTION, WRITE_OPTION, writer_queue
from audit.adapters.sql.repositories import SqlEventRepository, StatementEpoch
from audit.adapters.sql.search_index import indexer_starter, refresh_search_index
from audit.adapters.sql.sessions import SqlEndedSessionRepository
from audit.adapters.sql.tokens import SqlTokenRepository
from audit.application.ports import (
    EndedSessionRepository,
    EventRepository,
    RevocationEpoch,
    TokenRepository,
    UnitOfWorkFactory,
)
from audit.domain.errors import StorageUnavailable

logger = logging.getLogger(__name__)


class SqlUnitOfWork:
    """A writing unit of work (`write=True`) is one database transaction, begun on enter
    and rolled back on exit unless committed. It takes SQLite's write lock when it begins,
    so writers queue; on PostgreSQL they queue on their tenant's chain head instead.

    A reading one opens no transaction: each statement reads a snapshot of its own (the
    port allows it), in autocommit. No BEGIN and no ROLLBACK: on PostgreSQL two round trips
    of a page's three, on SQLite two statements, each a moment the thread lets go of the
    GIL (bench/README.md). On PostgreSQL a reader sees what a transaction would, as under
    READ COMMITTED each statement takes its own snapshot anyway. (A statement run through
    SQLAlchemy's own execute still begins a transaction, which exit rolls back.)

    Driver errors meaning "not now" (locked, disk full, unreachable) arrive as
    StorageUnavailable.
    """

    # Typed as the ports: a protocol's plain attribute is invariant, so a narrower type
    # here would make this class fail to be a UnitOfWork.
    events: EventRepository
    tokens: TokenRepository

    def __init__(
        self,
        engine: Engine,
        write: bool = False,
        kept: KeptConnections | None = None,
        epoch: RevocationEpoch | None = None,
    ) -> None:
        self._engine = engine
        self._write = write
        self._kept = kept
        self._epoch = None if write else epoch
        self._connection: Connection | None = None
        self._queue = writer_queue(engine) if write else None
        self._autocommit = not write and engine.dialect.name == "postgresql"
        self._turn: int | None = None
        # Called once the transaction has ended, whether it committed or not.
        self._after_transaction: list[Callable[[], None]] = []
        self.committed = False

    def __enter__(self) -> Self:
        waiting_since = time.monotonic()
        if self._queue is not None:
            self._turn = self._queue.acquire()
        try:
            connection = self._engine.connect() if self._kept is None else self._kept.take()
        except sa.exc.TimeoutError:
            self._leave_queue()
            raise StorageUnavailable(
                "every database connection is in use", 1, reason="exhausted"
            ) from None
        except sa.exc.InvalidRequestError:
            # The pool's checkout found its connection dead, and the one it opened in its
            # place too ("Reconnection attempts exhausted"): connections are being cut.
            self._leave_queue()
            raise StorageUnavailable(
                "the database cannot be reached", 5, reason="unreachable"
            ) from None
        except BaseException:
            self._leave_queue()
            raise
        try:
            if self._write:  # a reader is the default; setting options costs each time
                connection.execution_options(
                    **{WRITE_OPTION: True, WAITING_SINCE_OPTION: waiting_since}
                )
                connection.begin()
            elif self._autocommit:
                _driver(connection).autocommit = True
        except BaseException:
            connection.close()
            self._leave_queue()
            raise
        self._connection = connection
        epoch = StatementEpoch()
        self.events = SqlEventRepository(connection, epoch)
        self.tokens = SqlTokenRepository(
            connection, self._after_transaction, epoch, reader=self._epoch
        )
        return self

    @property
    def ended_sessions(self) -> EndedSessionRepository:
        # Made when asked (the viewer's pages), not in every unit of work as the others.
        assert self._connection is not None, "a unit of work is used inside its `with`"
        return SqlEndedSessionRepository(self._connection)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        connection = self._require()
        self._connection = None
        kept = False
        try:
            try:
                connection.rollback()
                if self._autocommit:
                    try:
                        _driver(connection).autocommit = False
                    except Exception:
                        connection.invalidate()  # never back to the pool as it is
                        raise
                # After a failure, the next unit of work starts on a fresh connection.
                if exc is None and self._kept is not None:
                    self._kept.keep(connection)
                    kept = True
            finally:
                if not kept:
                    connection.close()
                self._leave_queue()
                self._run_after_transaction()
        except Exception:
            # The error that ended the work matters more than a failed rollback, and
            # the pool discards a connection it cannot reset.
            if exc is None:
                raise

    def _run_after_transaction(self) -> None:
        calls = list(self._after_transaction)
        self._after_transaction.clear()
        for call in calls:
            try:
                call()
            except Exception:
                # The transaction's outcome stands; what failed after it says why.
                logger.exception("after the transaction, %r failed", call)

    def _leave_queue(self) -> None:
        if self._queue is not None and self._turn is not None:
            self._queue.release(self._turn)
            self._turn = None

    def _require(self) -> Connection:
        if self._connection is None:
            raise RuntimeError("use the unit of work inside a `with` block")
        return self._connection

    def commit(self) -> None:
        """Commit; returns only once the work is durable.

        SQLite runs with synchronous=FULL; PostgreSQL with its default synchronous_commit.
        """
        self._require().commit()
        self.committed = True

    def rollback(self) -> None:
        self._require().rollback()

    def ping(self) -> None:
        try:
            self._require().execute(sa.text("SELECT 1")).scalar_one()
        except sa.exc.SQLAlchemyError:
            raise StorageUnavailable(
                "the database does not answer", 5, reason="unreachable"
            ) from None


def _driver(connection: Connection) -> Any:
    driver = connection.connection.dbapi_connection
    assert driver is not None  # a unit of work holds a checked-out connection
    return driver


class KeptConnections:
    """Connections that units of work give back and take again instead of the pool's.

    A unit of work on a connection of the pool paid for the checkout and checkin, and
    the Connection made and closed around them: about an eighth of a one-event group's
    CPU in the writer; served `actor_id` pages made 1.2x the requests a second once
    readers kept theirs (bench/README.md). Each is one thread's at a time, and there are
    as many as threads ever worked at once. Only a unit of work that ended without an
    error gives its connection back. SQLite only: a PostgreSQL connection kept idle could
    be dropped by the server unseen, which the pool's check at each checkout catches
    (engine.py).

    A connection taken again is checked for a replaced search file, as the pool's
    checkout does (search_index.py). Those kept are closed when the engine is disposed;
    a forked child lets go of its parent's without closing them, as the pool does.
    """

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._free: list[Connection] = []  # list.pop and list.append are atomic
        self._pid = os.getpid()
        sa.event.listen(engine, "engine_disposed", self._close_all)

    def take(self) -> Connection:
        try:
            connection = self._free.pop()
        except IndexError:
            return self._engine.connect()
        refresh_search_index(connection)
        return connection

    def keep(self, connection: Connection) -> None:
        self._free.append(connection)

    def _close_all(self, _engine: Engine) -> None:
        free, self._free = self._free, []
        if os.getpid() == self._pid:
            for connection in free:
                connection.detach()  # closed, not given back to the pool disposed of
                connection.close()


class SqlUnitOfWorkFactory:
    """Makes SqlUnitOfWorks on one Engine; `write=True` for work that appends or changes.

    On SQLite, reading units of work reuse their connections (KeptConnections), and with
    `keep_writer` writing ones too: for a process whose one thread writes all the time.
    """

    def __init__(
        self, engine: Engine, keep_writer: bool = False, epoch: RevocationEpoch | None = None
    ) -> None:
        self.engine = engine
        self._epoch = epoch  # for reading units of work (SqlTokenRepository)
        # A process that writes events keeps SQLite's `q` index (search_index.py).
        self._start_indexer = indexer_starter(engine.url)
        sqlite = engine.dialect.name == "sqlite"
        self._writers = KeptConnections(engine) if keep_writer and sqlite else None
        self._readers = KeptConnections(engine) if sqlite else None

    def __call__(self, write: bool = False) -> SqlUnitOfWork:
        if write:
            self._start_indexer()
            return SqlUnitOfWork(self.engine, write, self._writers)
        return SqlUnitOfWork(self.engine, write, self._readers, self._epoch)


if TYPE_CHECKING:
    # `mypy --strict src` checks that the adapter fits the ports the use cases ask for.
    def _fits_the_ports(engine: Engine) -> UnitOfWorkFactory:
        return SqlUnitOfWorkFactory(engine)
