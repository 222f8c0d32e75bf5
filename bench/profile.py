"""`python -m bench.profile SCENARIO`: py-spy profiles of the real server under real load.

Starts `audit serve` (gunicorn gthread) on loopback on a temporary SQLite file, or on a
fresh database of the PostgreSQL server that --database-url names, loads events in-process
for the read scenarios, drives the load with wrk (the Python generator where wrk is
missing), and meanwhile records every gunicorn worker with `py-spy record --format raw`.
Then prints where the samples went: by function (self and inclusive) and by layer, beside
the load's req/s and p50, and writes the report and the raw stacks to --out.
Exits 2 if py-spy is missing or cannot attach, 1 if the service answered anything but 2xx
or a wrong page.
"""

from __future__ import annotations

import argparse
import http.client
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from bench import run as bench_run
from bench.checks import Ledger
from bench.load import Generator, LoadSpec, choose_generator, describe_generator, run_load
from bench.servers import HOST, REPO, AuditServer, postgres_database, sqlite_database

# ------------------------------------------------------------------ what to profile


@dataclass(frozen=True)
class Scenario:
    """One kind of request, and how hard and on how big a log to drive it by default."""

    what: str
    method: str
    path: str
    connections: int
    batch: int = -1  # as LoadSpec.batch: -1 no body, 0 one event per POST, n per POST
    size: int = 0  # events loaded (in-process) before the load


SCENARIOS = {
    "single": Scenario("single-event POST /v1/events", "POST", "/v1/events", 64, batch=0),
    "batch": Scenario(
        "POST /v1/events with 1000 events per request", "POST", "/v1/events", 4, batch=1000
    ),
    "page": Scenario(
        "GET /v1/events?actor_id=...&limit=50 (bench/run.py QUERIES['actor_id page'])",
        "GET",
        bench_run.QUERIES["actor_id page"],
        16,
        size=100_000,
    ),
    "q": Scenario(
        "GET /v1/events?q=...&limit=50 (bench/run.py QUERIES['q search'])",
        "GET",
        bench_run.QUERIES["q search"],
        16,
        size=100_000,
    ),
    "export": Scenario(
        "GET /v1/export?format=ndjson, streamed whole, back to back",
        "GET",
        "/v1/export?format=ndjson",
        1,
        size=100_000,
    ),
}
PAGE_CHECKS = {"page": "actor_id page", "q": "q search"}  # bench_run._check_page names

# ------------------------------------------------------------------ layers

