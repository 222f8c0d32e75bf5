"""PostgreSQL: cap the trigram index's pending list at 1 MB (the default is 4 MB).

With fastupdate (on by default) GIN puts new entries in an unsorted pending list and
merges them into the index when the list outgrows gin_pending_list_limit (or at VACUUM).
Every search through the index reads the whole list, so after a bulk load a search paid
for up to 4 MB of it. At 10^6 events, a page for a needle in no event (two looks at the
index) took 2.1 ms with an empty list, 3.6 ms with 122 pending pages (500 events) and
8.3 ms with 493 (2,000 events, about the 4 MB cap): some 3 ms per look at the cap, about
0.8 ms at a 1 MB one.

fastupdate = off would take that cost away entirely but puts it on every write: each
event inserts its ~100 trigrams one by one, and batch ingest through the repository (1,000
events a transaction) fell from 6,300-8,500 to 2,700-3,400 events/s. A 1 MB cap keeps the
merging in batches (~500 events each; the service already writes in batches), and ingest
measured the same as with 4 MB within this machine's noise: 7,600 vs 6,300, 7,600 vs
8,500 and 6,600 vs 6,600 events/s into an empty log, 7,200 vs 7,200-7,500 on a log of
10^6. (A 256 kB cap cost 10-20%.)

SQLite: nothing to do (its FTS5 index has no pending list).

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# In kB, as PostgreSQL's storage parameter takes it.
PENDING_LIST_LIMIT_KB = 1024


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # A storage parameter only: nothing is rebuilt; entries already pending are merged
    # by the next insert past the new cap or by VACUUM.
    op.execute(
        "ALTER INDEX ix_events_search_text_trgm"
        f" SET (gin_pending_list_limit = {PENDING_LIST_LIMIT_KB})"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER INDEX ix_events_search_text_trgm RESET (gin_pending_list_limit)")
