"""The signing key: the verifier key that signs this database's checkpoints.

`audit serve` records it, and refuses to start with another key on a log that has
events, so a server started elsewhere never silently signs under a new key.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "signing_key",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("vkey", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_signing_key"),
        sa.CheckConstraint("id = 1", name="ck_signing_key_one_row"),
    )


def downgrade() -> None:
    op.drop_table("signing_key")