# Each sample counts to the innermost frame of its stack that this table names; a frame
# it names by no fragment (stdlib helpers: datetime, re, logging, ...) counts to its
# caller, and a stack with no named frame at all is "other". A fragment is a substring
# of py-spy's frame text, `function (path/to/file.py:line)`; the first category whose
# fragment matches wins, so the specific ones come first. C extensions (sqlite3's C
# module, orjson, hashlib) have no frames of their own without `py-spy --native`: their
# time counts to the Python function that called them. Hence the driver's category also
# names SQLAlchemy's few functions that call into the DBAPI: a sample there is a sample
# in the driver's C code (and so in SQLite itself, which runs in-process).
OTHER = "other"
NO_FRAME = "(no Python frame)"
WAITS = "threading/locks/idle (waits)"
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        WAITS,
        (
            "Condition.wait (threading.py",  # the group commit's waiters, woken together
            "Condition.notify (threading.py",
            "Condition.notify_all (threading.py",
            "Condition.__enter__ (threading.py",
            "Condition.__exit__ (threading.py",
            "Event.wait (threading.py",
            "Semaphore.acquire (threading.py",
            "Thread.join (threading.py",
            "_wait_for_tstate_lock (threading.py",
            "(queue.py",
            "_worker (concurrent/futures/thread.py",  # a gthread thread between requests
            "WriterQueue.acquire (audit/adapters/sql/engine.py",  # the SQLite writer lock
        ),
    ),
    (
        "sqlite3/psycopg driver",
        (
            "(sqlite3/",
            "(psycopg/",
            "(psycopg_binary/",
            "(psycopg_pool/",
            "DefaultDialect.do_execute (sqlalchemy/engine/default.py",
            "DefaultDialect.do_executemany (sqlalchemy/engine/default.py",
            "DefaultDialect.do_execute_no_params (sqlalchemy/engine/default.py",
            "DefaultDialect.do_commit (sqlalchemy/engine/default.py",
            "DefaultDialect.do_rollback (sqlalchemy/engine/default.py",
            ".fetchall_for_returning (sqlalchemy/engine/default.py",
            "CursorFetchStrategy.fetchone (sqlalchemy/engine/cursor.py",  # and its Buffered*
            "CursorFetchStrategy.fetchmany (sqlalchemy/engine/cursor.py",
            "CursorFetchStrategy.fetchall (sqlalchemy/engine/cursor.py",
            "._buffer_rows (sqlalchemy/engine/cursor.py",
            "Cursor.execute (sqlalchemy/dialects/sqlite/pysqlite.py",  # sqlite3.Cursor subclass
            "Cursor.executemany (sqlalchemy/dialects/sqlite/pysqlite.py",
        ),
    ),
    ("sqlalchemy", ("sqlalchemy/",)),
    ("flask_httpauth", ("flask_httpauth",)),
    ("flask/werkzeug", ("flask/", "werkzeug/", "blinker/")),
    ("gunicorn", ("gunicorn/",)),
    ("dependency_injector", ("dependency_injector/",)),  # @inject's wiring, per request
    ("audit.domain", ("audit/domain/",)),
    ("audit.application", ("audit/application/",)),
    ("audit.adapters", ("audit/adapters/",)),
    ("audit.entrypoints", ("audit/entrypoints/",)),
    ("audit (container, verify)", ("audit/",)),
    ("json (orjson/rfc8785)", ("orjson", "rfc8785/", "(json/")),
    ("prometheus", ("prometheus_client/",)),
    ("socket/selectors (network I/O)", ("(socket.py", "(selectors.py", "(ssl.py")),
)
CATEGORIES = (*(name for name, _ in LAYERS), OTHER)

# ------------------------------------------------------------------ parsing (pure)

Stack = tuple[str, ...]
_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>.*?)(?::\d+)?\)$")


def parse_collapsed(text: str) -> list[tuple[Stack, int]]:
    """py-spy's raw output (Brendan Gregg's collapsed stacks), one `frame;frame;... count`
    a line, outermost frame first, into (frames, samples) pairs."""
    stacks: list[tuple[Stack, int]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            continue
        frames, _, count = line.rpartition(" ")
        if not count.isdigit():
            raise ValueError(f"line {number} is not 'frame;frame;... count': {line[:120]!r}")
        # A bare count: samples of a thread with no Python frame at that moment.
        stacks.append((tuple(frames.split(";")) if frames else (), int(count)))
    return stacks


def function_of(frame: str) -> str:
    """The frame without its line number, `function (file)`: all lines of one function."""
    found = _FRAME.match(frame)
    return f"{found['function']} ({found['file']})" if found else frame


def frame_category(frame: str) -> str | None:
    """The first category of LAYERS with a fragment in the frame; None if none names it."""
    for name, fragments in LAYERS:
        if any(fragment in frame for fragment in fragments):
            return name
    return None


def layer_of(stack: Stack) -> str:
    """The category of the innermost frame that LAYERS names, else OTHER."""
    for frame in reversed(stack):
        name = frame_category(frame)
        if name is not None:
            return name
    return OTHER


@dataclass(frozen=True)
class Summary:
    """Samples by function (self: innermost frame; inclusive: anywhere in the stack, once
    per stack) and by layer."""

    total: int
    self_samples: dict[str, int]
    inclusive: dict[str, int]
    layers: dict[str, int]


def summarize(stacks: Iterable[tuple[Stack, int]]) -> Summary:
    total = 0
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    layers: Counter[str] = Counter()
    for frames, count in stacks:
        total += count
        own[function_of(frames[-1]) if frames else NO_FRAME] += count
        for function in {function_of(frame) for frame in frames}:
            inclusive[function] += count
        layers[layer_of(frames)] += count
    return Summary(total, dict(own), dict(inclusive), dict(layers))


def percent(part: int, total: int) -> float:
    return 100.0 * part / total if total else 0.0


def _ranked(counts: dict[str, int], top: int) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top]


