"""Statements run on the driver's own connection: the append's, and the reads'.

An append of one event ran seven statements through SQLAlchemy, and its execution layer
(compiled cache lookup, parameter processing, result set-up, events) cost about 55-80 us
per statement: more than SQLite took to run them, and half the CPU of a single-event POST
(bench/README.md). Here each statement is compiled once per dialect into the driver's SQL
text and run on the DBAPI cursor, inside the transaction the unit of work opened; a page
of 50 events cost 14% less CPU in-process. Errors become StorageUnavailable as engine.py's
hook makes them for statements run through SQLAlchemy, and SQLAlchemy's
before_cursor_execute listeners still see every read.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import psycopg
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from audit.adapters.sql import schema
from audit.adapters.sql.engine import storage_unavailable
from audit.adapters.sql.rows import EVENT_COLUMNS, event_row, event_target_rows
from audit.domain.chain import GENESIS_HASH
from audit.domain.events import Event

_c = schema.events.c
_HEAD = sa.select(schema.chain_heads.c.seq, schema.chain_heads.c.hash).where(
    schema.chain_heads.c.tenant == sa.bindparam("tenant")
)
# PostgreSQL: the head made if missing and locked, in one statement. ON CONFLICT DO
# UPDATE locks the row it finds and returns its latest committed values (an upsert's
# guarantee under READ COMMITTED), as SELECT ... FOR UPDATE did after an INSERT ... DO
# NOTHING, at one round trip instead of two.
_LOCK_HEAD = (
    postgresql.insert(schema.chain_heads)
    .values(tenant=sa.bindparam("tenant"), seq=sa.literal_column("0"), hash=sa.bindparam("genesis"))
    .on_conflict_do_update(
        index_elements=[schema.chain_heads.c.tenant],
        set_={"tenant": postgresql.insert(schema.chain_heads).excluded.tenant},
    )
    .returning(schema.chain_heads.c.seq, schema.chain_heads.c.hash)
)
_MOVE_HEAD = (
    sa.update(schema.chain_heads)
    .where(schema.chain_heads.c.tenant == sa.bindparam("tenant"))
    .values(seq=sa.bindparam("seq"), hash=sa.bindparam("hash"))
)
_NEW_HEAD = sa.insert(schema.chain_heads)
_UPSERT_HEAD = (
    postgresql.insert(schema.chain_heads)
    .values(tenant=sa.bindparam("tenant"), seq=sa.bindparam("seq"), hash=sa.bindparam("hash"))
    .on_conflict_do_update(
        index_elements=[schema.chain_heads.c.tenant],
        set_={"seq": sa.bindparam("seq"), "hash": sa.bindparam("hash")},
    )
)
_EXISTING_COLUMNS = (_c.fingerprint, *(_c[name] for name in EVENT_COLUMNS))
# The ids as one parameter: a JSON array on SQLite, an array on PostgreSQL.
_EXISTING = {
    "sqlite": sa.select(*_EXISTING_COLUMNS).where(
        _c.tenant == sa.bindparam("tenant"),
        _c.id.in_(
            sa.select(sa.column("value")).select_from(sa.func.json_each(sa.bindparam("ids")))
        ),
    ),
    "postgresql": sa.select(*_EXISTING_COLUMNS).where(
        _c.tenant == sa.bindparam("tenant"), _c.id == sa.any_(sa.bindparam("ids"))
    ),
}
# One id (a single-event request): the primary key's own lookup, without json_each
# (21.7 us against 8.9 us raw; bench/README.md).
_EXISTING_ONE = sa.select(*_EXISTING_COLUMNS).where(
    _c.tenant == sa.bindparam("tenant"), _c.id == sa.bindparam("id")
)
_INSERT_EVENTS = sa.insert(schema.events)
_INSERT_TARGETS = sa.insert(schema.event_targets)
_INSERT_NODES = sa.insert(schema.merkle_nodes)

# Dialects that write parameters as the drivers take them by name: sqlite3 `:name`,
# psycopg `%(name)s`.
_DIALECTS: dict[str, sa.Dialect] = {
    "sqlite": sqlite.dialect(paramstyle="named"),
    "postgresql": psycopg.dialect(),  # type: ignore[no-untyped-call]
}


@functools.cache
def _sql(dialect: str, statement: sa.ClauseElement) -> str:
    """The driver's SQL text of `statement`, made once."""
    return str(statement.compile(dialect=_DIALECTS[dialect]))


