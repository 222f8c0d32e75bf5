"""Tokens in SQL: the `tokens` table, and the revocation epoch read on every request."""

from __future__ import annotations

import builtins
import contextlib
import os
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from audit.adapters.sql.driver import driver_rows
from audit.adapters.sql.engine import storage_unavailable
from audit.adapters.sql.repositories import StatementEpoch
from audit.adapters.sql.revocation_beacon import revocation_beacon
from audit.adapters.sql.rows import row_token, token_row
from audit.adapters.sql.schema import EPOCH_ROW_ID, revocation_epoch, tokens
from audit.domain.errors import StorageUnavailable
from audit.domain.time import to_micros
from audit.domain.tokens import Token

if TYPE_CHECKING:
    from audit.application.ports import RevocationEpoch, TokenRepository

_TOKEN_BY_HASH = sa.select(tokens).where(tokens.c.secret_hash == sa.bindparam("secret_hash"))
_TOKEN_BY_ID = sa.select(tokens).where(tokens.c.id == sa.bindparam("token_id"))
_ADVANCE_EPOCH = (
    sa.update(revocation_epoch)
    .where(revocation_epoch.c.id == EPOCH_ROW_ID)
    .values(epoch=revocation_epoch.c.epoch + 1)
)
_TOUCH = (
    sa.update(tokens)
    .where(tokens.c.id == sa.bindparam("token_id"))
    .where(
        sa.or_(
            tokens.c.last_used_at_us.is_(None),
            tokens.c.last_used_at_us < sa.bindparam("at_us"),
        )
    )
    .values(last_used_at_us=sa.bindparam("at_us"))
)
_EPOCH = sa.select(revocation_epoch.c.epoch).where(revocation_epoch.c.id == EPOCH_ROW_ID)
# Written out for the driver: it runs on the driver's own connection, once per request.
_READ_EPOCH = f"SELECT epoch FROM revocation_epoch WHERE id = {EPOCH_ROW_ID}"  # noqa: S608


class SqlTokenRepository:
    """Tokens in the `tokens` table, found by id or by the hash of their secret.

    `after_transaction`: the unit of work's list of what to call once its transaction
    has ended (a revocation's note in the SQLite beacon, revocation_beacon.py)."""

    def __init__(
        self,
        connection: Connection,
        after_transaction: builtins.list[Callable[[], None]],
        epoch: StatementEpoch | None = None,
        reader: RevocationEpoch | None = None,
    ) -> None:
        self._conn = connection
        self._after_transaction = after_transaction
        self._epoch = StatementEpoch() if epoch is None else epoch
        # A reading unit of work's: its statements each read a snapshot of their own, so
        # the epoch may come from the process's reader (on SQLite, the beacon's).
        self._reader = reader

    def add(self, token: Token) -> None:
        self._conn.execute(sa.insert(tokens).values(token_row(token)))

    def _one(self, statement: sa.Executable, params: dict[str, Any]) -> Token | None:
        row = self._conn.execute(statement, params).mappings().first()
        return None if row is None else row_token(row)

    def by_secret_hash(self, secret_hash: str) -> Token | None:
        return self._one(_TOKEN_BY_HASH, {"secret_hash": secret_hash})

    def get(self, token_id: str) -> Token | None:
        return self._one(_TOKEN_BY_ID, {"token_id": token_id})

    def list(self, tenant: str | None = None) -> builtins.list[Token]:
        query = sa.select(tokens)
        if tenant is not None:
            query = query.where(tokens.c.tenant == tenant)
        found = [row_token(row) for row in self._conn.execute(query).mappings()]
        # Sorted here, not by SQL: PostgreSQL's collation need not be code point order.
        return sorted(found, key=lambda t: (t.created_at, t.id))

    def revoke(self, token_id: str, at: datetime) -> None:
        self._epoch.value = None  # what a page read before this is no longer current
        beacon = revocation_beacon(self._conn.engine.url)
        if beacon is not None:
            beacon.begin()
            self._after_transaction.append(beacon.end)
        self._conn.execute(
            sa.update(tokens).where(tokens.c.id == token_id).values(revoked_at_us=to_micros(at))
        )
        if self._conn.execute(_ADVANCE_EPOCH).rowcount != 1:
            # The row the migration made is gone: make it again, past any epoch a server
            # may have read (a server that read none finds a new one either way).
            self._conn.execute(sa.insert(revocation_epoch).values(id=EPOCH_ROW_ID, epoch=1))

    def revocation_epoch(self) -> int:
        if self._epoch.value is not None:
            return self._epoch.value  # as a page statement of this unit of work read it
        if self._reader is not None:
            return self._reader.current()
        # On the driver's cursor (driver.py): the server's writer asks it once a group.
        rows = driver_rows(self._conn, _EPOCH, {})
        # No row: the migration's row was removed; the first revocation makes it again.
        return int(rows[0][0]) if rows else 0

    def touch(self, last_used: Mapping[str, datetime]) -> None:
        if last_used:
            self._conn.execute(
                _TOUCH, [{"token_id": k, "at_us": to_micros(v)} for k, v in last_used.items()]
            )

    def any(self) -> bool:
        return self._conn.execute(sa.select(tokens.c.id).limit(1)).first() is not None