def render_summary(summary: Summary, top: int) -> list[str]:
    """The three markdown tables: by layer (all categories, adding up to 100%), and the
    top functions by self and by inclusive samples."""
    total = summary.total
    lines = [
        "## By layer (innermost frame that the layer table names)",
        "",
        "| layer | samples | % |",
        "|---|---:|---:|",
    ]
    order = {name: i for i, name in enumerate(CATEGORIES)}
    rows = sorted(CATEGORIES, key=lambda name: (-summary.layers.get(name, 0), order[name]))
    for name in rows:
        n = summary.layers.get(name, 0)
        lines.append(f"| {name} | {n:,} | {percent(n, total):.1f} |")
    lines.append(f"| total | {sum(summary.layers.values()):,} | {100.0 if total else 0:.1f} |")
    lines += [
        "",
        f"## Top {top} functions by self samples (innermost frame: the function's own code)",
        "",
        "| % | samples | function (file) | its layer (-: counts to its caller's) |",
        "|---:|---:|---|---|",
    ]
    for function, n in _ranked(summary.self_samples, top):
        category = frame_category(function) or "-"
        lines.append(f"| {percent(n, total):.1f} | {n:,} | {function} | {category} |")
    lines += [
        "",
        f"## Top {top} functions by inclusive samples (anywhere in the stack, once per "
        "stack: the function and what it calls)",
        "",
        "| % | samples | function (file) |",
        "|---:|---:|---|",
    ]
    for function, n in _ranked(summary.inclusive, top):
        lines.append(f"| {percent(n, total):.1f} | {n:,} | {function} |")
    return lines


# ------------------------------------------------------------------ py-spy


class CannotProfile(Exception):
    """py-spy is missing or may not attach: the profile cannot run (exit 2)."""


_INSTALL = (
    "install it with `pip install py-spy` (into this venv: "
    f"{Path(sys.executable).parent / 'pip'} install py-spy); it is no dependency of the "
    "project"
)
_PTRACE = (
    "py-spy reads the worker's memory, which needs ptrace permission over it: run as root "
    "(sudo), or set `sudo sysctl kernel.yama.ptrace_scope=0` to let a user attach to its "
    "own processes, or in a container add the SYS_PTRACE capability "
    "(docker run --cap-add SYS_PTRACE)"
)


