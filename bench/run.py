"""`python -m bench [--quick] [--out DIR] [--only SECTION]`: one run, one table.

Starts the real server (`python -m audit serve`) on loopback on a temporary SQLite file,
and on a fresh PostgreSQL database when AUDIT_TEST_POSTGRES_URL is set, loads it with a
real load generator, and prints each figure of ours beside a baseline measured in the
same run. Exits 1 if the service answered anything but 2xx, returned wrong query
results, or lost an acknowledged event; 2 if the benchmark could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import multiprocessing
import os
import platform
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
from sqlalchemy.engine import make_url

from bench import baselines, consumer
from bench.checks import Ledger, check_export
from bench.client import section_client
from bench.events import (
    ACTOR_SELECTIVITY,
    FILTER_ACTOR_ID,
    NO_MATCH_QUERY,
    SEARCH_QUERY,
    SEARCH_WORD,
    SELECTIVITY,
    TEMPLATE_COUNT,
    make_id,
    template_document,
)
from bench.load import (
    Generator,
    LoadResult,
    LoadSpec,
    choose_generator,
    describe_generator,
    run_load,
)
from bench.report import Row, markdown_table, write_results
from bench.servers import (
    AuditServer,
    GunicornProcess,
    MinimalApp,
    export_to_file,
    get,
    postgres_database,
    sqlite_database,
)

SECTIONS = ("batch", "single", "query", "export", "client")
TENANT = "default"


@dataclass(frozen=True)
class Profile:
    """How long and how big: `full` for `make bench`, `quick` for CI (speed not judged)."""

    name: str
    measure_s: float  # each HTTP measurement
    batch_measure_s: float  # batch ingest: a 1000-event request takes long
    warmup_s: float
    warmup_each: bool  # warm up before every measurement, or once per server and load
    baseline_s: float  # each raw-driver baseline
    query_sizes: tuple[int, ...]
    export_size: int
    batch_connections: int = 4
    single_connections: tuple[int, ...] = (1, 16, 64)
    query_connections: int = 16
    load_connections: int = 2


FULL = Profile(
    "full",
    measure_s=6,
    batch_measure_s=10,
    warmup_s=1,
    warmup_each=True,
    baseline_s=3,
    query_sizes=(10_000, 100_000, 1_000_000),
    export_size=1_000_000,
)
QUICK = Profile(
    "quick",
    measure_s=1,
    batch_measure_s=2,
    warmup_s=1,
    warmup_each=False,
    baseline_s=1,
    # 5 x 10^4 rather than 10^5: loading is ~5,000 events/s here, and two backends must
    # fit in 2 minutes.
    query_sizes=(10_000, 50_000),
    export_size=50_000,
)


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Run:
    """State of one benchmark run: settings, the shared baselines, the rows so far."""

    profile: Profile
    generator: Generator
    workers: int
    threads: int
    load_via: str
    sections: tuple[str, ...]
    tmp: Path
    run_id: str = field(default_factory=lambda: secrets.token_hex(3))
    rows: list[Row] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _flask: MinimalApp | None = None
    _flask_cache: dict[tuple[str, int], tuple[LoadResult, float]] = field(default_factory=dict)
    _seed: MinimalApp | None = None
    stack: ExitStack = field(default_factory=ExitStack)
    _warmed: set[tuple[int, str, str, int]] = field(default_factory=set)

    def prefix(self, tag: str) -> str:
        return f"b{self.run_id}{tag}"

    # ------------------------------------------------------------ load helpers

    def measure(
        self, server: GunicornProcess, spec: LoadSpec, ledger: Ledger | None
    ) -> tuple[LoadResult, float]:
        """Warm up, then measure; returns the result and the server's cores used."""
        kind = (server.port, spec.method, spec.path, spec.batch)
        if self.profile.warmup_each or kind not in self._warmed:
            self._warmed.add(kind)
            warm = replace(spec, duration_s=self.profile.warmup_s, id_prefix=spec.id_prefix + "w")
            result = run_load(warm, self.generator)
            _record(ledger, result, f"warm-up of {spec.method} {spec.path} x{spec.connections}")
            server.wait_idle()
        cpu = server.cpu_seconds()
        result = run_load(spec, self.generator)
        server_cores = (server.cpu_seconds() - cpu) / result.seconds if result.seconds else 0.0
        _record(ledger, result, f"{spec.method} {spec.path} x{spec.connections}")
        # wrk stops at its deadline and drops what is in flight; the server finishes it.
        server.wait_idle()
        return result, server_cores

    def flask(self) -> MinimalApp:
        if self._flask is None:
            app = MinimalApp(self.workers, self.threads, self.tmp / "minimal-app.log")
            self.stack.callback(app.stop)
            app.start()
            self._flask = app
            log(f"minimal Flask app on port {app.port}")
        return self._flask

    def flask_result(self, kind: str, connections: int) -> LoadResult:
        """The minimal app under the same load; measured once per run and reused."""
        return self.flask_measured(kind, connections)[0]

    def flask_measured(self, kind: str, connections: int) -> tuple[LoadResult, float]:
        """flask_result() and the cores its server used."""
        key = (kind, connections)
        if key not in self._flask_cache:
            app = self.flask()
            if kind == "post":
                spec = self.spec(app, "POST", "/v1/events", connections, batch=0, tag="f")
            else:
                spec = self.spec(app, "GET", "/v1/events?limit=50", connections)
            result, cores = self.measure(app, spec, None)
            if result.failures:
                self.failures.append(
                    f"minimal app {kind} x{connections}: {result.failures} failures"
                )
            self._flask_cache[key] = (result, cores)
            log(
                f"  minimal Flask {kind} x{connections}: {result.rps:,.0f} req/s, "
                f"server {cores:.2f} cores"
            )
        return self._flask_cache[key]

    def seed(self) -> MinimalApp:
        """bench/seed_app.py, the original toy service, started on first use."""
        if self._seed is None:
            app = MinimalApp(
                self.workers,
                self.threads,
                self.tmp / "seed-app.log",
                module="bench.seed_app:app",
                name="the seed's toy service",
                env={"SEED_DATABASE": str(self.tmp / "seed.db")},
            )
            self.stack.callback(app.stop)
            app.start()
            self._seed = app
            log(f"the seed's toy service on port {app.port}")
        return self._seed

    def spec(
        self,
        server: GunicornProcess,
        method: str,
        path: str,
        connections: int,
        *,
        batch: int = -1,
        tag: str = "",
        duration_s: float | None = None,
        max_requests: int = 0,
    ) -> LoadSpec:
        token = server.token if isinstance(server, AuditServer) else "not-checked"
        return LoadSpec(
            port=server.port,
            path=path,
            token=token,
            connections=connections,
            duration_s=self.profile.measure_s if duration_s is None else duration_s,
            method=method,
            batch=batch,
            id_prefix=self.prefix(tag),
            max_requests=max_requests,
        )


