"""`audit consume` against a real RabbitMQ: every valid event stored exactly once through
SIGKILLs and lost connections, every bad message dead-lettered with its reason.

Needs AUDIT_TEST_AMQP_URL (amqp://guest:guest@127.0.0.1:5672/%2F); each test uses its own
queues and deletes them. The broker is restarted for real (rabbitmqctl stop_app/start_app)
only when AUDIT_TEST_AMQP_RESTART=1, as CI does on a machine of its own; otherwise the
consumer's own connections are closed by the broker (what a broker shutdown sends them),
which disturbs nobody else's.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa

from audit.adapters.sql import create_engine_for
from audit.entrypoints.consumer.amqp import MAX_ERROR_HEADER_BYTES

pika = pytest.importorskip("pika")

AMQP_URL_ENV = "AUDIT_TEST_AMQP_URL"
RESTART_ENV = "AUDIT_TEST_AMQP_RESTART"
TENANT = "acme"

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("amqp")]


@pytest.fixture(autouse=True)
def broker_to_ourselves() -> Iterator[None]:
    """One test of this module at a time, whatever xdist worker runs it: a broker restarted
    by one test cuts off another's publish (seen in CI: both variants restarting at once)."""
    with (Path(tempfile.gettempdir()) / "audit-test-amqp.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture
def amqp_url() -> str:
    url = os.environ.get(AMQP_URL_ENV)
    if not url:
        pytest.skip(
            f"set {AMQP_URL_ENV}=amqp://guest:guest@127.0.0.1:5672/%2F to run the RabbitMQ tests"
        )
    return url


def channel_of(url: str) -> Any:
    return pika.BlockingConnection(pika.URLParameters(url)).channel()


@pytest.fixture
def queue(amqp_url: str) -> Iterator[str]:
    """A queue of this test's own (and its `.dead`), deleted afterwards."""
    name = f"audit-test-{secrets.token_hex(6)}"
    channel = channel_of(amqp_url)
    channel.queue_declare(queue=name, durable=True)
    channel.connection.close()
    yield name
    channel = channel_of(amqp_url)
    for q in (name, f"{name}.dead"):
        channel.queue_delete(queue=q)
    channel.connection.close()


class Consumer:
    """One `audit consume` process; kill() is a SIGKILL, stop() a SIGTERM."""

    def __init__(
        self, database_url: str, amqp_url: str, queue: str, log: Path, *extra: str
    ) -> None:
        self.log = log
        self._out = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audit",
                "consume",
                "--database-url",
                database_url,
                "--tenant",
                TENANT,
                "--amqp-url",
                amqp_url,
                "--queue",
                queue,
                "--prefetch",
                "500",
                *extra,
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._out.close()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        self._out.close()
        return self.proc.returncode

    def lines(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
        return found


@pytest.fixture
def start_consumer(
    database_url: str, amqp_url: str, queue: str, tmp_path: Path
) -> Iterator[Callable[..., Consumer]]:
    started: list[Consumer] = []

    def start(*extra: str) -> Consumer:
        consumer = Consumer(database_url, amqp_url, queue, tmp_path / "consumer.log", *extra)
        started.append(consumer)
        return consumer

    yield start
    for consumer in started:
        consumer.kill()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def publish(url: str, queue: str, messages: list[tuple[bytes, str | None]]) -> None:
    channel = channel_of(url)
    channel.confirm_delivery()
    for body, message_id in messages:
        channel.basic_publish(
            exchange="",
            routing_key=queue,
            body=body,
            properties=pika.BasicProperties(message_id=message_id, delivery_mode=2),
        )
    channel.connection.close()


def ready(url: str, queue: str) -> int:
    channel = channel_of(url)
    count = int(channel.queue_declare(queue=queue, passive=True).method.message_count)
    channel.connection.close()
    return count


def unsettled(queue: str) -> int:
    """Messages of the queue not acked yet, delivered or not (the broker's own count)."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_queues", "name", "messages", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    for line in listed.splitlines():
        name, _, count = line.partition("\t")
        if name == queue:
            return int(count)
    raise AssertionError(f"no queue {queue}")


def dead_letters(url: str, queue: str) -> list[tuple[str | None, dict[str, Any], bytes]]:
    channel = channel_of(url)
    found = []
    while True:
        method, properties, body = channel.basic_get(f"{queue}.dead", auto_ack=True)
        if method is None:
            break
        header = properties.headers["x-audit-error"]
        assert len(header) <= MAX_ERROR_HEADER_BYTES
        error = json.loads(header)
        found.append((properties.message_id, error, body))
    channel.connection.close()
    return found


def stored(database_url: str) -> list[dict[str, Any]]:
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "audit",
            "export",
            "--database-url",
            database_url,
            "--tenant",
            TENANT,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [json.loads(line) for line in exported.stdout.splitlines()]


def head(database_url: str) -> int:
    """How many events the tenant's log holds now (its last seq)."""
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            found = connection.execute(
                sa.text("SELECT max(seq) FROM events WHERE tenant = :t"), {"t": TENANT}
            ).scalar()
        return int(found or 0)
    finally:
        engine.dispose()


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def event(n: int, **fields: Any) -> dict[str, Any]:
    return {"action": "document.update", "actor": {"id": f"u-{n % 13}"}, **fields}


def valid_messages() -> tuple[list[tuple[bytes, str | None]], set[str]]:
    """10,000 events: 4,000 single-event messages and 600 batches of 10; half of the ids
    chosen by the sender, the others the message's id."""
    messages: list[tuple[bytes, str | None]] = []
    ids: set[str] = set()
    for n in range(4000):
        if n % 2:
            messages.append((json.dumps(event(n, id=f"own-{n}")).encode(), f"msg-{n}"))
            ids.add(f"own-{n}")
        else:
            messages.append((json.dumps(event(n)).encode(), f"msg-{n}"))
            ids.add(f"msg-{n}")
    for b in range(600):
        items = []
        for i in range(10):
            if i % 2:
                items.append(event(i, id=f"batch-{b}-own-{i}"))
                ids.add(f"batch-{b}-own-{i}")
            else:
                items.append(event(i))
                ids.add(f"batch-{b}:{i}")
        messages.append((json.dumps({"events": items}).encode(), f"batch-{b}"))
    return messages, ids


BAD: dict[str, tuple[bytes, str]] = {
    # Its error names a 300 KB field: a header over a frame would close the connection
    # and bring the message back forever, holding up every message behind it.
    "huge-field": (json.dumps(event(0) | {"k" * 300_000: 1}).encode(), "validation_error"),
    "bad-json": (b'{"action": ', "malformed_json"),
    "bad-utf8": (b'{"action": "\xff"}', "malformed_json"),
    "bad-event": (json.dumps({"action": "x y", "actor": {"id": "u"}}).encode(), "validation_error"),
    "bad-field": (json.dumps(event(0, tenant="other")).encode(), "validation_error"),
    "bad-batch": (
        json.dumps({"events": [event(1), {"actor": {"id": "u"}}]}).encode(),
        "validation_error",
    ),
    "too-many": (json.dumps({"events": [event(2)] * 1001}).encode(), "payload_too_large"),
}


def test_every_valid_event_is_stored_once_through_sigkills(
    database_url: str, amqp_url: str, queue: str, start_consumer: Callable[..., Consumer]
) -> None:
    messages, ids = valid_messages()
    bad = [(body, message_id) for message_id, (body, _) in BAD.items()]
    # The bad ones among the first and the last messages, and every valid one twice over
    # for 500 of them (a producer's retry): still one event each.
    publish(amqp_url, queue, bad[:3] + messages + messages[:500] + bad[3:])

    consumer = start_consumer()
    wait_for(lambda: head(database_url) >= 1500, 120, "the first events")
    consumer.kill()
    consumer = start_consumer()
    wait_for(lambda: head(database_url) >= 5000, 120, "half the events")
    consumer.kill()
    consumer = start_consumer()
    wait_for(lambda: head(database_url) >= len(ids) and ready(amqp_url, queue) == 0, 180, "all")

    # After the run: the same ids with other content are conflicts, a retry a duplicate.
    conflict = json.loads(messages[1][0])
    conflict["outcome"] = "failure"
    publish(amqp_url, queue, [(json.dumps(conflict).encode(), "conflict"), messages[3]])
    # Settled, not only delivered: a consumer told to stop hands back what it holds.
    wait_for(lambda: unsettled(queue) == 0, 120, "the last messages")
    assert consumer.stop() == 0

    events = stored(database_url)
    assert len(events) == len(ids)
    assert {e["id"] for e in events} == ids
    assert [e["seq"] for e in events] == list(range(1, len(ids) + 1))
    verified = subprocess.run(
        [sys.executable, "-m", "audit", "verify", "--database-url", database_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr

    # A dead letter may come twice (a kill between its publish and the ack), never not.
    letters = dead_letters(amqp_url, queue)
    expected = {k: code for k, (_, code) in BAD.items()} | {"conflict": "conflict"}
    assert {m: e["error"]["code"] for m, e, _ in letters} == expected
    for message_id, error, body in letters:
        assert error["error"]["message"]
        if message_id in BAD:
            assert body == BAD[message_id][0]
    details = next(e for m, e, _ in letters if m == "bad-batch")["error"]["details"]
    assert details == [{"index": 1, "field": "action", "message": "is required"}]
    assert all(line["event"] != "commit_failed" for line in consumer.lines())
    # One log line per group, written before its ack: a group stored but not acked before
    # a kill comes again, and is logged again as duplicates.
    settled = [line for line in consumer.lines() if line["event"] == "settled"]
    assert sum(line["created"] + line["duplicate"] for line in settled) >= len(ids)
    assert sum(line["dead"] for line in settled) >= len(expected)


def close_consumer_connections(queue: str) -> int:
    """Have the broker close this test's consumer connections, as a shutdown does."""
    listed = subprocess.run(
        ["rabbitmqctl", "-q", "list_connections", "pid", "client_properties", "--no-table-headers"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout
    closed = 0
    for line in listed.splitlines():
        pid, _, properties = line.partition("\t")
        if f'"audit consume {queue} pid' in properties:
            subprocess.run(
                ["rabbitmqctl", "-q", "close_connection", pid, "test: broker going away"],
                capture_output=True,
                timeout=30,
                check=True,
            )
            closed += 1
    return closed


def restart_broker() -> None:
    for command in (["stop_app"], ["start_app"], ["await_startup"]):
        subprocess.run(["rabbitmqctl", "-q", *command], timeout=120, check=True)


def test_the_consumer_survives_the_broker_going_away(
    database_url: str, amqp_url: str, queue: str, start_consumer: Callable[..., Consumer]
) -> None:
    messages, _ = valid_messages()
    publish(amqp_url, queue, messages[:3000])
    port = free_port()
    consumer = start_consumer("--metrics-port", str(port))
    wait_for(lambda: head(database_url) >= 500, 120, "the first events")
    if os.environ.get(RESTART_ENV) == "1":
        restart_broker()
    else:
        wait_for(lambda: close_consumer_connections(queue) > 0, 90, "the consumer's connection")
    publish(amqp_url, queue, messages[3000:4000])
    wait_for(lambda: head(database_url) >= 4000 and ready(amqp_url, queue) == 0, 180, "all")
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    assert 'audit_events_ingested_total{status="created"}' in metrics
    assert 'audit_queue_messages_total{outcome="stored"}' in metrics
    assert consumer.stop() == 0
    events = stored(database_url)
    assert sorted(e["id"] for e in events) == sorted(
        json.loads(body).get("id") or message_id for body, message_id in messages[:4000]
    )
    events_seen = [line["event"] for line in consumer.lines()]
    assert events_seen.count("connected") >= 2
    assert "connection_lost" in events_seen or "broker_unreachable" in events_seen
