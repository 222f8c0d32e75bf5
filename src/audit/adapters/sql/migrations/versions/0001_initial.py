"""The initial schema: events, their targets, chain heads and tokens.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

# Written out rather than imported from schema.py: a migration is a fixed record of a
# step, and must not change when the schema module does.
ACTION_TYPE = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("action", ACTION_TYPE, nullable=False),
        sa.Column("actor_id", sa.Text(), nullable=False),
        sa.Column("actor_type", sa.Text(), nullable=True),
        sa.Column("actor_name", sa.Text(), nullable=True),
        sa.Column("targets", sa.Text(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("occurred_at_us", sa.BigInteger(), nullable=False),
        sa.Column("received_at_us", sa.BigInteger(), nullable=False),
        sa.Column("source_ip", sa.Text(), nullable=True),
        sa.Column("source_user_agent", sa.Text(), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("metadata", sa.Text(), nullable=False),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "seq", name="pk_events"),
        sa.UniqueConstraint("tenant", "id", name="uq_events_tenant_id"),
    )
    op.create_index("ix_events_tenant_actor_id_seq", "events", ["tenant", "actor_id", "seq"])
    op.create_index("ix_events_tenant_action_seq", "events", ["tenant", "action", "seq"])
    op.create_index("ix_events_tenant_outcome_seq", "events", ["tenant", "outcome", "seq"])
    op.create_index("ix_events_tenant_occurred_at_us", "events", ["tenant", "occurred_at_us"])

    op.create_table(
        "event_targets",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("target_id", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant", "target_id", "seq", name="pk_event_targets"),
        sa.ForeignKeyConstraint(
            ["tenant", "seq"],
            ["events.tenant", "events.seq"],
            name="fk_event_targets_events",
        ),
    )

    op.create_table(
        "chain_heads",
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("tenant", name="pk_chain_heads"),
    )

    op.create_table(
        "tokens",
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("tenant", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("scopes", sa.Text(), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at_us", sa.BigInteger(), nullable=False),
        sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
        sa.Column("revoked_at_us", sa.BigInteger(), nullable=True),
        sa.Column("last_used_at_us", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_tokens"),
        sa.UniqueConstraint("secret_hash", name="uq_tokens_secret_hash"),
    )
    op.create_index("ix_tokens_tenant", "tokens", ["tenant"])


def downgrade() -> None:
    op.drop_index("ix_tokens_tenant", table_name="tokens")
    op.drop_table("tokens")
    op.drop_table("chain_heads")
    op.drop_table("event_targets")
    op.drop_index("ix_events_tenant_occurred_at_us", table_name="events")
    op.drop_index("ix_events_tenant_outcome_seq", table_name="events")
    op.drop_index("ix_events_tenant_action_seq", table_name="events")
    op.drop_index("ix_events_tenant_actor_id_seq", table_name="events")
    op.drop_table("events")
