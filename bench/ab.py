"""`python -m bench.ab OTHER`: this checkout's server against another's, in alternating runs.

The machine's speed drifts by 10-15% between runs of the same code, more than most
changes move a figure; a change is judged by runs of the two versions in turn, means over
the pairs. Each run starts `audit serve` with its defaults (or `--workers`, `--threads`)
on a fresh SQLite file (or, with `--database-url`, a fresh PostgreSQL database beside
the one it names), from this checkout's `src/` or OTHER's (a checkout of another
commit, e.g. made by `git worktree add /tmp/before HEAD~1`), drives one load with wrk
(the Python generator without it), and reads the server's CPU (master, workers, writer)
from /proc around the load. The runs go A B B A, so a drift during a pair favours
neither. OTHER may be this checkout, with `--other-threads` or `--other-workers` set, to
compare settings rather than code. Scenarios:

- `single`: single-event `POST /v1/events` on an empty log (64 connections);
- `page`: row 3's `actor_id` page of 50 on `--events` events (16 connections);
- `batch`: `POST /v1/events` of 1000 events (4 connections).

Each run prints one line; the end, each side's means and the ratio of this checkout's to
OTHER's. Only loopback; every server is stopped after its run.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.events import FILTER_ACTOR_ID
from bench.load import LoadSpec, choose_generator, run_load
from bench.run import _analyze_unless_autovacuum, _write_back
from bench.servers import REPO, AuditServer, postgres_database, sqlite_database

SCENARIOS = {
    # name: (method, path, batch, default connections)
    "single": ("POST", "/v1/events", 0, 64),
    "page": ("GET", f"/v1/events?actor_id={FILTER_ACTOR_ID}&limit=50", -1, 16),
    "batch": ("POST", "/v1/events", 1000, 4),
}


@dataclass(frozen=True)
class Run:
    side: str
    rps: float
    cpu_us: float  # server CPU per request
    p50_ms: float
    failures: int


def run_once(args: argparse.Namespace, side: str, src: Path) -> Run:
    method, path, batch, connections = SCENARIOS[args.scenario]
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="audit-ab-")))
        url = stack.enter_context(
            postgres_database(args.database_url) if args.database_url else sqlite_database(tmp)
        )
        # The server's code: `src` (bench/servers.py puts AUDIT_BENCH_SERVER_SRC first).
        os.environ["AUDIT_BENCH_SERVER_SRC"] = str(src)
        try:
            workers, threads = (
                (args.other_workers or args.workers, args.other_threads or args.threads)
                if side == "other"
                else (args.workers, args.threads)
            )
            server = AuditServer(url, workers, threads, tmp / "server.log")
            server.start()
        finally:
            del os.environ["AUDIT_BENCH_SERVER_SRC"]
        try:
            generator = choose_generator(args.generator)
            if args.scenario == "page":
                loaded = run_load(
                    LoadSpec(
                        server.port,
                        "/v1/events",
                        server.token,
                        2,
                        600,
                        "POST",
                        1000,
                        "ABload",
                        max_requests=args.events // 1000,
                    ),
                    "python",
                )
                if loaded.failures:
                    raise RuntimeError(f"loading failed: {loaded.statuses}")
                if args.database_url:
                    _analyze_unless_autovacuum(url)
                _write_back("postgres" if args.database_url else "sqlite", url)
            else:  # warm the workers and the writer
                run_load(
                    LoadSpec(server.port, "/v1/events", server.token, 4, 1, "POST", 0, "ABwarm"),
                    generator,
                )
            server.wait_idle()
            before = server.cpu_seconds()
            result = run_load(
                LoadSpec(
                    server.port,
                    path,
                    server.token,
                    args.connections or connections,
                    args.seconds,
                    method,
                    batch,
                    f"AB{side}",
                ),
                generator,
            )
            used = server.cpu_seconds() - before
        finally:
            server.stop()
    requests = max(result.requests, 1)
    return Run(side, result.rps, used / requests * 1e6, result.p50_ms, result.failures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__)
    parser.add_argument("other", type=Path, help="the other checkout (its src/ is served)")
    parser.add_argument("scenario", nargs="?", choices=sorted(SCENARIOS), default="single")
    parser.add_argument("--pairs", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=0, help="default: the scenario's")
    parser.add_argument("--events", type=int, default=20_000, help="page: the log's size")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--other-workers", type=int, default=0, help="OTHER's (default: the same)")
    parser.add_argument("--other-threads", type=int, default=0, help="OTHER's (default: the same)")
    parser.add_argument("--generator", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument(
        "--database-url",
        default="",
        help="a PostgreSQL URL: each run on a fresh database beside it (default: SQLite)",
    )
    args = parser.parse_args(argv)
    other = args.other.resolve() / "src"
    if not (other / "audit").is_dir():
        parser.error(f"{args.other} holds no src/audit")
    sides = {"this": REPO / "src", "other": other}
    runs: list[Run] = []
    for pair in range(args.pairs):
        order = ["this", "other"] if pair % 2 == 0 else ["other", "this"]
        for side in order:
            run = run_once(args, side, sides[side])
            runs.append(run)
            print(
                f"{side:5} {run.rps:9,.0f} req/s  {run.cpu_us:7,.0f} us CPU a request  "
                f"p50 {run.p50_ms:6.2f} ms  failures {run.failures}",
                flush=True,
            )
    means = {}
    for side in sides:
        mine = [r for r in runs if r.side == side]
        means[side] = (
            statistics.mean(r.rps for r in mine),
            statistics.mean(r.cpu_us for r in mine),
        )
        print(f"{side:5} mean {means[side][0]:9,.0f} req/s  {means[side][1]:7,.0f} us CPU")
    print(
        f"this/other: {means['this'][0] / means['other'][0]:.3f}x the requests a second, "
        f"{means['this'][1] / means['other'][1]:.3f}x the CPU a request "
        f"({args.scenario}, {args.pairs} pairs of {args.seconds:g} s)"
    )
    return 1 if any(r.failures for r in runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
