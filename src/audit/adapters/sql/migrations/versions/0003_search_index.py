"""An index for `q`: pg_trgm's GIN on PostgreSQL, an FTS5 trigram table on SQLite.

Both are built for the events already stored.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlite3

from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

# The trigram tokenizer came with SQLite 3.34.
SQLITE_TRIGRAM = (3, 34, 0)

# External content: the index keeps no copy of the text, only `events`' rowids. Those
# must not move: with no event ever deleted they run 1, 2, 3, ..., which even a VACUUM
# renumbering rows in order would keep (3.40's VACUUM keeps rowids anyway). Should the
# index ever be in doubt, `INSERT INTO events_fts(events_fts) VALUES('rebuild')` remakes
# it from `events`.
_SQLITE_UP = [
    "CREATE VIRTUAL TABLE events_fts USING fts5("
    "search_text, content='events', content_rowid='rowid', tokenize='trigram')",
    "CREATE TRIGGER events_fts_insert AFTER INSERT ON events BEGIN"
    " INSERT INTO events_fts(rowid, search_text) VALUES (new.rowid, new.search_text);"
    " END",
    # The service never updates or deletes an event, but someone with the file may. An
    # external-content index must be told the old text to drop, or it is corrupted.
    "CREATE TRIGGER events_fts_delete AFTER DELETE ON events BEGIN"
    " INSERT INTO events_fts(events_fts, rowid, search_text)"
    " VALUES ('delete', old.rowid, old.search_text);"
    " END",
    "CREATE TRIGGER events_fts_update AFTER UPDATE ON events BEGIN"
    " INSERT INTO events_fts(events_fts, rowid, search_text)"
    " VALUES ('delete', old.rowid, old.search_text);"
    " INSERT INTO events_fts(rowid, search_text) VALUES (new.rowid, new.search_text);"
    " END",
    "INSERT INTO events_fts(events_fts) VALUES ('rebuild')",
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm is a trusted extension: the database's owner may create it.
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.create_index(
            "ix_events_search_text_trgm",
            "events",
            ["search_text"],
            postgresql_using="gin",
            postgresql_ops={"search_text": "gin_trgm_ops"},
        )
        return
    if sqlite3.sqlite_version_info < SQLITE_TRIGRAM:
        raise RuntimeError(
            f"SQLite {sqlite3.sqlite_version} is too old: the search index needs 3.34 or newer"
        )
    for statement in _SQLITE_UP:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # pg_trgm stays: other objects of the database may use it.
        op.drop_index("ix_events_search_text_trgm", table_name="events")
        return
    for trigger in ("events_fts_update", "events_fts_delete", "events_fts_insert"):
        op.execute(f"DROP TRIGGER {trigger}")
    op.execute("DROP TABLE events_fts")