def _record(ledger: Ledger | None, result: LoadResult, what: str) -> None:
    """Count a load in its server's ledger, and say at once where failures came from."""
    if ledger is not None:
        ledger.add(result)
        if result.failures:
            note = (
                f"{what}: {result.non_2xx} non-2xx {dict(sorted(result.statuses.items()))}, "
                f"{result.transport_errors} transport errors, {result.bad_acks} odd acks"
            )
            ledger.load_notes.append(note)
            log(f"{ledger.backend}/{ledger.server} FAILURES in {note}")


def _notes(result: LoadResult, server_cores: float, log_size: int | None = None) -> str:
    size = "" if log_size is None else f"log at {log_size:,} events before; "
    return (
        f"{size}{result.requests:,} requests; gen {result.client_cores:.2f} cores, "
        f"server {server_cores:.2f} cores"
    )


def log_size(server: AuditServer) -> int:
    """The tenant's newest seq: how many events its log held."""
    status, body = get(server.port, "/v1/events?limit=1", server.token)
    if status != 200:
        raise RuntimeError(f"GET /v1/events?limit=1 answered {status}: {body[:200]!r}")
    events = orjson.loads(body)["events"]
    return int(events[0]["seq"]) if events else 0


def _start_server(run: Run, url: str, backend: str, role: str, token: str = "") -> AuditServer:
    log_path = run.tmp / f"audit-{backend}-{role}.log"
    server = AuditServer(url, run.workers, run.threads, log_path, token)
    run.stack.callback(server.stop)
    server.start()
    log(f"{backend}: audit serve ({role}) on port {server.port}, workers {server.workers()}")
    return server