@functools.lru_cache(maxsize=1024)
def _compiled(
    dialect: sa.Dialect, statement: sa.ClauseElement
) -> tuple[str, tuple[str, ...] | None, dict[str, Any]]:
    """`statement` compiled by the engine's own dialect, once: its SQL text, the order of
    its parameters where the driver takes them by position, and the values it binds
    itself (constants in the expression)."""
    compiled = statement.compile(dialect=dialect)
    assert isinstance(compiled, SQLCompiler)
    defaults = {k: v for k, v in compiled.params.items() if v is not None}
    positions = compiled.positiontup
    return str(compiled), None if positions is None else tuple(positions), defaults


def driver_rows(
    connection: Connection, statement: sa.ClauseElement, params: dict[str, Any]
) -> list[Any]:
    """The rows of a read, run on the driver's cursor of `connection`:
    SQLAlchemy's execute and result cost 55 us a statement, more than SQLite's read."""
    sql, positions, defaults = _compiled(connection.dialect, statement)
    values: dict[str, Any] = {**defaults, **params} if defaults else params
    sent = values if positions is None else tuple([values[p] for p in positions])
    with driver_cursor(connection) as cursor:
        # SQLAlchemy's listeners still see each statement (tests read the plans with one).
        for listener in connection.dispatch.before_cursor_execute:
            listener(connection, cursor, sql, sent, None, False)
        cursor.execute(sql, sent)
        return list(cursor.fetchall())


@contextmanager
def driver_cursor(connection: Connection) -> Iterator[Any]:
    """A cursor of the driver's connection under `connection`; errors become
    StorageUnavailable (as engine.py's hook makes them for SQLAlchemy's statements)."""
    driver = connection.connection.dbapi_connection
    assert driver is not None  # a unit of work holds a checked-out connection
    cursor = driver.cursor()
    try:
        yield cursor
    except Exception as exc:
        postgres = connection.dialect.name == "postgresql"
        lost = postgres and bool(getattr(driver, "broken", False) or driver.closed)
        if lost:
            # Let the pool discard it, as SQLAlchemy does on a disconnect.
            connection.invalidate()
        raise storage_unavailable(exc, disconnected=lost) or exc from None
    finally:
        cursor.close()


def existing_lookup(dialect: str, tenant: str, ids: Collection[str]) -> tuple[str, dict[str, Any]]:
    """The statement, and its parameters, that reads the tenant's events with these ids
    (fingerprint, then EVENT_COLUMNS): one statement, a lookup by (tenant, id) each."""
    value: Any = list(ids)
    if len(value) == 1:
        return _sql(dialect, _EXISTING_ONE), {"tenant": tenant, "id": value[0]}
    if dialect == "sqlite":
        value = orjson.dumps(value).decode("utf-8")
    return _sql(dialect, _EXISTING[dialect]), {"tenant": tenant, "ids": value}


def subtree_lookup(
    dialect: str, tenant: str, coords: Collection[tuple[int, int]]
) -> tuple[str, dict[str, Any]]:
    """One primary-key lookup per subtree, in one statement, and its parameters.

    Not `tenant = ? AND ((level = ? AND idx = ?) OR ...)`: SQLite plans that as a walk of
    every node of the tenant, which made each append cost O(size), not O(log size).
    """
    params: dict[str, Any] = {"tenant": tenant}
    for k, (level, index) in enumerate(coords):
        params[f"level_{k}"] = level
        params[f"idx_{k}"] = index
    return _sql(dialect, _subtree_lookups(len(coords))), params


