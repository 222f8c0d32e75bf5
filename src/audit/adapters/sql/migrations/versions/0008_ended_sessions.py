"""Ended sessions: the viewer sessions signed out, refused by every server until they
would have expired anyway.

A new table, empty: sessions signed in before the upgrade carry no id and are asked to
sign in again.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "ended_sessions",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ended_sessions"),
    )
    op.create_index("ix_ended_sessions_expires_at_us", "ended_sessions", ["expires_at_us"])


def downgrade() -> None:
    op.drop_index("ix_ended_sessions_expires_at_us", table_name="ended_sessions")
    op.drop_table("ended_sessions")
