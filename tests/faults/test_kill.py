"""`kill -9` of the whole server at random moments under 16 writers: nothing acknowledged
is lost, and the chain verifies."""

from __future__ import annotations

import random
import threading
import time
from functools import partial
from pathlib import Path

import pytest
from tests.faults.support import (
    Service,
    Tally,
    chain_report,
    join_all,
    ledger_row,
    stored_ids,
    threads,
    write_until,
)

ROUNDS = 5
WRITERS = 16


@pytest.mark.timeout(300)
@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_kill_9_under_16_writers_loses_nothing_acknowledged(
    request: pytest.FixtureRequest, tmp_path: Path, engine: str
) -> None:
    url: str = request.getfixturevalue(f"{engine}_url")
    seed = random.randrange(2**32)
    chance = random.Random(seed)
    row = ledger_row(f"kill -9 x{ROUNDS}, {WRITERS} writers, {engine}")
    tally = Tally()
    service = Service(url, tmp_path)
    try:
        for round_ in range(ROUNDS):
            service.start()
            headers = service.headers()
            stop = threading.Event()
            writers = threads(
                [
                    partial(
                        write_until,
                        service.url,
                        headers,
                        tally,
                        stop,
                        f"r{round_}-w{w}",
                        allowed=frozenset({0, 200, 201, 503}),
                    )
                    for w in range(WRITERS)
                ]
            )
            time.sleep(chance.uniform(0.3, 2.5))
            service.kill()  # at a random moment, requests in flight
            stop.set()
            join_all(writers)
        service.start()
        ids = stored_ids(service)
        report = chain_report(service)
    finally:
        service.kill()
    stored = set(ids)
    row.note = f"{tally.sent} sent, seed {seed}"
    row.tried = len(tally.acked)
    row.survived = len(tally.acked & stored)
    row.lost = len(tally.acked - stored)
    assert tally.acked, "no write was acknowledged: the case tested nothing"
    assert row.lost == 0, sorted(tally.acked - stored)[:20]
    assert len(ids) == len(stored), "an event id is stored twice"
    assert report["valid"] is True, report
    assert report["checked"] == len(ids)
    assert not tally.bad, tally.bad[:5]