def find_py_spy() -> str:
    """py-spy beside this Python (a venv's bin) or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    found = shutil.which("py-spy")
    if found is None:
        raise CannotProfile(
            f"py-spy is not installed (not beside {sys.executable} nor on PATH): {_INSTALL}"
        )
    return found


def py_spy_version(spy: str) -> str:
    out = subprocess.run(  # noqa: S603 - py-spy as found, fixed arguments
        [spy, "--version"], capture_output=True, text=True, check=False
    )
    return out.stdout.strip() or "py-spy (version unknown)"


def check_attach(spy: str, pid: int) -> None:
    """`py-spy dump` once, so a missing permission shows before minutes of loading."""
    out = subprocess.run(  # noqa: S603 - py-spy as found, our worker's pid
        [spy, "dump", "--pid", str(pid), "--nonblocking"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if out.returncode != 0:
        raise CannotProfile(
            f"py-spy cannot attach to the server's worker (pid {pid}): "
            f"{_last_lines(out.stderr or out.stdout)}. {_PTRACE}"
        )


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if "Stack backtrace" not in line]
    return " / ".join(lines[:n]) or "(no message)"


@dataclass(frozen=True)
class Recording:
    pid: int
    path: Path
    samples: int
    errors: int


def start_recording(
    spy: str, pid: int, path: Path, seconds: int, rate: int, *, gil: bool, idle: bool
) -> subprocess.Popen[str]:
    cmd = [
        spy,
        "record",
        "--pid",
        str(pid),
        "--rate",
        str(rate),
        "--format",
        "raw",
        "--output",
        str(path),
        "--duration",
        str(seconds),
        "--nonblocking",
    ]
    if gil:
        cmd.append("--gil")
    if idle:
        cmd.append("--idle")
    return subprocess.Popen(  # noqa: S603 - py-spy as found, arguments built here
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish_recording(proc: subprocess.Popen[str], pid: int, path: Path, seconds: int) -> Recording:
    try:
        output, _ = proc.communicate(timeout=seconds + 60)
    except subprocess.TimeoutExpired:
        proc.kill()
        output, _ = proc.communicate()
    if proc.returncode != 0 or not path.exists():
        message = _last_lines(output)
        if re.search(r"permission|not permitted|ptrace", output, re.IGNORECASE):
            message += f". {_PTRACE}"
        raise CannotProfile(f"py-spy record of worker {pid} failed ({proc.returncode}): {message}")
    found = re.search(r"Samples: (\d+) Errors: (\d+)", output)
    samples, errors = (int(found[1]), int(found[2])) if found else (-1, -1)
    return Recording(pid, path, samples, errors)


# ------------------------------------------------------------------ the load


@dataclass(frozen=True)
class Throughput:
    """What the load achieved while the profile ran, for the report's header."""

    generator: str
    connections: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    failures: list[str]
    extra: str = ""
    requests_are: str = "requests"
    p99_is: str = "p99"

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _log(message: str) -> None:
    print(f"[profile {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


LEAD_S = 1.5  # the load runs this long before py-spy starts, and ends after it
WARMUP_S = 1.0


def http_load(
    server: AuditServer, spec: LoadSpec, generator: Generator, begin: threading.Event
) -> Throughput:
    """run_load in this thread; `begin` is set once the load is under way."""
    timer = threading.Timer(LEAD_S, begin.set)
    timer.start()
    result = run_load(spec, generator)
    timer.cancel()
    begin.set()
    failures = []
    if result.failures:
        failures.append(
            f"{result.non_2xx} non-2xx {dict(sorted(result.statuses.items()))}, "
            f"{result.transport_errors} transport errors, {result.bad_acks} odd acknowledgements"
        )
    extra = ""
    if spec.batch > 0:
        extra = f"{len(result.acked_ids) / result.seconds:,.0f} events/s acknowledged"
    return Throughput(
        result.generator,
        result.connections,
        result.requests,
        result.seconds,
        result.p50_ms,
        result.p99_ms,
        failures,
        extra,
    )


def export_load(
    server: AuditServer, connections: int, seconds: float, expected: int, begin: threading.Event
) -> Throughput:
    """`connections` clients, each streaming the whole export back to back (at least once)
    until `seconds` after `begin`; each checks the status and the count of lines."""
    runs: list[tuple[int, int, int, float]] = []  # status, lines, bytes, seconds
    lock = threading.Lock()
    stop_at = time.perf_counter() + LEAD_S + seconds

    def client() -> None:
        while True:
            conn = http.client.HTTPConnection(HOST, server.port, timeout=600)
            started = time.perf_counter()
            lines = size = 0
            try:
                conn.request(
                    "GET",
                    SCENARIOS["export"].path,
                    headers={"Authorization": f"Bearer {server.token}"},
                )
                response = conn.getresponse()
                while chunk := response.read(1 << 20):
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                status = response.status
            except OSError:
                status = 0
            finally:
                conn.close()
            with lock:
                runs.append((status, lines, size, time.perf_counter() - started))
            if time.perf_counter() >= stop_at:
                return

    started = time.perf_counter()
    clients = [threading.Thread(target=client, daemon=True) for _ in range(connections)]
    for thread in clients:
        thread.start()
    time.sleep(LEAD_S)
    begin.set()
    for thread in clients:
        thread.join()
    elapsed = time.perf_counter() - started
    durations = sorted(r[3] for r in runs)
    failures = [
        f"an export answered {status} with {lines:,} lines ({expected:,} expected)"
        for status, lines, _, _ in runs
        if status != 200 or lines != expected
    ]
    events, size = sum(r[1] for r in runs), sum(r[2] for r in runs)
    return Throughput(
        "Python http.client, 1 MiB reads",
        connections,
        len(runs),
        elapsed,
        statistics.median(durations) * 1000,
        durations[-1] * 1000,
        failures,
        f"{events / elapsed:,.0f} events/s, {size / 2**20 / elapsed:,.1f} MiB/s",
        requests_are="exports",
        p99_is="slowest",
    )


# ------------------------------------------------------------------ the run


@contextmanager
def database(url: str | None, tmp: Path) -> Iterator[tuple[str, str]]:
    """(database URL, its description): a temporary SQLite file, or a fresh database on
    the PostgreSQL server `url` names (dropped after), or the SQLite file `url` names."""
    if url is None:
        with sqlite_database(tmp) as sqlite_url:
            yield sqlite_url, "SQLite, a temporary file"
    elif url.startswith(("postgresql://", "postgres://")):
        with postgres_database(url) as pg_url:
            name = urlsplit(pg_url).path.lstrip("/")
            yield pg_url, f"PostgreSQL, fresh database {name} (dropped after)"
    elif url.startswith("sqlite:///"):
        yield url, "SQLite, " + url.removeprefix("sqlite:///")
    else:
        raise SystemExit(
            "--database-url: postgresql://user@host:port/db (the profile makes a fresh "
            "database beside it) or sqlite:///new-file.db"
        )


@dataclass(frozen=True)
class Place:
    """Where one profile runs and writes."""

    url: str
    database: str  # a description of it
    out_dir: Path
    tmp: Path


@dataclass(frozen=True)
class Outcome:
    throughput: Throughput
    recordings: list[Recording]
    server_cores: float
    notes: list[str]
    failures: list[str]


def profile(args: argparse.Namespace, scenario: Scenario, spy: str, place: Place) -> Outcome:
    generator = choose_generator(args.generator)
    tmp = place.tmp
    notes = [f"database: {place.database}"]
    if args.scenario != "export":
        notes.append(f"load generator: {describe_generator(generator)}")
    with ExitStack() as stack:
        server = AuditServer(place.url, args.workers, args.threads, tmp / "audit-serve.log")
        stack.callback(server.stop)
        server.start()
        workers = server.workers()
        _log(f"audit serve on port {server.port}, workers {workers}")
        check_attach(spy, workers[0])
        # The bench's own state of a run, for its loader (DataSet) and page check only.
        run = bench_run.Run(
            profile=bench_run.FULL,
            generator=generator,
            workers=args.workers,
            threads=args.threads,
            load_via="inprocess",
            sections=(),
            tmp=tmp,
        )
        backend = "postgres" if place.url.startswith("postgres") else "sqlite"
        size = scenario.size if args.size is None else args.size
        data = bench_run.DataSet(run, backend, server, Ledger(backend, "profile"))
        if size:
            data.grow_to(size)
            size = bench_run.log_size(server)
            notes.append(f"data: {'; '.join(data.methods)}; the log holds {size:,} events")
        if args.scenario in PAGE_CHECKS:
            bench_run._check_page(
                run, server, PAGE_CHECKS[args.scenario], scenario.path, size, data.batched
            )
        connections = args.connections or scenario.connections
        begin = threading.Event()
        box: list[Throughput] = []
        crash: list[BaseException] = []
        if args.scenario == "export":

            def drive() -> None:
                box.append(export_load(server, connections, args.seconds, size, begin))

        else:
            spec = LoadSpec(
                port=server.port,
                path=scenario.path,
                token=server.token,
                connections=connections,
                duration_s=args.seconds + 2 * LEAD_S,
                method=scenario.method,
                batch=scenario.batch,
                id_prefix=f"p{os.getpid()}",
            )
            warm = replace(spec, duration_s=WARMUP_S, id_prefix=spec.id_prefix + "w")
            run_load(warm, generator)
            server.wait_idle()

            def drive() -> None:
                box.append(http_load(server, spec, generator, begin))

        def guarded() -> None:
            try:
                drive()
            except BaseException as exc:  # the main thread reports it
                crash.append(exc)
                begin.set()

        _log(f"{args.scenario}: load for ~{args.seconds}s, py-spy on {len(workers)} workers")
        loader = threading.Thread(target=guarded, daemon=True)
        loader.start()
        begin.wait()
        if crash:  # the load failed before it was under way: nothing to profile
            raise crash[0]
        cpu = server.cpu_seconds()
        started = time.perf_counter()
        paths = {pid: place.out_dir / f"py-spy-worker-{pid}.txt" for pid in workers}
        procs = {
            pid: start_recording(
                spy, pid, path, args.seconds, args.rate, gil=args.gil, idle=args.idle
            )
            for pid, path in paths.items()
        }
        recordings = [
            finish_recording(proc, pid, paths[pid], args.seconds) for pid, proc in procs.items()
        ]
        server_cores = (server.cpu_seconds() - cpu) / (time.perf_counter() - started)
        loader.join()
        if crash:
            raise crash[0]
        problems = server.log_problems()
        if problems:
            notes.append(f"the server logged {len(problems)} problem lines, e.g. {problems[0]}")
        throughput = box[0]
    failures = throughput.failures + [f"wrong page: {failure}" for failure in run.failures]
    return Outcome(throughput, recordings, server_cores, notes, failures)


def code_version(out_dir: Path) -> str:
    """The commit profiled, and whether src/ differed from it: a profile of edits in
    progress is not one of the commit, so their diff is kept beside the report."""
    git = shutil.which("git")
    if git is None:
        return "code: git not found, version unknown"

    def ask(*argv: str) -> str:
        out = subprocess.run(  # noqa: S603 - git as found, fixed arguments
            [git, "-C", str(REPO), *argv], capture_output=True, text=True, check=False
        )
        return out.stdout

    commit = ask("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = ask("status", "--porcelain", "--", "src").splitlines()
    if not changed:
        return f"code: commit {commit}, src/ as committed"
    diff = out_dir / "src-uncommitted.diff"
    diff.write_text(ask("diff", "HEAD", "--", "src"))
    return (
        f"code: commit {commit} plus uncommitted changes to {len(changed)} files under src/ "
        f"(their diff: {diff})"
    )


def render(
    args: argparse.Namespace,
    scenario: Scenario,
    spy_version: str,
    outcome: Outcome,
    loadavg_before: float,
    code: str,
) -> str:
    stacks = [
        stack for rec in outcome.recordings for stack in parse_collapsed(rec.path.read_text())
    ]
    summary = summarize(stacks)
    t = outcome.throughput
    per_worker = ", ".join(
        f"pid {r.pid}: {r.samples:,} samples, {r.errors} errors" for r in outcome.recordings
    )
    flags = (" --gil" if args.gil else "") + (" --idle" if args.idle else "")
    if args.idle:
        idle = (
            "Idle threads included (--idle): threads waiting on a lock, the GIL, a socket, "
            "a queue or fsync are sampled too."
        )
    else:
        idle = (
            "Idle threads are not sampled (py-spy's default, no --idle): py-spy keeps a "
            "thread's stack only when /proc shows the thread R, running or runnable, and "
            "leaves out threads asleep on a lock, the GIL, a socket or a queue (S) or on "
            "fsync (D). A thread just woken and waiting for a core is R, so on a busy 2-core "
            "machine wait lines (Condition.wait, the selector's poll) still take samples: "
            "those are threads being woken, not threads asleep. Run with --idle to count "
            "the sleeping ones too."
        )
    if args.gil:
        idle += " --gil: only samples of the thread holding the GIL."
    answers = "all as expected" if not outcome.failures else "FAILURES: "
    answers += "; ".join(outcome.failures)
    plural = "s" if t.connections > 1 else ""
    lines = [
        f"# Profile: {args.scenario}, {scenario.what}",
        "",
        f"- {time.strftime('%Y-%m-%d %H:%M:%S %z')}; {os.cpu_count()} cores; load average "
        f"before {loadavg_before:.2f}, after {os.getloadavg()[0]:.2f}",
        f"- server: audit serve, gunicorn gthread, {args.workers} workers x {args.threads} "
        f"threads, on 127.0.0.1; {code}",
        *(f"- {note}" for note in outcome.notes),
        f"- load ({t.generator}): {t.connections} connection{plural}, {t.seconds:.1f}s "
        "around the profile: "
        f"{t.requests:,} {t.requests_are}, {t.rps:,.1f} req/s, p50 {t.p50_ms:.1f} ms, "
        f"{t.p99_is} {t.p99_ms:.1f} ms" + (f"; {t.extra}" if t.extra else ""),
        f"- answers: {answers}",
        f"- server CPU while profiled: {outcome.server_cores:.2f} cores (master and workers)",
        f"- {spy_version}: record --rate {args.rate} --nonblocking{flags} for {args.seconds}s "
        f"on each worker ({per_worker}); {summary.total:,} samples in all (a sample is one "
        "thread's stack at one tick: threads running at once add one each)",
        f"- {idle}",
        "- A layer takes the samples whose innermost frame it names (LAYERS in "
        "bench/profile.py); frames it does not name (stdlib helpers) count to their caller. "
        "C code (sqlite3, orjson, hashlib) has no frames: it counts to the Python function "
        "that called it, so SQLAlchemy's calls into the DBAPI (do_execute, do_commit, the "
        "cursor fetches) count as the driver.",
        f"- raw stacks: {', '.join(str(r.path) for r in outcome.recordings)}",
        "",
        *render_summary(summary, args.top),
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    defaults = bench_run.parse_args([])  # the same workers and threads as `python -m bench`
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("scenario", choices=tuple(SCENARIOS))
    parser.add_argument("--seconds", type=int, default=15, help="py-spy's duration")
    parser.add_argument(
        "--size",
        type=int,
        help="events loaded in-process first (default: 100000 for page, q and export, "
        "0 for single and batch)",
    )
    parser.add_argument("--workers", type=int, default=defaults.workers)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument(
        "--connections",
        type=int,
        help="default: single 64, batch 4, page 16, q 16, export 1 (concurrent exports)",
    )
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    parser.add_argument("--top", type=int, default=25, help="functions in each top table")
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--gil", action="store_true", help="py-spy --gil: GIL holders only")
    parser.add_argument("--idle", action="store_true", help="py-spy --idle: waits too")
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server URL (a fresh database is made beside the one it names "
        "and dropped after); default: a temporary SQLite file",
    )
    parser.add_argument(
        "--generator", choices=("auto", "wrk", "python"), default="auto", help="auto: wrk"
    )
    args = parser.parse_args(argv)
    if args.seconds < 1 or args.top < 1 or args.rate < 1:
        parser.error("--seconds, --top and --rate must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenario = SCENARIOS[args.scenario]
    loadavg_before = os.getloadavg()[0]
    out_dir = args.out / f"profile-{args.scenario}-{time.strftime('%Y%m%d-%H%M%S')}"
    tmp = Path(tempfile.mkdtemp(prefix="audit-profile-"))
    try:
        spy = find_py_spy()
        version = py_spy_version(spy)
        out_dir.mkdir(parents=True, exist_ok=True)
        code = code_version(out_dir)  # before the server starts, which reads src/
        with database(args.database_url, tmp) as (url, description):
            outcome = profile(args, scenario, spy, Place(url, description, out_dir, tmp))
    except CannotProfile as exc:
        print(f"bench.profile: {exc}", file=sys.stderr)
        shutil.rmtree(out_dir, ignore_errors=True)  # no profile to keep
        shutil.rmtree(tmp, ignore_errors=True)
        return 2
    except (RuntimeError, OSError) as exc:  # the server or the load could not run
        print(f"bench.profile: could not run: {exc} (server log in {tmp})", file=sys.stderr)
        return 2
    text = render(args, scenario, version, outcome, loadavg_before, code)
    print(text)
    report = out_dir / "report.md"
    report.write_text(text + "\n")
    _log(f"wrote {report}, beside the raw py-spy stacks")
    if outcome.failures:
        _log(f"FAIL: the service's answers were not all as expected (server log in {tmp})")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
