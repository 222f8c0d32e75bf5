"""Creating or upgrading the schema with the Alembic migrations shipped in this package."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from audit.adapters.sql.engine import WRITE_OPTION, create_engine_for, parse_database_url

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Held while migrating, so servers starting together upgrade one after another.
MIGRATION_LOCK_KEY = 0x61756469745F6462  # "audit_db"
# A server waits this long for another one's migration before giving up.
MIGRATION_LOCK_TIMEOUT_MS = 120_000


def alembic_config() -> Config:
    """An Alembic configuration pointing at the migrations in this package."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS).replace("%", "%%"))
    return config


def upgrade_schema(
    url: str, *, lock_timeout_ms: int = MIGRATION_LOCK_TIMEOUT_MS, revision: str = "head"
) -> None:
    """Create or upgrade the schema at `url` to the newest revision, in one transaction.

    Servers starting together take turns, each waiting up to `lock_timeout_ms` for the
    one migrating. Creates the folder of an SQLite file if missing. Opens and disposes its
    own engine, so no connection outlives it into worker processes forked afterwards.
    """
    parsed = parse_database_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database:
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine_for(url, lock_timeout_ms=lock_timeout_ms)
    try:
        with engine.connect() as connection:
            # On SQLite a writing transaction: BEGIN IMMEDIATE serialises migrators.
            connection.execution_options(**{WRITE_OPTION: True})
            with connection.begin():
                if connection.dialect.name == "postgresql":
                    connection.execute(
                        sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY}
                    )
                config = alembic_config()
                # Alembic joins the transaction already open on this connection.
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
    finally:
        engine.dispose()
