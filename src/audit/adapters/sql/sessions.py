"""Ended viewer sessions in SQL: the `ended_sessions` table."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from audit.adapters.sql.driver import driver_rows
from audit.adapters.sql.schema import ended_sessions
from audit.domain.time import to_micros

if TYPE_CHECKING:
    from audit.application.ports import EndedSessionRepository

_c = ended_sessions.c
# Asked on every viewer page: the primary key's lookup, on the driver's cursor.
_IS_ENDED = sa.select(_c.id).where(_c.id == sa.bindparam("session_id"))
# A session signed out twice (two tabs, a retry) is recorded once, without a conflict.
_END = {
    "sqlite": sqlite.insert(ended_sessions).on_conflict_do_nothing(index_elements=[_c.id]),
    "postgresql": postgresql.insert(ended_sessions).on_conflict_do_nothing(index_elements=[_c.id]),
}
_PURGE = sa.delete(ended_sessions).where(_c.expires_at_us <= sa.bindparam("before_us"))


class SqlEndedSessionRepository:
    """Ended sessions in the `ended_sessions` table, by id (its primary key); purged by
    expiry (its index). Never commits: the unit of work does."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def is_ended(self, session_id: str) -> bool:
        return bool(driver_rows(self._conn, _IS_ENDED, {"session_id": session_id}))

    def end(self, session_id: str, expires_at: datetime) -> None:
        statement = _END[self._conn.dialect.name]
        self._conn.execute(statement, {"id": session_id, "expires_at_us": to_micros(expires_at)})

    def purge(self, before: datetime) -> None:
        self._conn.execute(_PURGE, {"before_us": to_micros(before)})


if TYPE_CHECKING:

    def _fits_the_port(connection: Connection) -> EndedSessionRepository:
        return SqlEndedSessionRepository(connection)
