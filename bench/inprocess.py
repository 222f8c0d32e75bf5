"""`python -m bench.inprocess`: the Python cost of ingest per event, in-process, no HTTP.

A batch of 1000 events (the bench's templates, each with its own id) goes from the body's
bytes to the answer's bytes as `POST /v1/events` takes it: parse the body, validate each
event, record them (ids, fingerprints, chain hashes, Merkle subtrees) through the
container's recorder on the in-memory adapter, and write the answer. Each stage is timed
on its own too. CPU time of this thread (`time.thread_time`), best of `--rounds`, so
other load on the machine adds little. The target is at most 30 us per event.

Then what `audit serve`'s writer process does for a single-event request: one
`commit_group` of one event (lock the head, look its id up, seal, grow the tree, insert,
commit with fsync) on a SQLite file, through the writer's own container, per group.
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from audit.container import build_container
from audit.domain.validation import decode_json, parse_batch
from audit.entrypoints.formats import json_bytes
from audit.settings import MEMORY_URL, Settings
from bench.events import template_document

BATCH = 1000
TARGET_US = 30.0
# One-event groups a round of the writer's part.
GROUPS = 200


def _body(run: int) -> bytes:
    events = [template_document(i, f"inproc-{run}-{i}") for i in range(BATCH)]
    return orjson.dumps({"events": events})


def _answer(results: list[Any]) -> bytes:
    return json_bytes(
        {
            "count": len(results),
            "events": [
                {
                    "id": r.event.id,
                    "seq": r.event.seq,
                    "hash": r.event.hash,
                    "status": "created" if r.created else "duplicate",
                }
                for r in results
            ],
        }
    )


def _best(rounds: int, step: Callable[[int], Any]) -> float:
    """Least thread CPU seconds of `step(round)` over the rounds."""
    best = float("inf")
    for n in range(rounds):
        gc.collect()
        start = time.thread_time()
        step(n)
        best = min(best, time.thread_time() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.inprocess", description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    record = build_container(Settings(database_url=MEMORY_URL)).record_events()
    bodies = [_body(n) for n in range(args.rounds * 2)]
    decoded = [decode_json(b) for b in bodies]
    parsed = [parse_batch(d["events"]) for d in decoded]

    stages = {
        "parse the body (bytes -> JSON values)": lambda n: decode_json(bodies[n]),
        "validate 1000 events": lambda n: parse_batch(decoded[n]["events"]),
        "record (ids, fingerprints, chain, tree; memory adapter)": lambda n: record(
            "bench", parsed[n]
        ),
    }
    timings = {name: _best(args.rounds, step) for name, step in stages.items()}
    results = record("answer", parsed[args.rounds])
    timings["write the answer"] = _best(args.rounds, lambda n: _answer(results))

    def whole(n: int) -> bytes:
        body = decode_json(bodies[args.rounds + n])
        return _answer(record("whole", parse_batch(body["events"])))

    total = _best(args.rounds, whole)
    print(f"per event, batch of {BATCH}, best of {args.rounds} (thread CPU time):")
    for name, seconds in timings.items():
        print(f"  {name:<58} {seconds / BATCH * 1e6:7.1f} us")
    print(f"  {'whole request (body bytes -> answer bytes)':<58} {total / BATCH * 1e6:7.1f} us")
    print(f"  target: at most {TARGET_US:.0f} us")
    group = _single_event_groups(args.rounds)
    print(f"the writer's part of a single-event POST (SQLite file), best of {args.rounds}:")
    print(f"  {'commit_group of one event':<58} {group * 1e6:7.1f} us")
    return 0


def _single_event_groups(rounds: int) -> float:
    """Least thread CPU seconds of one single-event commit_group on a SQLite file."""
    with tempfile.TemporaryDirectory(prefix="audit-inprocess-") as tmp:
        container = build_container(Settings(database_url=f"sqlite:///{tmp}/groups.db"))
        container.upgrade_schema()
        record = container.record_groups()
        count = (rounds + 1) * GROUPS
        submissions = [
            record.submit("bench", parse_batch([template_document(n, str(uuid.uuid4()))]))
            for n in range(count)
        ]
        for submission in submissions[:GROUPS]:  # the file, connection and tree warmed up
            record.commit_group([submission])

        def groups(n: int) -> None:
            for submission in submissions[(n + 1) * GROUPS : (n + 2) * GROUPS]:
                record.commit_group([submission])

        best = _best(rounds, groups) / GROUPS
        container.engine().dispose()
        return best


if __name__ == "__main__":
    raise SystemExit(main())
