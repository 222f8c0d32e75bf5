"""An SQLite database, its -wal and -shm are made owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.adapters.sql import create_engine_for, upgrade_schema


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o002)
    yield
    os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("open_umask")
def test_a_new_database_and_its_wal_are_0600(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    upgrade_schema(f"sqlite:///{database}")
    engine = create_engine_for(f"sqlite:///{database}")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql("SELECT count(*) FROM events").scalar_one()
            for suffix in ("", "-wal", "-shm"):
                assert _mode(Path(f"{database}{suffix}")) == 0o600, suffix
    finally:
        engine.dispose()


def test_an_existing_databases_mode_is_left_as_the_operator_set_it(tmp_path: Path) -> None:
    database = tmp_path / "audit.db"
    upgrade_schema(f"sqlite:///{database}")
    database.chmod(0o640)
    upgrade_schema(f"sqlite:///{database}")
    assert _mode(database) == 0o640
