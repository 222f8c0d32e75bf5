"""Row 6: the Python client, `record()` of every event then `flush()`, against raw batch
POSTs of the same events to the same server.

The baseline is the least a program can do to send these events: bodies of 1000 events
built before the clock starts, POSTed back to back over one keep-alive connection. The
client sends over one connection too (its one sender thread); its figure includes what a
service pays to use it: serialising each event, the queue, the background thread. The
events themselves (dicts) are built before the clock starts in both. The two alternate
in rounds, so both meet the same noise.
"""

from __future__ import annotations

import http.client
import time
from typing import TYPE_CHECKING

import orjson

from audit.client import AuditClient
from bench.checks import Ledger
from bench.events import TEMPLATE_COUNT, make_id, template_document, template_parts
from bench.report import Row
from bench.servers import AuditServer

if TYPE_CHECKING:
    from bench.run import Run

BATCH = 1000


def section_client(run: Run, backend: str, server: AuditServer, ledger: Ledger) -> None:
    quick = run.profile.name == "quick"
    rounds, per_round = (2, 2_500) if quick else (6, 10_000)
    ours_s = raw_s = 0.0
    ratios = []
    for r in range(rounds):
        raw = _raw_batches(server, ledger, run.prefix(f"R{r}x"), per_round, run.failures)
        server.wait_idle()
        ours = _through_client(server, ledger, run.prefix(f"C{r}x"), per_round, run.failures)
        server.wait_idle()
        raw_s, ours_s = raw_s + raw, ours_s + ours
        ratios.append(raw / ours)
    total = rounds * per_round
    ours, raw = total / ours_s, total / raw_s
    from bench.run import log  # bench.run imports this module

    log(f"{backend}: client {ours:,.0f} events/s, raw batch POST {raw:,.0f} events/s")
    run.rows.append(
        Row(
            "6",
            backend,
            "client record()+flush(), 1 sender",
            ours,
            "events/s",
            "raw batch POST, 1000/request, 1 conn",
            raw,
            f"{rounds} rounds of {per_round:,} events each, alternating; ratio per round "
            f"{min(ratios):.2f} to {max(ratios):.2f}",
        )
    )


def _raw_batches(
    server: AuditServer, ledger: Ledger, prefix: str, count: int, failures: list[str]
) -> float:
    parts = template_parts()
    bodies, ids = [], []
    for start in range(0, count, BATCH):
        chunk = [make_id(prefix, 0, n) for n in range(start, min(start + BATCH, count))]
        events = b",".join(
            before + i.encode() + after
            for n, i in enumerate(chunk, start)
            for before, after in [parts[n % TEMPLATE_COUNT]]
        )
        bodies.append(b'{"events":[' + events + b"]}")
        ids.append(chunk)
    headers = {"Authorization": f"Bearer {server.token}", "Content-Type": "application/json"}
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    started = time.perf_counter()
    try:
        for body, chunk in zip(bodies, ids, strict=True):
            conn.request("POST", "/v1/events", body, headers)
            answer = conn.getresponse()
            data = answer.read()
            ledger.requests += 1
            ledger.statuses[answer.status] = ledger.statuses.get(answer.status, 0) + 1
            if answer.status != 201 or orjson.loads(data)["count"] != len(chunk):
                failures.append(f"raw batch POST answered {answer.status}: {data[:200]!r}")
                break
            ledger.add_acked(chunk)
    finally:
        conn.close()
    return time.perf_counter() - started


def _through_client(
    server: AuditServer, ledger: Ledger, prefix: str, count: int, failures: list[str]
) -> float:
    events = [template_document(n % TEMPLATE_COUNT, make_id(prefix, 0, n)) for n in range(count)]
    refused: list[str] = []
    started = time.perf_counter()
    with AuditClient(
        f"http://127.0.0.1:{server.port}",
        server.token,
        retry_for=60,
        on_error=lambda events, error: refused.append(f"{len(events)} events: {error}"),
    ) as client:
        for event in events:
            client.record(event)
        client.flush()
        seconds = time.perf_counter() - started
    if refused:
        failures.append(f"the client could not store {refused[:3]}")
    else:
        ledger.add_acked(str(e["id"]) for e in events)
    return seconds
