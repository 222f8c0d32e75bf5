"""Row 7: `audit consume` from RabbitMQ, against raw batch POSTs of the same run.

Each round POSTs N events in bodies of 1000 over one connection (bench.client's
baseline), then fills a queue with N events in messages of 100 (the same templates, ids
from each message's `message_id`) and has one `audit consume` process drain it into the
ingest server's database, in a tenant of its own. The consumer's time runs from the first
stored event to the last, read from the database, so the process's start-up is not
counted. Needs RabbitMQ: AUDIT_BENCH_AMQP_URL, else AUDIT_TEST_AMQP_URL; without either
the row is left out, and the run says so.

`python -m bench.consumer [--events N] [--per-message K] [--database-url URL]` measures
the consumer alone.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

TENANT = "bench-consumer"
PER_MESSAGE = 100
PREFETCH = 1000


def amqp_url() -> str | None:
    return os.environ.get("AUDIT_BENCH_AMQP_URL") or os.environ.get("AUDIT_TEST_AMQP_URL")


def _head(engine: Any) -> int:
    import sqlalchemy as sa

    with engine.connect() as connection:
        found = connection.execute(
            sa.text("SELECT max(seq) FROM events WHERE tenant = :t"), {"t": TENANT}
        ).scalar()
    return int(found or 0)


def _fill(url: str, queue: str, events: int, per_message: int, prefix: str) -> None:
    import pika

    from bench.events import template_document

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue=queue, durable=True)
    channel.confirm_delivery()
    persistent = pika.DeliveryMode.Persistent
    for m in range(events // per_message):
        items = []
        for i in range(per_message):
            doc = template_document(m * per_message + i)
            del doc["id"]  # the message's id gives each its id
            items.append(doc)
        body = json.dumps(items[0] if per_message == 1 else {"events": items}).encode()
        properties = pika.BasicProperties(message_id=f"{prefix}m{m}", delivery_mode=persistent)
        channel.basic_publish(exchange="", routing_key=queue, body=body, properties=properties)
    connection.close()


def _drop(url: str, queue: str) -> None:
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for name in (queue, f"{queue}.dead"):
        channel.queue_delete(queue=name)
    connection.close()


def measure(
    database_url: str, url: str, events: int, per_message: int, log_path: Path, timeout: float
) -> tuple[float, float]:
    """Drain `events` events through `audit consume`: (events/s, consumer CPU cores)."""
    from audit.adapters.sql import create_engine_for

    queue = f"audit-bench-{secrets.token_hex(4)}"
    _fill(url, queue, events, per_message, secrets.token_hex(3))
    engine = create_engine_for(database_url)
    before = _head(engine)
    target = before + events
    with log_path.open("ab") as log:
        command = [sys.executable, "-m", "audit", "consume", "--database-url", database_url]
        command += ["--tenant", TENANT, "--amqp-url", url, "--queue", queue]
        command += ["--prefetch", str(PREFETCH)]
        consumer = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + timeout
        first: tuple[float, int] | None = None
        head = before
        while head < target:
            if time.monotonic() > deadline or consumer.poll() is not None:
                raise RuntimeError(f"audit consume stored {head - before} of {events} events")
            time.sleep(0.05)
            head = _head(engine)
            if first is None and head > before:
                first = (time.monotonic(), head)
        last = time.monotonic()
        cpu = _cpu_seconds(consumer.pid)
        assert first is not None
        seconds = last - first[0]
        rate = (head - first[1]) / seconds if seconds > 0 else float("nan")
        return rate, cpu / (seconds or 1)
    finally:
        consumer.send_signal(signal.SIGTERM)
        try:
            consumer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            consumer.kill()
            consumer.wait(timeout=10)
        engine.dispose()
        _drop(url, queue)


def _cpu_seconds(pid: int) -> float:
    """User and system time of a live process, from /proc (0 where there is none)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def section(run: Any, backend: str, db_url: str, server: Any, ledger: Any) -> None:
    """Row 7: the consumer against raw batch POSTs of as many events (1000 per request,
    one connection: bench.client's baseline), in alternating rounds on the ingest
    server's database, so both meet the same noise."""
    from bench.client import _raw_batches
    from bench.report import Row
    from bench.run import log

    url = amqp_url()
    if not url:
        log(f"{backend}: no consumer row (set AUDIT_BENCH_AMQP_URL or AUDIT_TEST_AMQP_URL)")
        return
    rounds, per_round = (2, 5_000) if run.profile.name == "quick" else (4, 20_000)
    ours_s = raw_s = 0.0
    ratios, cores = [], []
    for r in range(rounds):
        raw = _raw_batches(server, ledger, run.prefix(f"Q{r}x"), per_round, run.failures)
        server.wait_idle()
        log_path = run.tmp / f"consume-{backend}.log"
        rate, used = measure(db_url, url, per_round, PER_MESSAGE, log_path, timeout=600)
        ours_s, raw_s = ours_s + per_round / rate, raw_s + raw
        ratios.append(raw / (per_round / rate))
        cores.append(used)
    total = rounds * per_round
    ours, base = total / ours_s, total / raw_s
    log(f"{backend}: audit consume {ours:,.0f} events/s, raw batch POST {base:,.0f} events/s")
    run.rows.append(
        Row(
            "7",
            backend,
            f"audit consume, {PER_MESSAGE} events/message, prefetch {PREFETCH}",
            ours,
            "events/s",
            "raw batch POST, 1000/request, 1 conn",
            base,
            f"{rounds} rounds of {per_round:,} events each, alternating; ratio per round "
            f"{min(ratios):.2f} to {max(ratios):.2f}; consumer {max(cores):.2f} cores at most",
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.consumer")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--per-message", type=int, default=PER_MESSAGE)
    parser.add_argument("--database-url")
    args = parser.parse_args()
    url = amqp_url()
    if not url:
        raise SystemExit("set AUDIT_BENCH_AMQP_URL or AUDIT_TEST_AMQP_URL")
    folder = Path(tempfile.mkdtemp(prefix="audit-bench-consumer-"))
    database_url = args.database_url or f"sqlite:///{folder / 'audit.db'}"
    from audit.adapters.sql import upgrade_schema

    upgrade_schema(database_url)
    rate, cores = measure(
        database_url, url, args.events, args.per_message, folder / "consume.log", 600
    )
    print(f"{rate:,.0f} events/s, consumer {cores:.2f} cores ({folder})")


if __name__ == "__main__":
    main()
