"""Appending and proving read a few Merkle nodes by primary key, never the whole tree."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from audit.adapters.clock import FixedClock
from audit.adapters.sql import SqlUnitOfWorkFactory, create_engine_for, upgrade_schema
from audit.adapters.sql.driver import subtree_lookup
from audit.application.recording import RecordEvents
from audit.domain.events import NewEvent, Party
from audit.domain.tree import stored_frontier

SIZE = 2047  # its frontier has ten stored subtrees, levels 1 to 10


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest) -> Iterator[sa.Engine]:
    url: str = request.getfixturevalue(f"{request.param}_url")
    upgrade_schema(url)
    engine = create_engine_for(url)
    record = RecordEvents(
        SqlUnitOfWorkFactory(engine), FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    )
    for start in range(0, SIZE, 500):
        record(
            "acme",
            [
                NewEvent(id=f"e-{n}", action="a.b", actor=Party(id="u"))
                for n in range(start, min(start + 500, SIZE))
            ],
        )
    with engine.begin() as connection:
        # `main`: on SQLite the search index is attached too, read only (search_index.py).
        analyze = "ANALYZE main" if connection.dialect.name == "sqlite" else "ANALYZE"
        connection.exec_driver_sql(analyze)
    try:
        yield engine
    finally:
        engine.dispose()


def test_the_frontier_is_read_by_primary_key(engine: sa.Engine) -> None:
    coords = stored_frontier(SIZE)
    assert len(coords) == 10
    with engine.connect() as connection:
        sql, params = subtree_lookup(connection.dialect.name, "acme", coords)
        assert len(connection.exec_driver_sql(sql, params).all()) == 10
        if connection.dialect.name == "sqlite":
            explain = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params)
            plan = [row[3] for row in explain]
            lookups = [step for step in plan if "merkle_nodes" in step]
            assert len(lookups) == 10, plan
            assert all("(tenant=? AND level=? AND idx=?)" in step for step in lookups), plan
        else:
            plan = connection.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {sql}", params).scalar_one()
            text = json.dumps(plan)
            assert "Seq Scan" not in text, text
            assert "pk_merkle_nodes" in text, text
