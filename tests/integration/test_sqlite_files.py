"""An SQLite database, its -wal and -shm are made owner-only, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from audit.adapters.sql import create_engine_for, upgrade_schema
from audit.adapters.sql.engine import writer_queue
from audit.adapters.sql.search_index import SearchIndexer


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


def test_a_database_named_through_a_link_keeps_its_files_beside_the_real_one(
    linked_database: tuple[Path, Path],
) -> None:
    real, link = linked_database
    engine = create_engine_for(f"sqlite:///{link}")
    try:
        # The writers' queue and the search index, and the index's lock: one of each for
        # the database, however a process names it.
        queue = writer_queue(engine)
        assert queue is not None
        queue.release(queue.acquire())
        through_link = SearchIndexer(str(link))
        through_link.catch_up()
        through_link.close()
        real_name = SearchIndexer(str(real))
        assert real_name.try_lock()
        assert not SearchIndexer(str(link)).try_lock()
        real_name.unlock()
        assert sorted(p.name for p in link.parent.iterdir()) == ["audit.db", "data"]
        beside = {p.name for p in real.parent.iterdir()}
        assert {"audit.db-writer", "audit.db-search", "audit.db-search.lock"} <= beside
    finally:
        engine.dispose()
