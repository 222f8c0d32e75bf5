"""AuditClient against real `audit serve` processes on loopback."""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from tests.integration.server.support import Server, bearer

from audit.client import AuditClient, AuditError, QueueFull

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]

Failures = list[tuple[list[dict[str, Any]], AuditError]]


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[list[Server]]:
    """Servers the test starts; every one still running is stopped at the end."""
    started: list[Server] = []
    yield started
    for server in started:
        server.stop()


def start(servers: list[Server], tmp_path: Path, port: int | None = None) -> Server:
    server = Server(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path, port=port)
    servers.append(server)
    return server


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "action": "document.update",
        "actor": {"id": f"user-{n % 7}", "type": "user"},
        "targets": [{"id": f"doc-{n % 11}"}],
        "metadata": {"n": n},
        **extra,
    }


def stored_ids(server: Server, token: str) -> collections.Counter[str]:
    answer = requests.get(
        f"{server.url}/v1/export?format=ndjson", headers=bearer(token), timeout=120
    )
    assert answer.status_code == 200
    return collections.Counter(orjson.loads(line)["id"] for line in answer.content.splitlines())


def verify(server: Server, token: str) -> dict[str, Any]:
    answer = requests.get(f"{server.url}/v1/verify", headers=bearer(token), timeout=120)
    assert answer.status_code == 200
    result: dict[str, Any] = answer.json()
    return result


def wait_until(condition: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds}s: {what}")
        time.sleep(0.05)


def test_every_event_is_stored_once_across_two_kill_9_restarts(
    servers: list[Server], tmp_path: Path
) -> None:
    """5,000 events from 8 threads while the server group is SIGKILLed and restarted
    twice on the same port and SQLite file: after flush() each is stored exactly once."""
    server = start(servers, tmp_path)
    token = server.bootstrap_token
    assert token
    failures: Failures = []
    client = AuditClient(
        server.url,
        token,
        flush_interval=0.1,
        max_batch=250,
        retry_for=240,
        on_error=lambda events, err: failures.append((events, err)),
    )
    recorded: list[list[str]] = [[] for _ in range(8)]

    def produce(worker: int) -> None:
        for n in range(625):
            recorded[worker].append(client.record(event(worker * 625 + n)))
            time.sleep(0.01)  # spread the recording over the kills

    def delivered() -> int:
        return client.stats.stored + client.stats.duplicates

    threads = [threading.Thread(target=produce, args=(w,)) for w in range(8)]
    try:
        for thread in threads:
            thread.start()
        kills = []
        for _ in range(2):
            mark = delivered()
            wait_until(lambda mark=mark: delivered() >= mark + 500, 120, "500 more stored")
            server.kill()
            kills.append((client.stats.recorded, delivered()))
            time.sleep(0.5)  # refused connections meanwhile
            server = start(servers, tmp_path, port=server.port)
        for thread in threads:
            thread.join(timeout=120)
        assert client.flush(timeout=240)
    finally:
        client.close(timeout=10)
    assert failures == []
    assert all(seen < 5000 for _, seen in kills)  # events were still on their way
    ids = [i for worker in recorded for i in worker]
    assert len(set(ids)) == 5000
    stored = stored_ids(server, token)
    assert set(stored) == set(ids)
    assert max(stored.values()) == 1
    assert client.stats.stored + client.stats.duplicates == 5000
    report = verify(server, token)
    assert report["valid"] is True
    assert report["checked"] == 5000


def test_a_refused_batch_goes_to_on_error_and_the_rest_is_stored(
    servers: list[Server], tmp_path: Path
) -> None:
    server = start(servers, tmp_path)
    token = server.bootstrap_token
    assert token
    failures: Failures = []
    with AuditClient(
        server.url,
        token,
        flush_interval=30,
        on_error=lambda events, err: failures.append((events, err)),
    ) as client:
        taken = client.send(event(0, id="taken"))
        good = [client.record(event(n)) for n in range(1, 4)]
        bad = [
            client.record(event(4, action="not a valid action")),
            client.record(event(5, colour="blue")),  # unknown field
        ]
        good += [client.record(event(n)) for n in range(6, 9)]
        client.flush(timeout=60)
        conflicting = client.record(event(9, id="taken"))  # same id, other content: 409
        after = [client.record(event(n)) for n in range(10, 20)]
    assert taken["seq"] == 1
    [(invalid, err422), (conflict, err409)] = failures
    assert sorted(e["id"] for e in invalid) == sorted(bad)
    assert err422.status == 422
    assert {d["index"] for d in err422.details} == {3, 4}
    assert [e["id"] for e in conflict] == [conflicting]
    assert err409.status == 409
    assert set(stored_ids(server, token)) == {"taken", *good, *after}
    assert verify(server, token)["valid"] is True


def test_events_follows_cursors_over_every_match(servers: list[Server], tmp_path: Path) -> None:
    server = start(servers, tmp_path)
    token = server.bootstrap_token
    assert token
    with AuditClient(server.url, token) as client:
        ids = [client.record(event(n)) for n in range(70)]
        assert client.flush(timeout=60)
        found = [e["id"] for e in client.events(actor_id="user-3", order="asc", page_size=3)]
        with pytest.raises(AuditError) as refused:
            next(client.events(actor="user-3"))
    assert found == [i for n, i in enumerate(ids) if n % 7 == 3]
    assert refused.value.status == 400
    assert refused.value.code == "invalid_parameter"


def test_a_full_queue_blocks_record_for_block_for_then_raises_and_loses_nothing(
    servers: list[Server], tmp_path: Path
) -> None:
    """The server group stopped (SIGSTOP): the sender waits on its answer, the queue fills,
    record() waits block_for and raises QueueFull; resumed, every queued event is stored."""
    server = start(servers, tmp_path)
    token = server.bootstrap_token
    assert token
    ids: list[str] = []
    with AuditClient(
        server.url, token, max_queue=50, max_batch=10, block_for=0.5, flush_interval=0.05
    ) as client:
        os.killpg(server.proc.pid, signal.SIGSTOP)
        try:
            waited = None
            for n in range(200):  # the queue holds 50, the sender's batch 10
                started = time.monotonic()
                try:
                    ids.append(client.record(event(n)))
                except QueueFull:
                    waited = time.monotonic() - started
                    break
        finally:
            os.killpg(server.proc.pid, signal.SIGCONT)
        assert waited is not None
        assert 0.45 <= waited < 10
        assert 50 <= len(ids) <= 60
        assert client.flush(timeout=120)
        assert client.stats.failed == 0
    assert set(stored_ids(server, token)) == set(ids)
