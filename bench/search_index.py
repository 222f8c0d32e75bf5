"""SQLite's `q` index kept apart (src/audit/adapters/sql/search_index.py), measured.

`python -m bench.search_index [--rounds N] [--events N]`, in alternating rounds, each on
a fresh SQLite file (WAL, synchronous=FULL):

- raw: `sqlite3` `executemany` of 1000-event batches into the service's schema (the rows
  of baselines.py, one transaction per batch): without any index (0007, no indexer);
  with migration 0003's index kept by a trigger (the schema at 0006); and at 0007 with
  the background indexer keeping the search file meanwhile, in the same process.
- in-process: two processes (as two server workers) each recording its own tenant's
  events through `RecordEvents` in batches of 1000 (the templates of events.py),
  without an index, with the trigger, with the indexer.

For the indexer, also how long after the last commit the index held every event.
Prints one line per case: events/s of each round and their median.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from audit.adapters.clock import SystemClock
from audit.adapters.sql import SqlUnitOfWorkFactory, create_engine_for, search_index, upgrade_schema
from audit.adapters.sql.search_index import SearchIndexer, wait_until_indexed
from audit.application.recording import RecordEvents
from audit.domain.validation import parse_batch
from bench.baselines import _EVENT_COLUMNS, _rows
from bench.events import TEMPLATE_COUNT, make_id, template_document

CASES = ("no index", "trigger", "indexer")
BATCH = 1000


def _schema(path: Path, case: str) -> str:
    url = f"sqlite:///{path}"
    upgrade_schema(url, revision="0006" if case == "trigger" else "head")
    return url


def raw_round(folder: Path, case: str, events: int) -> tuple[float, float]:
    """Events/s of the writes' own time, and seconds from the last commit to caught up."""
    path = folder / f"raw-{case.replace(' ', '-')}.db"
    _schema(path, case)
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("INSERT INTO chain_heads VALUES ('default', 0, '')")
    batches = [_rows("raw", first, BATCH) for first in range(1, events + 1, BATCH)]
    insert = f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES ({', '.join('?' * 19)})"  # noqa: S608
    indexer = SearchIndexer(str(path)) if case == "indexer" else None
    if indexer is not None:
        indexer.start()
    seconds = 0.0
    try:
        for rows, targets in batches:
            began = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, rows)
            conn.executemany("INSERT INTO event_targets VALUES (?, ?, ?)", targets)
            conn.execute(
                "UPDATE chain_heads SET seq = ?, hash = ? WHERE tenant = 'default'",
                (rows[-1][1], rows[-1][17]),
            )
            conn.execute("COMMIT")
            seconds += time.perf_counter() - began
        last_commit = time.perf_counter()
        lag = 0.0
        if indexer is not None:
            wait_until_indexed(str(path), timeout_s=300)
            lag = time.perf_counter() - last_commit
    finally:
        if indexer is not None:
            indexer.stop()
        conn.close()
    return events / seconds, lag


def _worker(url: str, tenant: str, case: str, batches: int, start: Any, out: Any) -> None:
    if case != "indexer":
        search_index.start_indexer = lambda database: None  # type: ignore[assignment]
    engine = create_engine_for(url)
    record = RecordEvents(SqlUnitOfWorkFactory(engine), SystemClock())
    bodies = [
        [template_document(n % TEMPLATE_COUNT, make_id(tenant, b, n)) for n in range(BATCH)]
        for b in range(batches)
    ]
    start.wait()
    for body in bodies:
        record(tenant, parse_batch(body))
    out.put(time.perf_counter())
    if case == "indexer":  # a server lives on, and its indexer with it
        wait_until_indexed(url.removeprefix("sqlite:///"), timeout_s=300)
    engine.dispose()


def inprocess_round(folder: Path, case: str, events: int) -> tuple[float, float]:
    """Events/s from the start to the last commit of two processes, and the index's lag."""
    path = folder / f"inprocess-{case.replace(' ', '-')}.db"
    url = _schema(path, case)
    context = mp.get_context("fork")
    start, out = context.Event(), context.Queue()
    batches = max(1, events // (2 * BATCH))
    workers = [
        context.Process(target=_worker, args=(url, tenant, case, batches, start, out))
        for tenant in ("a", "b")
    ]
    for worker in workers:
        worker.start()
    time.sleep(1.0)  # both ready, their bodies built
    began = time.perf_counter()
    start.set()
    finished = max(out.get() for _ in workers)
    lag = 0.0
    if case == "indexer":
        wait_until_indexed(str(path), timeout_s=300)
        lag = time.perf_counter() - finished
    for worker in workers:
        worker.join()
    return 2 * batches * BATCH / (finished - began), lag


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    for name, measure in (("raw executemany", raw_round), ("in-process", inprocess_round)):
        rates: dict[str, list[float]] = {case: [] for case in CASES}
        lags: list[float] = []
        for _ in range(args.rounds):
            for case in CASES:
                with tempfile.TemporaryDirectory(prefix="audit-bench-search-") as folder:
                    rate, lag = measure(Path(folder), case, args.events)
                rates[case].append(rate)
                if case == "indexer":
                    lags.append(lag)
        base = statistics.median(rates["no index"])
        for case in CASES:
            median = statistics.median(rates[case])
            each = ", ".join(f"{rate:,.0f}" for rate in rates[case])
            share = median / base
            print(f"{name}, {case}: median {median:,.0f}/s ({share:.2f} of no index); {each}")
        print(f"{name}, indexer: caught up {min(lags):.2f}-{max(lags):.2f} s after the last commit")


if __name__ == "__main__":
    main()
