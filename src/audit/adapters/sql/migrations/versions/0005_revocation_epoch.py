"""The revocation epoch: a counter every token revocation advances in its own transaction.

Servers keep the principals they have authenticated and read this one row on each
request instead of the token: a changed epoch means some token was revoked since.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    epoch = op.create_table(
        "revocation_epoch",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("epoch", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_revocation_epoch"),
        sa.CheckConstraint("id = 1", name="ck_revocation_epoch_one_row"),
    )
    op.bulk_insert(epoch, [{"id": 1, "epoch": 0}])


def downgrade() -> None:
    op.drop_table("revocation_epoch")
