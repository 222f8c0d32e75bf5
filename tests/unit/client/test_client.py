"""AuditClient against a scripted stub server: batching, refusals, retries, back-pressure."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from typing import Any

import pytest
from tests.unit.client.stub import Answer, Seen, created, error, stub_server

from audit.client import AuditClient, AuditError, ClientClosed, QueueFull, Unreachable

Failures = list[tuple[list[dict[str, Any]], AuditError]]


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"action": "document.update", "actor": {"id": f"u-{n}"}, "metadata": {"n": n}, **extra}


def collector() -> tuple[Failures, Any]:
    failures: Failures = []
    return failures, lambda events, err: failures.append((events, err))


def test_record_returns_a_uuid7_at_once_and_flush_sends_batches_in_order() -> None:
    with stub_server(created) as stub:
        client = AuditClient(stub.url, "t", flush_interval=30, max_batch=100)
        ids = [client.record(event(n)) for n in range(250)]
        kept = client.record(event(250, id="my-own-id"))
        assert client.flush(timeout=20)
        client.close()
    assert all(uuid.UUID(i).version == 7 for i in ids)
    assert kept == "my-own-id"
    assert stub.posted_ids() == [*ids, kept]
    assert all(len(s.body["events"]) <= 100 for s in stub.seen)
    assert stub.seen[0].headers["Authorization"] == "Bearer t"
    assert client.stats.stored == 251
    assert client.stats.failed == 0


def test_batches_go_out_every_flush_interval_without_flush() -> None:
    with stub_server(created) as stub, AuditClient(stub.url, "t", flush_interval=0.2) as client:
        first = client.record(event(1))
        deadline = time.monotonic() + 10
        while not stub.seen and time.monotonic() < deadline:
            time.sleep(0.02)
        assert stub.posted_ids() == [first]


def test_batches_respect_the_byte_limit() -> None:
    with stub_server(created) as stub:
        with AuditClient(stub.url, "t", flush_interval=30, max_batch_bytes=2000) as client:
            for n in range(40):
                client.record(event(n, description="x" * 200))
        sizes = [len(s.body["events"]) for s in stub.seen]
    assert sum(sizes) == 40
    assert max(sizes) < 10
    assert len(sizes) > 4


def test_a_422_hands_only_the_bad_events_to_on_error_and_stores_the_rest() -> None:
    def script(seen: Seen) -> Answer:
        bad = [
            {"index": i, "field": "action", "message": "bad"}
            for i, e in enumerate(seen.body["events"])
            if e["action"] == "BAD ACTION"
        ]
        return error(422, "validation_error", bad) if bad else created(seen)

    failures, on_error = collector()
    with (
        stub_server(script) as stub,
        AuditClient(stub.url, "t", on_error=on_error, flush_interval=30) as client,
    ):
        ids = [
            client.record(event(n, action="BAD ACTION") if n in (3, 7) else event(n))
            for n in range(10)
        ]
        client.flush(timeout=20)
        later = client.record(event(10))
    [(events, err)] = failures
    assert [e["id"] for e in events] == [ids[3], ids[7]]
    assert err.status == 422
    assert err.code == "validation_error"
    batches = [s.body["events"] for s in stub.seen]
    assert [e["id"] for e in batches[1]] == [i for n, i in enumerate(ids) if n not in (3, 7)]
    assert [e["id"] for e in batches[2]] == [later]
    assert client.stats.stored == 9
    assert client.stats.failed == 2


def test_a_409_is_narrowed_down_to_the_conflicting_event() -> None:
    def script(seen: Seen) -> Answer:
        if any(e["id"] == "taken" for e in seen.body["events"]):
            return error(409, "conflict")
        return created(seen)

    failures, on_error = collector()
    with (
        stub_server(script) as stub,
        AuditClient(stub.url, "t", on_error=on_error, flush_interval=30) as client,
    ):
        for n in range(16):
            client.record(event(n, id="taken") if n == 5 else event(n))
    [(events, err)] = failures
    assert [e["id"] for e in events] == ["taken"]
    assert err.status == 409
    assert client.stats.stored == 15


@pytest.mark.parametrize("status", [400, 401, 403])
def test_another_4xx_hands_the_whole_batch_to_on_error_without_retrying(status: int) -> None:
    failures, on_error = collector()
    with stub_server(lambda seen: error(status, "nope")) as stub:
        with AuditClient(stub.url, "t", on_error=on_error, flush_interval=30) as client:
            for n in range(5):
                client.record(event(n))
            assert client.flush(timeout=20)
        assert len(stub.seen) == 1
    [(events, err)] = failures
    assert len(events) == 5
    assert err.status == status


@pytest.mark.parametrize("status", [429, 503])
def test_retry_after_is_honoured(status: int) -> None:
    def script(seen: Seen) -> Answer:
        if len(stub.seen) <= 2:
            answer = error(status, "busy")
            return answer[0], {"Retry-After": "1"}, answer[2]
        return created(seen)

    with stub_server(script) as stub, AuditClient(stub.url, "t", flush_interval=30) as client:
        client.record(event(1))
        assert client.flush(timeout=30)
        times = [s.at for s in stub.seen]
    assert len(times) == 3
    # Backoff alone would wait ~0.05 s and ~0.1 s at most: the header made each wait 1 s.
    assert times[1] - times[0] >= 0.95
    assert times[2] - times[1] >= 0.95
    assert client.stats.stored == 1


def test_connection_errors_are_retried_until_the_server_answers() -> None:
    # A port nobody listens on, then a server there: the events recorded meanwhile arrive.
    with stub_server(created) as probe:
        port = probe.server.server_address[1]
    client = AuditClient(f"http://127.0.0.1:{port}", "t", flush_interval=0.05)
    try:
        ids = [client.record(event(n)) for n in range(20)]
        time.sleep(0.5)  # several refused attempts
        with stub_server(created, port) as stub:
            assert client.flush(timeout=30)
    finally:
        client.close(timeout=5)
    assert sorted(stub.posted_ids()) == sorted(ids)
    assert client.stats.stored == 20


def test_events_refused_for_retry_for_go_to_on_error() -> None:
    failures, on_error = collector()
    busy = error(503, "unavailable")
    with stub_server(lambda seen: busy) as stub:
        client = AuditClient(stub.url, "t", on_error=on_error, retry_for=0.5, flush_interval=30)
        started = time.monotonic()
        client.record(event(1))
        assert client.flush(timeout=20)
        client.close()
        assert len(stub.seen) >= 2
    assert time.monotonic() - started < 10
    [(events, err)] = failures
    assert isinstance(err, Unreachable)
    assert err.status == 503
    assert len(events) == 1


def test_retry_for_counts_from_each_events_recording_not_each_batchs_turn() -> None:
    """Ten batches behind an outage: the first is retried for retry_for, and by then the
    others' time is up too: each gets one more try, not retry_for seconds of its own
    (which would hold close() for ten times retry_for)."""
    failures, on_error = collector()
    busy = error(503, "unavailable")
    with stub_server(lambda seen: busy) as stub:
        client = AuditClient(
            stub.url, "t", on_error=on_error, retry_for=2, flush_interval=30, max_batch=5
        )
        ids = [client.record(event(n)) for n in range(50)]
        started = time.monotonic()
        client.close()
        took = time.monotonic() - started
    assert took < 10, took
    assert sorted(e["id"] for events, _ in failures for e in events) == sorted(ids)
    assert all(isinstance(err, Unreachable) and err.status == 503 for _, err in failures)
    assert set(stub.posted_ids()) == set(ids)  # every batch was tried


def test_record_blocks_for_block_for_then_raises_queue_full() -> None:
    release = threading.Event()

    def script(seen: Seen) -> Answer:
        release.wait(30)
        return created(seen)

    with stub_server(script) as stub:
        client = AuditClient(stub.url, "t", max_queue=10, max_batch=10, block_for=0.5)
        try:
            for n in range(10):  # the sender takes these and is held by the server
                client.record(event(n))
            deadline = time.monotonic() + 10
            while not stub.seen and time.monotonic() < deadline:
                time.sleep(0.01)
            for n in range(10):
                client.record(event(n))
            started = time.monotonic()
            with pytest.raises(QueueFull):
                client.record(event(99))
            assert 0.45 <= time.monotonic() - started < 5
        finally:
            release.set()
            client.close(timeout=20)
    assert client.stats.stored == 20
    assert client.stats.recorded == 20


def test_close_hands_what_could_not_be_sent_to_on_error() -> None:
    failures, on_error = collector()
    with stub_server(created) as gone:
        url = gone.url  # nobody listens there any more
    client = AuditClient(url, "t", on_error=on_error, flush_interval=30, max_batch=2)
    ids = [client.record(event(n)) for n in range(5)]
    started = time.monotonic()
    client.close(timeout=0.5)
    assert time.monotonic() - started < 10
    assert sorted(e["id"] for events, _ in failures for e in events) == sorted(ids)
    with pytest.raises(ClientClosed):
        client.record(event(6))


def test_send_stores_one_event_and_raises_a_refusal() -> None:
    def script(seen: Seen) -> Answer:
        if seen.body["action"] == "bad":
            return error(422, "validation_error", [{"field": "action", "message": "no"}])
        return 201, {}, {**seen.body, "seq": 1}

    with stub_server(script) as stub, AuditClient(stub.url, "t") as client:
        stored = client.send(event(1))
        with pytest.raises(AuditError) as refused:
            client.send({"action": "bad", "actor": {"id": "u"}})
    assert stored["seq"] == 1
    assert uuid.UUID(stored["id"]).version == 7
    assert refused.value.status == 422
    assert refused.value.details[0]["field"] == "action"


def test_events_follows_cursors_to_the_end() -> None:
    pages = {None: (["a", "b"], "c1"), "c1": (["c"], "c2"), "c2": ([], None)}

    def script(seen: Seen) -> Answer:
        from urllib.parse import parse_qs, urlsplit

        query = {k: v[0] for k, v in parse_qs(urlsplit(seen.path).query).items()}
        ids, cursor = pages[query.get("cursor")]
        return 200, {}, {"events": [{"id": i} for i in ids], "next_cursor": cursor}

    with stub_server(script) as stub, AuditClient(stub.url, "t") as client:
        found = [e["id"] for e in client.events(actor_id="u-1", page_size=2)]
        first = stub.seen[0].path
        later = stub.seen[1].path
    assert found == ["a", "b", "c"]
    assert "actor_id=u-1" in first
    assert "limit=2" in first
    assert "actor_id=u-1" in later
    assert "cursor=c1" in later


def test_the_client_imports_no_server_dependency() -> None:
    code = (
        "import sys, audit.client; "
        "bad = {'flask', 'sqlalchemy', 'werkzeug', 'gunicorn', 'psycopg', 'dependency_injector'}; "
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_any_mapping_is_recorded_and_a_bad_url_is_refused_up_front() -> None:
    from types import MappingProxyType

    with stub_server(created) as stub, AuditClient(stub.url, "t") as client:
        kept = client.record(MappingProxyType(event(1, id="e-1")))
        made = client.record(MappingProxyType(event(2)))
        client.flush(timeout=20)
    assert stub.posted_ids() == [kept, made]
    with pytest.raises(ValueError, match="http or https"):
        AuditClient("127.0.0.1:8080", "t")


@pytest.mark.parametrize(
    "metadata",
    [
        {"v": float("nan")},
        {"v": [1, {"w": float("inf")}]},
        {"v": (float("-inf"),), "u": None},
    ],
)
def test_a_number_json_cannot_hold_is_refused_not_sent_as_null(metadata: dict[str, Any]) -> None:
    with stub_server(created) as stub, AuditClient(stub.url, "t", flush_interval=30) as client:
        with pytest.raises(TypeError, match="is not JSON"):
            client.record(event(1, metadata=metadata))
        with pytest.raises(TypeError, match="is not JSON"):
            client.send(event(2, metadata=metadata))
        # Nulls and finite floats go as they are.
        kept = client.record(event(3, description=None, metadata={"v": 0.5, "u": None}))
        assert client.flush(timeout=20)
    assert stub.posted_ids() == [kept]
    assert stub.seen[0].body["events"][0]["metadata"] == {"v": 0.5, "u": None}
