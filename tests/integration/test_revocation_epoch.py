"""SqlRevocationEpoch: the one read every authenticated request makes, on each engine."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from audit.adapters.sql import SqlRevocationEpoch, SqlUnitOfWorkFactory, create_engine_for
from audit.domain.errors import StorageUnavailable
from audit.domain.tokens import Scope, Token

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine_for(database_url)
    yield engine
    engine.dispose()


def revoke_one(engine: Engine) -> None:
    storage = SqlUnitOfWorkFactory(engine)
    token = Token(f"tok_{T0.timestamp()}", "acme", "t", frozenset({Scope.EVENTS_READ}), "h", T0)
    with storage(write=True) as uow:
        if uow.tokens.get(token.id) is None:
            uow.tokens.add(token)
        uow.tokens.revoke(token.id, T0)
        uow.commit()


def test_each_read_sees_the_revocations_committed_before_it(engine: Engine) -> None:
    epoch = SqlRevocationEpoch(engine)
    start = epoch.current()
    for n in range(1, 4):
        revoke_one(engine)
        assert epoch.current() == start + n  # the same kept connection, a new snapshot


def test_concurrent_reads_keep_only_a_few_connections(engine: Engine) -> None:
    epoch = SqlRevocationEpoch(engine, keep=2)
    barrier = threading.Barrier(8)

    def read(_: int) -> int:
        barrier.wait(timeout=30)
        return epoch.current()

    with ThreadPoolExecutor(8) as pool:
        assert len(set(pool.map(read, range(8)))) == 1
    assert len(epoch._idle) <= 2


def test_a_broken_connection_is_replaced_on_the_same_read(engine: Engine) -> None:
    epoch = SqlRevocationEpoch(engine)
    start = epoch.current()
    [kept] = epoch._idle
    kept.close()  # as a restarted server or a dropped socket leaves it
    revoke_one(engine)
    assert epoch.current() == start + 1
    assert epoch._idle
    assert epoch._idle[0] is not kept


def test_a_missing_row_reads_as_zero_and_the_next_revocation_makes_it(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM revocation_epoch"))
    epoch = SqlRevocationEpoch(engine)
    assert epoch.current() == 0
    revoke_one(engine)
    assert epoch.current() == 1


def test_storage_that_cannot_be_read_is_unavailable() -> None:
    engine = create_engine_for("postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    try:
        with pytest.raises(StorageUnavailable):
            SqlRevocationEpoch(engine).current()
    finally:
        engine.dispose()