# ------------------------------------------------------------------ sections


def section_batch(run: Run, backend: str, db_url: str, server: AuditServer, ledger: Ledger) -> None:
    p = run.profile
    spec = run.spec(
        server,
        "POST",
        "/v1/events",
        p.batch_connections,
        batch=1000,
        tag="B",
        duration_s=p.batch_measure_s,
    )
    size = log_size(server)
    result, cores = run.measure(server, spec, ledger)
    ours = len(result.acked_ids) / result.seconds
    log(f"{backend}: batch ingest {ours:,.0f} events/s ({result.requests} requests)")
    # Against the bare tables, and against the same tables with the index behind `q`.
    for search_index in (False, True):
        if backend == "sqlite":
            base = baselines.sqlite_executemany(
                run.tmp / f"baseline-batch-{secrets.token_hex(2)}.db",
                duration_s=p.baseline_s,
                max_events=2_000_000,
                search_index=search_index,
            )
        else:
            base = baselines.postgres_executemany(
                db_url, duration_s=p.baseline_s, max_events=2_000_000, search_index=search_index
            )
        log(f"{backend}: baseline {base.name} {base.rate:,.0f} events/s")
        run.rows.append(
            Row(
                "1",
                backend,
                f"batch ingest, 1000 events/request, {p.batch_connections} conns",
                ours,
                "events/s",
                f"{base.name}, 1 txn/1000",
                base.rate,
                "" if search_index else _notes(result, cores, size),
            )
        )
    consumer.section(run, backend, db_url, server, ledger)


def section_single(
    run: Run, backend: str, db_url: str, server: AuditServer, ledger: Ledger
) -> None:
    p = run.profile
    if backend == "sqlite":
        base = baselines.sqlite_commit_per_event(
            run.tmp / f"baseline-single-{secrets.token_hex(2)}.db",
            duration_s=p.baseline_s,
            max_events=200_000,
        )
    else:
        base = baselines.postgres_commit_per_event(
            db_url, duration_s=p.baseline_s, max_events=200_000
        )
    log(f"{backend}: baseline {base.name} {base.rate:,.0f} commits/s")
    for conns in p.single_connections:
        spec = run.spec(server, "POST", "/v1/events", conns, batch=0, tag=f"S{conns}")
        size = log_size(server)
        result, cores = run.measure(server, spec, ledger)
        log(f"{backend}: single ingest x{conns}: {result.rps:,.0f} req/s")
        flask, flask_cores = run.flask_measured("post", conns)
        what = f"single-event ingest, {conns} conn{'s' if conns > 1 else ''}"
        run.rows.append(
            Row(
                "2",
                backend,
                what,
                result.rps,
                "req/s",
                "minimal Flask POST",
                flask.rps,
                _notes(result, cores, size),
            )
        )
        run.rows.append(Row("2", backend, what, result.rps, "req/s", base.name, base.rate))
        if conns == max(p.single_connections):
            # The server's CPU per request (all its processes): at most 2.5x the bare app's.
            run.rows.append(
                Row(
                    "2",
                    backend,
                    f"CPU per single-event request, {conns} conns",
                    cores / result.rps * 1e6 if result.rps else math.nan,
                    "us",
                    "minimal Flask POST",
                    flask_cores / flask.rps * 1e6 if flask.rps else None,
                    "server CPU seconds / requests; lower is better (target: ratio <= 2.5)",
                )
            )
            if backend == "sqlite":
                seed_app = run.seed()
                seed_spec = run.spec(seed_app, "POST", "/v1/events", conns, batch=0, tag="D")
                seed, seed_cores = run.measure(seed_app, seed_spec, None)
                if seed.failures:
                    run.failures.append(f"the seed's service x{conns}: {seed.failures} failures")
                log(f"  the seed's toy service x{conns}: {seed.rps:,.0f} req/s")
                run.rows.append(
                    Row(
                        "2",
                        backend,
                        what,
                        result.rps,
                        "req/s",
                        "the seed's toy service (bench/seed_app.py)",
                        seed.rps,
                        f"its server {seed_cores:.2f} cores (target: ratio >= 3)",
                    )
                )