class SqlRevocationEpoch:
    """Reads the revocation epoch with one primary-key read of a one-row table.

    It keeps a few driver connections of its own in autocommit mode (taken from the
    engine's pool once and detached, so each is set up as every other connection is): a
    read is then one statement, with no pool checkout, no pre-ping and no transaction to
    open, and it sees every commit made before it began, on SQLite as on PostgreSQL. A
    read never waits for a writer (SQLite in WAL mode, PostgreSQL's MVCC). Connections
    are made as concurrent reads need them and at most `keep` stay open: under `audit
    serve` one per thread of a worker (with four, reads beyond them each opened and closed
    a PostgreSQL connection, hundreds a second under load). A connection that fails is
    closed and the read tried once on a new one (a restarted PostgreSQL); then the error
    is StorageUnavailable.

    On a SQLite file, the epoch read is kept for as long as the file's revocation beacon
    says no revocation has begun since (revocation_beacon.py): most calls read no table.
    """

    def __init__(self, engine: Engine, keep: int = 4) -> None:
        self._engine = engine
        self._keep = keep
        self._idle: list[Any] = []  # list.pop() and append() are atomic: no lock
        self._pid = os.getpid()
        self._beacon = revocation_beacon(engine.url)
        # (the beacon's `begun` when it was settled, the epoch read after it)
        self._kept: tuple[int, int] | None = None

    def current(self) -> int:
        beacon = self._beacon
        if beacon is None or not beacon.readable():
            return self._read_database()
        kept = self._kept  # one read of the attribute: a tuple another thread replaces whole
        if kept is not None and kept[0] == beacon.begun():
            return kept[1]
        settled = beacon.settled()
        epoch = self._read_database()
        if settled is not None:
            self._kept = (settled, epoch)
        return epoch

    def _read_database(self) -> int:
        connection = None
        try:
            connection = self._take()
            epoch = self._read(connection)
        except Exception as first:
            self._close(connection)
            connection = None
            try:
                connection = self._new()
                epoch = self._read(connection)
            except Exception as exc:
                self._close(connection)
                raise _unavailable(exc) from first
        self._give(connection)
        return epoch

    @staticmethod
    def _read(connection: Any) -> int:
        cursor = connection.cursor()
        try:
            cursor.execute(_READ_EPOCH)
            rows = cursor.fetchall()  # read to the end, so no statement stays open
        finally:
            cursor.close()
        # No row: the migration's row was removed; the first revocation makes it again.
        return int(rows[0][0]) if rows else 0

    def _take(self) -> Any:
        if self._pid != os.getpid():
            # Never use a connection of the process this one was forked from.
            self._idle, self._pid = [], os.getpid()
        try:
            return self._idle.pop()
        except IndexError:
            return self._new()

    def _give(self, connection: Any) -> None:
        if len(self._idle) < self._keep and self._pid == os.getpid():
            self._idle.append(connection)
        else:
            self._close(connection)

    def _new(self) -> Any:
        proxied = self._engine.raw_connection()
        connection = proxied.driver_connection
        proxied.detach()
        if self._engine.dialect.name == "postgresql":
            connection.autocommit = True  # type: ignore[union-attr]
        return connection

    @staticmethod
    def _close(connection: Any) -> None:
        if connection is not None:
            with contextlib.suppress(Exception):  # a broken connection may fail to close
                connection.close()


def _unavailable(exc: Exception) -> StorageUnavailable:
    if isinstance(exc, StorageUnavailable):
        return exc
    original = getattr(exc, "orig", None) or exc
    translated = storage_unavailable(original, disconnected=True)
    return translated or StorageUnavailable("the database cannot be reached", 5, "unreachable")


if TYPE_CHECKING:

    def _fits_the_ports(
        connection: Connection, engine: Engine
    ) -> tuple[TokenRepository, RevocationEpoch]:
        return SqlTokenRepository(connection, []), SqlRevocationEpoch(engine)
