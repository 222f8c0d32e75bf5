"""SQLite's index for `q` moves out of the database, off the ingest path.

Drops the FTS5 table `events_fts` and its triggers: kept by a trigger, the index cost
most of each write's time under the database's one write lock. The index now lives in a
file of its own beside the database, kept by a background indexer (search_index.py),
which builds it from the first event: meanwhile `q` reads the events not yet indexed
directly, still exact. PostgreSQL: nothing to do (its GIN index stays).

The pages the old index held are left free in the file; `VACUUM` gives them back.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

# Named with their schema: an unqualified name could find the search file's tables,
# attached to the connection as `search`.
_TRIGGERS = ("events_fts_update", "events_fts_delete", "events_fts_insert")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for trigger in _TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS main.{trigger}")
    op.execute("DROP TABLE IF EXISTS main.events_fts")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    # 0003's index and triggers, built again for the events stored.
    op.execute(
        "CREATE VIRTUAL TABLE main.events_fts USING fts5("
        "search_text, content='events', content_rowid='rowid', tokenize='trigram')"
    )
    op.execute(
        "CREATE TRIGGER main.events_fts_insert AFTER INSERT ON events BEGIN"
        " INSERT INTO events_fts(rowid, search_text) VALUES (new.rowid, new.search_text);"
        " END"
    )
    op.execute(
        "CREATE TRIGGER main.events_fts_delete AFTER DELETE ON events BEGIN"
        " INSERT INTO events_fts(events_fts, rowid, search_text)"
        " VALUES ('delete', old.rowid, old.search_text);"
        " END"
    )
    op.execute(
        "CREATE TRIGGER main.events_fts_update AFTER UPDATE ON events BEGIN"
        " INSERT INTO events_fts(events_fts, rowid, search_text)"
        " VALUES ('delete', old.rowid, old.search_text);"
        " INSERT INTO events_fts(rowid, search_text) VALUES (new.rowid, new.search_text);"
        " END"
    )
    op.execute("INSERT INTO main.events_fts(events_fts) VALUES ('rebuild')")