class DataSet:
    """The query server's log, grown to each size in turn; loaded over HTTP or in-process."""

    def __init__(self, run: Run, backend: str, server: AuditServer, ledger: Ledger) -> None:
        self.run = run
        self.backend = backend
        self.server = server
        self.ledger = ledger
        self.size = 0
        # Events loaded in whole batches of every template (each matches the filters in
        # the same share). Not `size`: the single-event rounds count towards the log's
        # size, yet hold a given template only if they ran long enough to reach it.
        self.batched = 0
        self.methods: list[str] = []

    def grow_to(self, size: int) -> None:
        missing = -(-(size - self.size) // 1000) * 1000  # whole batches, at least `size`
        if missing <= 0:
            return
        via = self.run.load_via
        if via == "auto":
            # In-process is no faster here (RecordEvents itself is the bottleneck), and
            # HTTP also proves the service takes a million events without a non-2xx.
            via = "http"
        started = time.perf_counter()
        if via == "http":
            self._over_http(missing)
        else:
            self._in_process(missing)
        seconds = time.perf_counter() - started
        self.size += missing
        self.batched += missing
        how = "over HTTP (batches of 1000)" if via == "http" else "in-process (RecordEvents)"
        note = f"{missing:,} events {how} at {missing / seconds:,.0f}/s"
        if self.backend == "postgres" and _analyze_unless_autovacuum(self.server.database_url):
            note += ", then ANALYZE (autovacuum is off on this server)"
        note += _write_back(self.backend, self.server.database_url)
        self.methods.append(note)
        log(f"{self.backend}: loaded {note}")

    def _over_http(self, count: int) -> None:
        """Batches of 1000 until `count` events are acknowledged (a failed batch is counted
        in the ledger, then sent again under new ids); at most three rounds."""
        # Exact counts need the Python generator, whatever measures: this is not a figure.
        missing = count
        for attempt in range(3):
            spec = self.run.spec(
                self.server,
                "POST",
                "/v1/events",
                self.run.profile.load_connections,
                batch=1000,
                tag=f"L{self.size}x{attempt}x",
                duration_s=1800,
                max_requests=missing // 1000,
            )
            result = run_load(spec, "python")
            _record(self.ledger, result, f"loading {count:,} events, round {attempt + 1}")
            missing -= len(result.acked_ids)
            if missing <= 0:
                return
        raise RuntimeError(f"loading: {missing} events still unacknowledged after 3 rounds")

    def _in_process(self, count: int) -> None:
        prefix = self.run.prefix(f"I{self.size}x")
        ctx = multiprocessing.get_context("spawn")
        results = ctx.Queue()
        proc = ctx.Process(
            target=_record_in_process, args=(self.server.database_url, prefix, count, results)
        )
        proc.start()
        outcome = results.get(timeout=3600)
        proc.join(timeout=60)
        self.ledger.add_acked(make_id(prefix, 0, n) for n in range(1, outcome["done"] + 1))
        if outcome.get("error"):
            raise RuntimeError(f"in-process loading failed: {outcome['error']}")


def _analyze_unless_autovacuum(database_url: str) -> bool:
    """Do what autovacuum would have done after a load, where it is off; True if it was.

    With autovacuum off (as on some test machines) the planner keeps the statistics of
    an empty table, and a page of `q` over 10^6 events took a second. A deployment runs
    with autovacuum on, PostgreSQL's default; the README says to keep it so.
    """
    import psycopg

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
        if row is not None and row[0] == "on":
            return False
        conn.execute("ANALYZE")
    return True


def _write_back(backend: str, database_url: str) -> str:
    """Finish writing the load back to the database files before anything is measured.

    PostgreSQL wrote a load of 9x10^5 events back in checkpoints that ran through the
    measurements after it (its log: 540 MB of WAL a checkpoint, one spread over 108 s), so
    the pages at 10^6 paid for the load, not for the log's size. A log at rest has no such
    write-back. Returns the note for the table ("" when there was nothing to do).
    """
    if backend == "postgres":
        import psycopg

        with psycopg.connect(database_url, autocommit=True) as conn:
            try:
                conn.execute("CHECKPOINT")
            except psycopg.errors.InsufficientPrivilege:
                return ", no CHECKPOINT (needs superuser or pg_checkpoint)"
        return ", then CHECKPOINT"
    path = make_url(database_url).database
    if not path:
        return ""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        busy = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
    return ", then wal_checkpoint(TRUNCATE)" + (" (busy)" if busy else "")


def _record_in_process(database_url: str, prefix: str, count: int, results: Any) -> None:
    """In a child process: the service's own use case, in batches of 1000 (one txn each)."""
    done = 0
    try:
        from audit.container import build_container
        from audit.domain.validation import parse_event
        from audit.settings import Settings

        container = build_container(Settings(database_url=database_url))
        record = container.record_events()
        for start in range(1, count + 1, 1000):
            stop = min(start + 1000, count + 1)
            record(
                TENANT,
                [
                    parse_event(template_document(n % TEMPLATE_COUNT, make_id(prefix, 0, n)))
                    for n in range(start, stop)
                ],
            )
            done = stop - 1
        results.put({"done": done})
    except Exception as exc:  # the parent reports it and stops the run
        results.put({"done": done, "error": f"{type(exc).__name__}: {exc}"})


QUERIES = {
    "actor_id page": f"/v1/events?actor_id={FILTER_ACTOR_ID}&limit=50",
    "q search": f"/v1/events?q={quote(SEARCH_QUERY)}&limit=50",
    # The worst case for a scan: nothing matches, so every event is looked at.
    "q no match": f"/v1/events?q={quote(NO_MATCH_QUERY)}&limit=50",
}


def _check_page(
    run: Run, server: AuditServer, name: str, path: str, size: int, batched: int
) -> None:
    """The page must hold what the filter asks for, or its speed means nothing.

    Every loaded batch holds each template once, so of the `batched` events loaded in
    batches at least 1/1000 match `q` and 1/200 the actor (more from the single-event
    rounds, if they reached the template): a full page, or all of them and no cursor.
    (Counting from the log's `size` instead expected one match too many whenever a
    single-event round, counted in the size, stopped short of the `q` template.)
    """
    status, body = get(server.port, path, server.token)
    share = ACTOR_SELECTIVITY if name == "actor_id page" else SELECTIVITY
    at_least = 0 if name == "q no match" else min(50, round(batched * share))
    problem = None
    if status != 200:
        problem = f"answered {status}: {body[:200]!r}"
    else:
        page = orjson.loads(body)
        events = page["events"]
        if name == "actor_id page":
            wrong = [e for e in events if e["actor"]["id"] != FILTER_ACTOR_ID]
        else:
            wrong = [e for e in events if SEARCH_WORD not in (e["description"] or "").lower()]
        complete = len(events) == 50 or page["next_cursor"] is None
        if name == "q no match":
            wrong = events
        if wrong or len(events) < at_least or not complete:
            problem = (
                f"{len(events)} events ({len(wrong)} not matching, next_cursor "
                f"{page['next_cursor']!r}), at least {at_least} expected"
            )
    if problem:
        run.failures.append(f"{name} at {size:,}: {problem}")
        log(f"WRONG RESULT {name} at {size:,}: {problem}")


# Measured at one connection too: there p50 is the time one page takes to serve, where
# at 16 connections on 2 cores it is mostly time spent queued behind the others.
LATENCY_QUERIES = ("actor_id page", "q search")


def section_query(
    run: Run, backend: str, server: AuditServer, data: DataSet, ledger: Ledger
) -> None:
    p = run.profile
    p50s: dict[tuple[str, int, int], float] = {}  # (query, connections, size) -> p50 ms
    for size in p.query_sizes:
        data.grow_to(size)
        for name, path in QUERIES.items():
            _check_page(run, server, name, path, size, data.batched)
            for conns in (p.query_connections, 1):
                if conns == 1 and name not in LATENCY_QUERIES:
                    continue
                flask = run.flask_result("get", conns)
                spec = run.spec(server, "GET", path, conns)
                result, cores = run.measure(server, spec, ledger)
                p50s[name, conns, size] = result.p50_ms
                log(
                    f"{backend}: {name} at {size:,} x{conns}: p50 {result.p50_ms:.1f} ms, "
                    f"p99 {result.p99_ms:.1f} ms, {result.rps:,.0f} req/s"
                )
                what = f"{name} @{_size(size)}, {_conns(conns)}"
                base = "minimal Flask GET"
                notes = _notes(result, cores)
                run.rows += [
                    Row(
                        "3", backend, what + ", p50", result.p50_ms, "ms", base, flask.p50_ms, notes
                    ),
                    Row("3", backend, what + ", p99", result.p99_ms, "ms", base, flask.p99_ms),
                    Row("3", backend, what + ", throughput", result.rps, "req/s", base, flask.rps),
                ]
        _single_at_size(run, backend, server, data, ledger, size)
    _query_ratios(run, backend, p50s)


def _size(size: int) -> str:
    return f"{size:.0e}".replace("+0", "").replace("+", "")


def _conns(count: int) -> str:
    return f"{count} conn" if count == 1 else f"{count} conns"


def _query_ratios(run: Run, backend: str, p50s: dict[tuple[str, int, int], float]) -> None:
    """The rows the targets read: p50 at the largest size against the smallest, and q's
    p50 against the page's at the largest size."""
    sizes = sorted({size for _, _, size in p50s})
    small, large = sizes[0], sizes[-1]
    for (name, conns, size), p50 in sorted(p50s.items()):
        if size != large or small == large:
            continue
        what = f"{name} p50 @{_size(large)} vs @{_size(small)}, {_conns(conns)}"
        base = f"p50 @{_size(small)}"
        run.rows.append(Row("3", backend, what, p50, "ms", base, p50s[name, conns, small]))
    for conns in sorted({conns for _, conns, _ in p50s}):
        page = p50s.get(("actor_id page", conns, large))
        q = p50s.get(("q search", conns, large))
        if page is not None and q is not None:
            what = f"q search p50 vs actor_id page p50 @{_size(large)}, {_conns(conns)}"
            run.rows.append(Row("3", backend, what, q, "ms", "actor_id page p50", page))


def _single_at_size(
    run: Run, backend: str, server: AuditServer, data: DataSet, ledger: Ledger, size: int
) -> None:
    """Single-event ingest at one connection on a log of `size` events: does an append
    cost more as the log grows?"""
    spec = run.spec(server, "POST", "/v1/events", 1, batch=0, tag=f"G{size}x")
    before = log_size(server)
    result, cores = run.measure(server, spec, ledger)
    data.size = log_size(server)
    flask = run.flask_result("post", 1)
    log(f"{backend}: single ingest x1 on a log of {before:,}: {result.rps:,.0f} req/s")
    run.rows.append(
        Row(
            "2",
            backend,
            f"single-event ingest, 1 conn, log @{_size(size)}",
            result.rps,
            "req/s",
            "minimal Flask POST",
            flask.rps,
            _notes(result, cores, before),
        )
    )


def _export_and_check(
    run: Run, backend: str, server: AuditServer, ledger: Ledger, measured: bool
) -> None:
    path = run.tmp / f"export-{backend}-{ledger.server}.ndjson"
    result = export_to_file(server, path)
    try:
        if result.status != 200:
            raise RuntimeError(
                f"{backend}/{ledger.server}: GET /v1/export answered {result.status}: "
                f"{path.read_bytes()[:300]!r}"
            )
        check = check_export(path, ledger.acked)
    finally:
        path.unlink(missing_ok=True)
    log(
        f"{backend}/{ledger.server}: export {result.lines:,} events in {result.seconds:.1f}s "
        f"({result.status}); {check.lost} acknowledged missing"
    )
    if not check.ok:
        detail = check.first_problem or f"lost e.g. {check.lost_examples}"
        run.failures.append(
            f"{backend}/{ledger.server}: {check.lost} acknowledged events missing, "
            f"{check.seq_problems} seq and {check.chain_problems} chain problems ({detail})"
        )
    run.rows.append(
        Row(
            "5",
            backend,
            f"{ledger.server} server: acknowledged events missing from export",
            check.lost,
            "count",
            "must be 0",
            None,
            f"{len(ledger.acked):,} acknowledged, {check.exported:,} exported; "
            f"seq gaps {check.seq_problems}, chain breaks {check.chain_problems}",
            "OK" if check.ok else "FAIL",
        )
    )
    if measured:
        floor = baselines.raw_export(server.database_url, TENANT)
        log(f"{backend}: baseline {floor.name}: {floor.rate:,.0f} events/s")
        run.rows += [
            Row(
                "4",
                backend,
                f"export ndjson of {_size(result.lines)} events",
                result.lines / result.seconds,
                "events/s",
                floor.name,
                floor.rate,
                f"{result.bytes / 2**20:,.0f} MiB in {result.seconds:.1f}s; "
                f"the baseline read {floor.count:,} events in {floor.seconds:.1f}s",
            ),
            Row(
                "4",
                backend,
                "export: peak RSS growth of a worker",
                result.peak_rss_growth_kib / 1024,
                "MiB",
                "-",
                None,
                result.rss_method,
            ),
        ]


def _integrity_row(run: Run, backend: str, ledger: Ledger) -> None:
    bad = ledger.non_2xx + ledger.transport_errors + ledger.bad_acks
    if bad:
        run.failures.append(
            f"{backend}/{ledger.server}: {ledger.non_2xx} non-2xx "
            f"{dict(sorted(ledger.statuses.items()))}, "
            f"{ledger.transport_errors} transport errors, {ledger.bad_acks} odd acknowledgements"
        )
    statuses = ", ".join(f"{s}: {n:,}" for s, n in sorted(ledger.statuses.items()))
    run.rows.append(
        Row(
            "5",
            backend,
            f"{ledger.server} server: non-2xx answers + transport errors",
            bad,
            "count",
            "must be 0",
            None,
            "; ".join([f"{ledger.requests:,} requests ({statuses})", *ledger.load_notes]),
            "OK" if bad == 0 else "FAIL",
        )
    )


def run_backend(run: Run, backend: str, db_url: str) -> None:
    if {"batch", "single", "client"} & set(run.sections):
        ledger = Ledger(backend, "ingest")
        server = _start_server(run, db_url, backend, "ingest")
        try:
            # Single events first, on a nearly empty log: append cost may grow with it.
            if "single" in run.sections:
                section_single(run, backend, db_url, server, ledger)
            if "batch" in run.sections:
                section_batch(run, backend, db_url, server, ledger)
            if "client" in run.sections:
                section_client(run, backend, server, ledger)
            _export_and_check(run, backend, server, ledger, measured=False)
            _integrity_row(run, backend, ledger)
        finally:
            _report_log(run, server)
            server.stop()
    if {"query", "export"} & set(run.sections):
        with _second_database(backend, db_url, run.tmp) as read_url:
            ledger = Ledger(backend, "query")
            server = _start_server(run, read_url, backend, "query")
            try:
                data = DataSet(run, backend, server, ledger)
                if "query" in run.sections:
                    section_query(run, backend, server, data, ledger)
                data.grow_to(run.profile.export_size)
                if "export" in run.sections:
                    # Fresh workers, so the RSS growth is the export's own, not what the
                    # loading's 1000-event requests left in the heap.
                    _report_log(run, server)
                    server.stop()
                    server = _start_server(run, read_url, backend, "export", server.token)
                _export_and_check(run, backend, server, ledger, measured="export" in run.sections)
                _integrity_row(run, backend, ledger)
                run.rows.append(
                    Row(
                        "3",
                        backend,
                        "data loaded for sections 3-4",
                        data.size,
                        "count",
                        "-",
                        None,
                        "; ".join(data.methods),
                    )
                )
            finally:
                _report_log(run, server)
                server.stop()


def _report_log(run: Run, server: GunicornProcess) -> None:
    problems = server.log_problems()
    if problems:
        log(
            f"{server.name} logged {len(problems)} problem lines, e.g. {problems[0]} "
            f"({server.log_path})"
        )


@contextmanager
def _second_database(backend: str, db_url: str, tmp: Path) -> Iterator[str]:
    """The query server gets its own fresh database, so its sizes are exact."""
    if backend == "sqlite":
        folder = tmp / "query"
        folder.mkdir(exist_ok=True)
        with sqlite_database(folder) as url:
            yield url
    else:
        with postgres_database(_admin_url()) as url:
            yield url


def _admin_url() -> str:
    return os.environ["AUDIT_TEST_POSTGRES_URL"]


def _backends(wanted: str | None) -> list[str]:
    if wanted:
        return [b.strip() for b in wanted.split(",") if b.strip()]
    return ["sqlite", "postgres"] if os.environ.get("AUDIT_TEST_POSTGRES_URL") else ["sqlite"]


def _sections(only: list[str] | None) -> tuple[str, ...]:
    if not only:
        return SECTIONS
    chosen = {s.strip() for item in only for s in item.split(",") if s.strip()}
    unknown = chosen - set(SECTIONS)
    if unknown:
        raise SystemExit(f"--only: unknown section(s) {sorted(unknown)}; choose from {SECTIONS}")
    return tuple(s for s in SECTIONS if s in chosen)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the < 2 minute run for CI")
    parser.add_argument(
        "--out", type=Path, default=Path("bench-results"), help="where to write JSON and markdown"
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="SECTION",
        help=f"one of {', '.join(SECTIONS)} (repeatable, or comma-separated)",
    )
    parser.add_argument(
        "--backends",
        help="comma-separated: sqlite, postgres "
        "(default: sqlite, and postgres when AUDIT_TEST_POSTGRES_URL is set)",
    )
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="auto: wrk when on PATH",
    )
    parser.add_argument(
        "--load-via",
        choices=("auto", "http", "inprocess"),
        default="auto",
        help="how sections 3-4 load data (auto: HTTP, batches of 1000, 2 connections)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    backends = _backends(args.backends)
    if "postgres" in backends and not os.environ.get("AUDIT_TEST_POSTGRES_URL"):
        raise SystemExit("the postgres backend needs AUDIT_TEST_POSTGRES_URL")
    generator = choose_generator(args.generator)
    tmp = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    run = Run(
        profile, generator, args.workers, args.threads, args.load_via, _sections(args.only), tmp
    )
    started = time.time()
    meta: dict[str, Any] = {
        "profile": profile.name,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "generator": describe_generator(generator),
        "cores": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "python": platform.python_version(),
        "workers": args.workers,
        "threads": args.threads,
        "backends": backends,
        "sections": run.sections,
    }
    log(f"{profile.name} run {run.run_id}: {meta['generator']}; backends {backends}; temp {tmp}")
    crashed = None
    try:
        with run.stack:
            for backend in backends:
                if backend == "sqlite":
                    with sqlite_database(tmp) as url:
                        run_backend(run, backend, url)
                elif backend == "postgres":
                    with postgres_database(_admin_url()) as url:
                        run_backend(run, backend, url)
                else:
                    raise SystemExit(f"unknown backend {backend!r}")
    except Exception as exc:  # report what ran, and say why the rest did not
        crashed = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    order = {name: i for i, name in enumerate(backends)}
    run.rows.sort(key=lambda row: (order.get(row.backend, len(order)), row.section))
    meta["seconds"] = round(time.time() - started, 1)
    meta["loadavg_after"] = os.getloadavg()
    meta["failures"] = run.failures
    meta["crashed"] = crashed
    text = _render(meta, run)
    print(text)
    stem = f"bench-{profile.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    for path in write_results(args.out, stem, meta, run.rows, text):
        log(f"wrote {path}")
    if crashed is None and not run.failures:
        shutil.rmtree(tmp, ignore_errors=True)
    if crashed:
        log(f"the benchmark did not finish: {crashed} (logs in {tmp})")
        return 2
    if run.failures:
        for failure in run.failures:
            log(f"FAIL: {failure}")
        return 1
    return 0


def _render(meta: dict[str, Any], run: Run) -> str:
    cores = meta["cores"]
    lines = [
        f"audit-log-service benchmark ({meta['profile']}), {meta['started']}, {meta['seconds']}s",
        f"load generator: {meta['generator']}; it shares the {cores} cores with the server "
        "(the 'gen'/'server' notes give each one's CPU use in cores)",
        f"servers: gunicorn gthread, {meta['workers']} workers x {meta['threads']} threads, "
        f"on 127.0.0.1; load average before {meta['loadavg_before'][0]:.2f}, "
        f"after {meta['loadavg_after'][0]:.2f}",
        "ratio = ours / baseline (throughput: below 1 is slower than the baseline; "
        "latency: above 1 is slower)",
        "",
        markdown_table(run.rows),
    ]
    if run.failures or meta["crashed"]:
        lines.append("")
        lines += [f"FAIL: {f}" for f in run.failures]
        if meta["crashed"]:
            lines.append(f"DID NOT FINISH: {meta['crashed']}")
    return "\n".join(lines)