@functools.cache
def _subtree_lookups(count: int) -> sa.Executable:
    c = schema.merkle_nodes.c
    lookups = [
        sa.select(c.level, c.idx, c.hash).where(
            c.tenant == sa.bindparam("tenant"),
            c.level == sa.bindparam(f"level_{k}"),
            c.idx == sa.bindparam(f"idx_{k}"),
        )
        for k in range(count)
    ]
    return lookups[0] if count == 1 else sa.union_all(*lookups)


class IngestStatements:
    """The statements of an append, on the driver connection under `connection`'s
    transaction (which the unit of work began: on SQLite with BEGIN IMMEDIATE)."""

    def __init__(self, connection: Connection) -> None:
        self._connection = connection
        self._dialect = connection.dialect.name
        self._postgres = self._dialect == "postgresql"

    def _cursor(self) -> AbstractContextManager[Any]:
        return driver_cursor(self._connection)

    def _rows(self, statement: sa.ClauseElement, params: dict[str, Any]) -> list[Any]:
        with self._cursor() as cursor:
            cursor.execute(_sql(self._dialect, statement), params)
            return list(cursor.fetchall())

    def _many(self, statement: sa.ClauseElement, rows: Sequence[dict[str, Any]]) -> None:
        with self._cursor() as cursor:
            cursor.executemany(_sql(self._dialect, statement), rows)

    def lock_head(self, tenant: str) -> tuple[int, str] | None:
        """The tenant's head, locked for this transaction (None: no event yet).

        SQLite: BEGIN IMMEDIATE already holds the database's only write lock. PostgreSQL:
        the row is made if missing and locked (_LOCK_HEAD), so a tenant's first writers
        queue too.
        """
        if not self._postgres:
            rows = self._rows(_HEAD, {"tenant": tenant})
        else:
            params = {"tenant": tenant, "genesis": GENESIS_HASH}
            rows = self._rows(_LOCK_HEAD, params)
        return (rows[0][0], rows[0][1]) if rows else None

    def existing(self, tenant: str, ids: Collection[str]) -> list[Any]:
        """The rows (fingerprint, then EVENT_COLUMNS) of the tenant's events with these ids."""
        with self._cursor() as cursor:
            cursor.execute(*existing_lookup(self._dialect, tenant, ids))
            return list(cursor.fetchall())

    def subtree_hashes(
        self, tenant: str, coords: Collection[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        with self._cursor() as cursor:
            cursor.execute(*subtree_lookup(self._dialect, tenant, coords))
            return {(level, idx): bytes(h) for level, idx, h in cursor.fetchall()}

    def add(
        self,
        tenant: str,
        events: Sequence[Event],
        fingerprints: Sequence[str],
        subtrees: Sequence[tuple[int, int, bytes]],
    ) -> None:
        nodes = [{"tenant": tenant, "level": lv, "idx": ix, "hash": h} for lv, ix, h in subtrees]
        rows = [event_row(tenant, e, fp) for e, fp in zip(events, fingerprints, strict=True)]
        targets = [row for e in events for row in event_target_rows(tenant, e)]
        last = events[-1]
        head = {"tenant": tenant, "seq": last.seq, "hash": last.hash}
        if self._postgres:
            # One round trip for the whole append: psycopg's pipeline sends every
            # statement and waits once, at its end (each executemany waited on its own:
            # 30% of the writer's time at 64 connections; bench/README.md).
            with self._cursor() as cursor, cursor.connection.pipeline():
                if nodes:
                    cursor.executemany(_sql(self._dialect, _INSERT_NODES), nodes)
                cursor.executemany(_sql(self._dialect, _INSERT_EVENTS), rows)
                if targets:
                    cursor.executemany(_sql(self._dialect, _INSERT_TARGETS), targets)
                cursor.execute(_sql(self._dialect, _UPSERT_HEAD), head)
            return
        if nodes:
            self._many(_INSERT_NODES, nodes)
        self._many(_INSERT_EVENTS, rows)
        if targets:
            self._many(_INSERT_TARGETS, targets)
        with self._cursor() as cursor:
            cursor.execute(_sql(self._dialect, _MOVE_HEAD), head)
            if cursor.rowcount == 0:
                cursor.execute(_sql(self._dialect, _NEW_HEAD), head)
