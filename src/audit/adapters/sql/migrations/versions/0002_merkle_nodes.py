"""Merkle subtree hashes, filled in for the events already stored.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from audit.domain.tree import grow, stored_frontier

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    nodes = op.create_table(
        "merkle_nodes",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("level", sa.SmallInteger(), nullable=False),
        sa.Column("idx", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.LargeBinary(32), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "level", "idx", name="pk_merkle_nodes"),
    )
    _backfill(nodes)


def _backfill(nodes: sa.Table) -> None:
    """Build the trees of logs written before this revision, a tenant at a time."""
    conn = op.get_bind()
    events = sa.table("events", sa.column("tenant"), sa.column("seq"), sa.column("hash"))
    tenants = [row[0] for row in conn.execute(sa.select(events.c.tenant).distinct())]
    for tenant in tenants:
        size, head = 0, "0" * 64
        frontier: dict[tuple[int, int], bytes] = {}
        rows = conn.execute(
            sa.select(events.c.hash).where(events.c.tenant == tenant).order_by(events.c.seq)
        )
        while batch := [row[0] for row in rows.fetchmany(10_000)]:
            made = grow(size, head, frontier, batch)
            if made:
                conn.execute(
                    sa.insert(nodes),
                    [{"tenant": tenant, "level": lv, "idx": ix, "hash": h} for lv, ix, h in made],
                )
            # Only the frontier is needed to go on: keep memory bounded by the tree's height.
            size += len(batch)
            head = batch[-1]
            frontier = _frontier_of(size, frontier, made)


def _frontier_of(
    size: int, previous: dict[tuple[int, int], bytes], made: list[tuple[int, int, bytes]]
) -> dict[tuple[int, int], bytes]:
    known = {**previous, **{(lv, ix): h for lv, ix, h in made}}
    return {c: known[c] for c in stored_frontier(size)}


def downgrade() -> None:
    op.drop_table("merkle_nodes")
