"""The SQL schema as SQLAlchemy Core tables: the one picture the migrations must reproduce.

Times are BIGINT microseconds since the epoch (exact, and ordered the same on every
engine); JSON is stored as text. A test checks that the migrations build exactly this.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

metadata = sa.MetaData()

# Byte order (code point order for UTF-8) on PostgreSQL, as SQLite's BINARY already is,
# so the range `action >= p AND action < next(p)` is exactly "starts with p" and uses
# the index whatever the database's default collation.
ACTION_TYPE = sa.Text().with_variant(postgresql.TEXT(collation="C"), "postgresql")
HASH_TYPE = sa.String(64)

events = sa.Table(
    "events",
    metadata,
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
    sa.Column("prev_hash", HASH_TYPE, nullable=False),
    sa.Column("hash", HASH_TYPE, nullable=False),
    sa.Column("fingerprint", HASH_TYPE, nullable=False),
    sa.PrimaryKeyConstraint("tenant", "seq", name="pk_events"),
    sa.UniqueConstraint("tenant", "id", name="uq_events_tenant_id"),
    sa.Index("ix_events_tenant_actor_id_seq", "tenant", "actor_id", "seq"),
    sa.Index("ix_events_tenant_action_seq", "tenant", "action", "seq"),
    sa.Index("ix_events_tenant_outcome_seq", "tenant", "outcome", "seq"),
    sa.Index("ix_events_tenant_occurred_at_us", "tenant", "occurred_at_us"),
    # `q` on PostgreSQL: pg_trgm's trigram index answers `search_text LIKE '%...%'`.
    # SQLite's index for `q` is in a file of its own (search_index.py).
    sa.Index(
        "ix_events_search_text_trgm",
        "search_text",
        postgresql_using="gin",
        postgresql_ops={"search_text": "gin_trgm_ops"},
        # Migration 0004: a 1 MB pending list, which every search reads (default 4 MB).
        postgresql_with={"gin_pending_list_limit": 1024},
    ).ddl_if(dialect="postgresql"),
)

# One row per distinct target id of an event, so `target_id` filtering is index-backed.
event_targets = sa.Table(
    "event_targets",
    metadata,
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

# The row writers lock: one per tenant, holding the newest seq and hash.
chain_heads = sa.Table(
    "chain_heads",
    metadata,
    sa.Column("tenant", sa.Text(), nullable=False),
    sa.Column("seq", sa.BigInteger(), nullable=False),
    sa.Column("hash", HASH_TYPE, nullable=False),
    sa.PrimaryKeyConstraint("tenant", name="pk_chain_heads"),
)

# The hashes of complete Merkle subtrees of level >= 1 (RFC 9162): a root or a proof at
# any size then reads O(log n) rows. Leaves are the events' own hashes.
merkle_nodes = sa.Table(
    "merkle_nodes",
    metadata,
    sa.Column("tenant", sa.Text(), nullable=False),
    sa.Column("level", sa.SmallInteger(), nullable=False),
    sa.Column("idx", sa.BigInteger(), nullable=False),
    sa.Column("hash", sa.LargeBinary(32), nullable=False),
    sa.PrimaryKeyConstraint("tenant", "level", "idx", name="pk_merkle_nodes"),
)

tokens = sa.Table(
    "tokens",
    metadata,
    sa.Column("id", sa.Text(), nullable=False),
    sa.Column("tenant", sa.Text(), nullable=False),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("scopes", sa.Text(), nullable=False),
    sa.Column("secret_hash", HASH_TYPE, nullable=False),
    sa.Column("created_at_us", sa.BigInteger(), nullable=False),
    sa.Column("expires_at_us", sa.BigInteger(), nullable=True),
    sa.Column("revoked_at_us", sa.BigInteger(), nullable=True),
    sa.Column("last_used_at_us", sa.BigInteger(), nullable=True),
    sa.PrimaryKeyConstraint("id", name="pk_tokens"),
    sa.UniqueConstraint("secret_hash", name="uq_tokens_secret_hash"),
    sa.Index("ix_tokens_tenant", "tenant"),
)

# One row: a counter every token revocation advances in the same transaction, which
# servers read on each request to know whether the principals they keep still hold.
revocation_epoch = sa.Table(
    "revocation_epoch",
    metadata,
    sa.Column("id", sa.SmallInteger(), nullable=False),
    sa.Column("epoch", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_revocation_epoch"),
    sa.CheckConstraint("id = 1", name="ck_revocation_epoch_one_row"),
)
EPOCH_ROW_ID = 1

# One row (none before the first `audit serve`): the verifier key of the signing key.
signing_key = sa.Table(
    "signing_key",
    metadata,
    sa.Column("id", sa.SmallInteger(), nullable=False),
    sa.Column("vkey", sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_signing_key"),
    sa.CheckConstraint("id = 1", name="ck_signing_key_one_row"),
)
SIGNING_KEY_ROW_ID = 1


# Viewer sessions signed out (application/sessions.py), by the random id in their cookie:
# every server refuses them until they would have expired anyway, then sign-outs purge them.
ended_sessions = sa.Table(
    "ended_sessions",
    metadata,
    sa.Column("id", sa.Text(), nullable=False),
    sa.Column("expires_at_us", sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint("id", name="pk_ended_sessions"),
    sa.Index("ix_ended_sessions_expires_at_us", "expires_at_us"),
)


def described_on(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's `include_object`: the schema items `metadata` describes on `dialect`.

    Autogenerate and compare_metadata would otherwise propose dropping items declared
    for another dialect (the pg_trgm index; alembic does not honour ddl_if, as create_all
    does). Nothing else lives outside `metadata`: SQLite's index for `q` (an FTS5 table,
    which SQLAlchemy cannot describe; migrations 0003 to 0006 kept one in `events_fts`,
    0007 dropped it) is in a file of its own, search_index.py, made by its indexer.
    """

    def include(item: Any, name: str | None, type_: str, reflected: bool, other: Any) -> bool:
        only_on = getattr(getattr(item, "_ddl_if", None), "dialect", None)
        return only_on is None or only_on == dialect

    return include
