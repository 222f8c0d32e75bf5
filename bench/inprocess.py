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

Last, a whole request through the app's WSGI callable, as a worker thread runs it but
with no server, socket or other thread: a single-event `POST /v1/events` on the
in-memory adapter (its group committed in-process) and row 3's `actor_id` page of 50 on a
SQLite file of 2x10^4 events, each against the minimal app's POST and GET
(`minimal_app.py`) measured the same way. Served, every request also pays the server's
part and shares the cores; this is the application's own CPU, steady enough to compare
one change with the code before it.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

import bench.minimal_app
from audit.container import build_container
from audit.domain.tokens import ALL_SCOPES
from audit.domain.validation import decode_json, parse_batch
from audit.entrypoints.formats import json_bytes
from audit.entrypoints.http import create_app
from audit.settings import MEMORY_URL, Settings
from bench.events import FILTER_ACTOR_ID, template_document

BATCH = 1000
TARGET_US = 30.0
# One-event groups a round of the writer's part.
GROUPS = 200
# Requests a round through the WSGI callable, and the page's log.
REQUESTS = 500
PAGE_LOG = 20_000


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
    print(f"a request through the WSGI callable, best of {args.rounds} rounds of {REQUESTS}:")
    for name, ours, bare in _wsgi_requests(args.rounds):
        mine, theirs = f"{ours * 1e6:7.1f} us", f"minimal app {bare * 1e6:6.1f} us"
        print(f"  {name:<44} {mine}, {theirs}, {ours / bare:4.2f}x")
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


def _environ(method: str, query: str, body: bytes, secret: str) -> dict[str, Any]:
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": "/v1/events",
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_AUTHORIZATION": f"Bearer {secret}",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if body:
        environ["CONTENT_TYPE"] = "application/json"
        environ["CONTENT_LENGTH"] = str(len(body))
    return environ


def _per_request(
    rounds: int, app: Callable[..., Any], make: Callable[[int], dict[str, Any]], status: str
) -> float:
    """Least thread CPU seconds a request of `app` over the rounds, each answered `status`."""

    def start_response(got: str, headers: Any, exc_info: Any = None) -> None:
        if not got.startswith(status):
            raise RuntimeError(f"expected {status}, the app answered {got}")

    def requests(n: int) -> None:
        environs = [make(n * REQUESTS + i) for i in range(REQUESTS)]
        started = time.thread_time()
        for environ in environs:
            for _ in app(environ, start_response):
                pass
        timings.append(time.thread_time() - started)

    timings: list[float] = []
    for n in range(rounds):
        gc.collect()
        requests(n)
    return min(timings) / REQUESTS


@contextmanager
def _quiet_stderr() -> Iterator[None]:
    """The access log's lines (one a request, on file descriptor 2) go nowhere meanwhile."""
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def _wsgi_requests(rounds: int) -> list[tuple[str, float, float]]:
    """(what, ours, the minimal app's): thread CPU seconds a request."""
    bare = bench.minimal_app.app.wsgi_app
    with tempfile.TemporaryDirectory(prefix="audit-inprocess-") as tmp, _quiet_stderr():
        key = str(Path(tmp) / "signing.key")
        memory = build_container(Settings(database_url=MEMORY_URL, signing_key_file=key))
        app = create_app(memory).wsgi_app
        secret = memory.issue_token()("bench", "t", frozenset(ALL_SCOPES), None).secret

        def post(n: int) -> dict[str, Any]:
            body = orjson.dumps(template_document(n, str(uuid.uuid4())))
            return _environ("POST", "", body, secret)

        single = _per_request(rounds, app, post, "201"), _per_request(rounds, bare, post, "201")
        memory.unwire()

        container = build_container(
            Settings(database_url=f"sqlite:///{tmp}/page.db", signing_key_file=key)
        )
        container.upgrade_schema()
        record = container.record_groups()
        for start in range(0, PAGE_LOG, BATCH):
            documents = [template_document(start + i, str(uuid.uuid4())) for i in range(BATCH)]
            record.commit_group([record.submit("bench", parse_batch(documents))])
        app = create_app(container).wsgi_app
        secret = container.issue_token()("bench", "t", frozenset(ALL_SCOPES), None).secret
        query = f"actor_id={FILTER_ACTOR_ID}&limit=50"
        page = (
            _per_request(rounds, app, lambda n: _environ("GET", query, b"", secret), "200"),
            _per_request(rounds, bare, lambda n: _environ("GET", query, b"", secret), "200"),
        )
        container.token_uses().flush()  # now, while its file is there, not at exit
        container.unwire()
        container.engine().dispose()
    return [
        ("single-event POST (in-memory adapter)", *single),
        (f"actor_id page of 50 (SQLite, {PAGE_LOG:,} events)", *page),
    ]


if __name__ == "__main__":
    raise SystemExit(main())
