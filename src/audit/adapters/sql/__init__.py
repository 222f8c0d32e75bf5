"""The SQL adapter: SQLAlchemy Core on SQLite (the default) or PostgreSQL (psycopg 3)."""

from audit.adapters.sql.engine import create_engine_for, describe_failure, sqlite_file
from audit.adapters.sql.migrate import upgrade_schema
from audit.adapters.sql.repositories import SqlEventRepository
from audit.adapters.sql.tokens import SqlRevocationEpoch, SqlTokenRepository
from audit.adapters.sql.unit_of_work import SqlUnitOfWork, SqlUnitOfWorkFactory

__all__ = [
    "SqlEventRepository",
    "SqlRevocationEpoch",
    "SqlTokenRepository",
    "SqlUnitOfWork",
    "SqlUnitOfWorkFactory",
    "create_engine_for",
    "describe_failure",
    "sqlite_file",
    "upgrade_schema",
]
