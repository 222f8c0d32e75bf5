"""Fixtures shared by every test suite: real databases, each test its own.

PostgreSQL tests need AUDIT_TEST_POSTGRES_URL (a server where the user may create
databases); without it they are skipped, never silently run against SQLite.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from audit.adapters.sql import upgrade_schema
from audit.adapters.sql.search_index import stop_indexers

POSTGRES_URL_ENV = "AUDIT_TEST_POSTGRES_URL"


def _admin_engine(server_url: str) -> sa.Engine:
    url = make_url(server_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """The URL of a fresh, empty PostgreSQL database, dropped after the test."""
    server_url = os.environ.get(POSTGRES_URL_ENV)
    if not server_url:
        pytest.skip(
            "set AUDIT_TEST_POSTGRES_URL=postgresql://user@host:port/db to run the PostgreSQL tests"
        )
    name = f"audit_test_{secrets.token_hex(8)}"
    admin = _admin_engine(server_url)
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@pytest.fixture
def linked_database(tmp_path: Path) -> tuple[Path, Path]:
    """An SQLite file of the current schema (data/audit.db) and a symbolic link to it."""
    real = tmp_path / "data" / "audit.db"
    real.parent.mkdir()
    link = tmp_path / "audit.db"
    link.symlink_to(real)
    upgrade_schema(f"sqlite:///{real}")
    return real, link


@pytest.fixture
def sqlite_url(tmp_path: Path) -> Iterator[str]:
    """The URL of a fresh SQLite file (not created yet) in the test's own folder.

    A test that writes to it starts this process's `q` indexer for it (search_index.py):
    stopped afterwards, so no thread outlives its test.
    """
    yield f"sqlite:///{tmp_path / 'audit.db'}"
    stop_indexers()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database with the schema upgraded: once on SQLite, once on PostgreSQL."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    upgrade_schema(url)
    return url
