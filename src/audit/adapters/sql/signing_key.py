"""Where the database keeps the verifier key that signs its checkpoints (one row)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from audit.adapters.sql.schema import SIGNING_KEY_ROW_ID, signing_key


class SqlSigningKeyRecord:
    """Reads and records the signing key, each in a transaction of its own (at startup)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def recorded(self) -> str | None:
        with self._engine.connect() as connection:
            return connection.execute(sa.select(signing_key.c.vkey)).scalar_one_or_none()

    def record(self, vkey: str) -> None:
        with self._engine.begin() as connection:
            changed = connection.execute(
                sa.update(signing_key)
                .where(signing_key.c.id == SIGNING_KEY_ROW_ID)
                .values(vkey=vkey)
            )
            if changed.rowcount == 0:
                connection.execute(sa.insert(signing_key).values(id=SIGNING_KEY_ROW_ID, vkey=vkey))

    def record_first(self, vkey: str) -> str:
        with self._engine.begin() as connection:
            insert = _INSERT_IF_ABSENT[connection.dialect.name]
            connection.execute(insert, {"id": SIGNING_KEY_ROW_ID, "vkey": vkey})
            found: str = connection.execute(sa.select(signing_key.c.vkey)).scalar_one()
        return found


# A server starting beside another on an empty store: the first key written stays.
_INSERT_IF_ABSENT = {
    "sqlite": sqlite.insert(signing_key).on_conflict_do_nothing(index_elements=["id"]),
    "postgresql": postgresql.insert(signing_key).on_conflict_do_nothing(index_elements=["id"]),
}


if TYPE_CHECKING:
    from audit.application.ports import SigningKeyRecord

    def _fits_the_port(engine: Engine) -> SigningKeyRecord:
        return SqlSigningKeyRecord(engine)
