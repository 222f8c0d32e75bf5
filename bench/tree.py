"""The verifiable log's costs, in-process through the use cases (no HTTP): what keeping the
Merkle tree costs ingest, and what a proof and a checkpoint cost as the log grows.

    .venv/bin/python -m bench.tree [--quick] [--out DIR]

Ratios are against baselines measured in the same run: ingest with the tree kept against
the same ingest with it switched off; a proof and a checkpoint against a plain read of
one event (GetEvent) at the same size, and at each size against the smallest.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from audit.adapters.sql import upgrade_schema
from audit.container import build_container
from audit.domain import tree
from audit.domain.events import NewEvent, Party, Source
from audit.settings import Settings

BATCH = 1000


def _event(n: int) -> NewEvent:
    return NewEvent(
        id=f"e-{n}",
        action="document.update",
        actor=Party(id=f"user-{n % 1000}", type="user", name="Alice Example"),
        targets=(Party(id=f"doc-{n % 5000}", type="document", name=f"Report {n % 5000}"),),
        source=Source(ip="203.0.113.5", user_agent="bench/1"),
        description=f"updated section {n % 17} of the report",
        metadata={"ticket": f"OPS-{n}", "size": n % 4096},
    )


@contextmanager
def _tree_switched_off() -> Any:
    """Ingest without the Merkle tree: the baseline of what keeping it costs (no subtree
    made, none read back)."""
    kept = tree.grow, tree.stored_frontier
    tree.grow = lambda *args, **kwargs: []
    tree.stored_frontier = lambda size: []
    try:
        yield
    finally:
        tree.grow, tree.stored_frontier = kept


def _container(folder: Path, name: str) -> Any:
    url = f"sqlite:///{folder / name}"
    upgrade_schema(url)
    return build_container(
        Settings(
            database_url=url,
            log_origin="bench.example/audit",
            signing_key_file=str(folder / "signing.key"),
        )
    )


def _ingest(record: Callable[..., Any], start: int, stop: int) -> float:
    """Events per second appending events start..stop-1 in batches of 1000."""
    began = time.perf_counter()
    for first in range(start, stop, BATCH):
        record("acme", [_event(n) for n in range(first, min(first + BATCH, stop))])
    return (stop - start) / (time.perf_counter() - began)


def _p50_ms(call: Callable[[], Any], runs: int) -> float:
    call()
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def _measure_at(
    container: Any, size: int, runs: int, rng: random.Random
) -> tuple[float, float, float, float]:
    """p50 ms of a plain read, an inclusion proof, a checkpoint, a consistency proof."""
    picks = iter([f"e-{rng.randrange(size)}" for _ in range(runs + 1)] * 3)
    firsts = iter([rng.randrange(1, size) for _ in range(runs + 1)])
    get = container.get_event()
    prove = container.prove_inclusion()
    sign = container.sign_checkpoint()
    consistency = container.prove_consistency()
    return (
        _p50_ms(lambda: get("acme", next(picks)), runs),
        _p50_ms(lambda: prove("acme", next(picks)), runs),
        _p50_ms(lambda: sign("acme"), runs),
        _p50_ms(lambda: consistency("acme", next(firsts), size), runs),
    )


def run(sizes: list[int], ingest_sample: int, runs: int, folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rng = random.Random(9162)

    # 1. Ingest with and without the tree, the same events, alternating to share the noise.
    with_tree = _container(folder, "with-tree.db")
    without_tree = _container(folder, "without-tree.db")
    kept_rates, bare_rates = [], []
    step = max(ingest_sample // 4, 1)
    for start in range(0, ingest_sample, step):
        kept_rates.append(_ingest(with_tree.record_events(), start, start + step))
        with _tree_switched_off():
            bare_rates.append(_ingest(without_tree.record_events(), start, start + step))
    kept, bare = statistics.median(kept_rates), statistics.median(bare_rates)
    rows.append(
        {
            "measurement": f"batch ingest (1000/txn), {ingest_sample:,} events, tree kept",
            "ours": f"{kept:,.0f} events/s",
            "baseline": "the same, tree not kept",
            "baseline_value": f"{bare:,.0f} events/s",
            "ratio": kept / bare,
        }
    )
    without_tree.engine().dispose()

    # 2. Proofs and checkpoints as the log grows.
    container = with_tree
    size = ingest_sample
    smallest: dict[str, float] = {}
    for target in sizes:
        if target > size:
            rate = _ingest(container.record_events(), size, target)
            size = target
            rows.append(
                {
                    "measurement": f"grew the log to {target:,} (tree kept)",
                    "ours": f"{rate:,.0f} events/s",
                    "baseline": "-",
                    "baseline_value": "-",
                    "ratio": None,
                }
            )
        read, proof, checkpoint, consistent = _measure_at(container, size, runs, rng)
        for name, value in (
            ("inclusion proof", proof),
            ("signed checkpoint", checkpoint),
            ("consistency proof", consistent),
        ):
            smallest.setdefault(name, value)
            rows.append(
                {
                    "measurement": f"{name} at {size:,} events, p50",
                    "ours": f"{value:.3f} ms",
                    "baseline": "GetEvent (one event by id), same size",
                    "baseline_value": f"{read:.3f} ms",
                    "ratio": value / read,
                    "vs_smallest": value / smallest[name],
                }
            )
    container.engine().dispose()
    return rows


def render(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| measurement | ours | baseline | baseline value | ratio | vs smallest size |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in rows:
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        growth = f"{row['vs_smallest']:.2f}" if "vs_smallest" in row else "-"
        lines.append(
            f"| {row['measurement']} | {row['ours']} | {row['baseline']} | "
            f"{row['baseline_value']} | {ratio} | {growth} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.tree", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10^3 and 10^4 only, for CI")
    parser.add_argument("--out", type=Path, default=Path("bench-results"))
    args = parser.parse_args(argv)
    sizes = [1_000, 10_000] if args.quick else [10_000, 100_000, 1_000_000]
    began = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="audit-bench-tree-") as folder:
        rows = run(
            sizes, ingest_sample=1_000 if args.quick else 10_000, runs=200, folder=Path(folder)
        )
    header = (
        f"verifiable log benchmark ({'quick' if args.quick else 'full'}), "
        f"{began:%Y-%m-%dT%H:%M:%S%z}, in-process use cases on a SQLite file"
        " (WAL, synchronous=FULL)"
    )
    table = render(rows, header)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = f"{began:%Y%m%d-%H%M%S}"
    (args.out / f"tree-{stamp}.md").write_text(table + "\n")
    (args.out / f"tree-{stamp}.json").write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
