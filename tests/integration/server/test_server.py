"""The whole service as users run it: `audit serve` processes on loopback."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.integration.server.support import bearer, event, run_audit

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]


def post(
    server: Any, token: str, body: Any, session: requests.Session | None = None
) -> requests.Response:
    return (session or requests).post(
        f"{server.url}/v1/events", json=body, headers=bearer(token), timeout=30
    )


def export_all(server: Any, token: str) -> list[dict[str, Any]]:
    import json

    response = requests.get(
        f"{server.url}/v1/export?format=ndjson", headers=bearer(token), timeout=60
    )
    assert response.status_code == 200
    return [json.loads(line) for line in response.text.splitlines()]


def test_serve_prints_a_working_token_and_keeps_events(start_server: Any) -> None:
    server = start_server()
    assert server.bootstrap_token, server.output()
    token = server.bootstrap_token

    created = post(server, token, event(1))
    assert created.status_code == 201, created.text
    assert created.json()["seq"] == 1
    fetched = requests.get(f"{server.url}/v1/events/evt-1", headers=bearer(token), timeout=10)
    assert fetched.json() == created.json()
    assert requests.get(f"{server.url}/v1/verify", headers=bearer(token), timeout=10).json()[
        "valid"
    ]
    # No token is shown on a second start: the secret exists only as a hash.
    server.stop()
    again = start_server(server.database_url)
    assert again.bootstrap_token is None
    assert post(again, token, event(2)).status_code == 201


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_the_server_cleanly(start_server: Any, workers: int) -> None:
    # With one worker there is no metrics folder; its shutdown once raised a TypeError.
    server = start_server(workers=workers)
    assert post(server, server.bootstrap_token, event(1)).status_code == 201
    # To the master only, which stops its workers itself. (Sent to the whole process
    # group, the exit status was once nonzero with the suite running in parallel; the
    # cause was not found, so this test does not cover that case.)
    os.kill(server.proc.pid, signal.SIGTERM)
    assert server.proc.wait(timeout=30) == 0, server.output()
    assert "Traceback" not in server.output()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _writer_pid(server: Any) -> int:
    found = re.findall(r"Started the database writer \(pid: (\d+)\)", server.output())
    assert found, server.output()
    return int(found[-1])


def test_a_worker_stopping_leaves_the_others_their_metrics_folder(start_server: Any) -> None:
    # A worker leaves through the master's stack frames (fork); it once removed the shared
    # metrics folder on its way out, and the worker started in its place failed to boot.
    server = start_server(workers=2)
    writer = _writer_pid(server)
    # Ready means one worker answered; on a busy machine the other may still be forking.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        workers = [pid for pid in _children(server.proc.pid) if pid != writer]
        if len(workers) == 2:
            break
        time.sleep(0.1)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = _children(server.proc.pid)
        if len(children) == 3 and workers[0] not in children:
            break
        time.sleep(0.2)
    time.sleep(2)  # the new worker boots (and, with the bug, fails and halts the master)
    assert server.proc.poll() is None, server.output()
    for n in range(20):
        assert post(server, server.bootstrap_token, event(n)).status_code == 201
    assert "Worker failed to boot" not in server.output()


def test_the_writer_killed_under_load_is_replaced_and_loses_nothing(
    start_server: Any, database_url: str
) -> None:
    """One writer process commits for every worker; the master starts another when it
    dies. Requests meanwhile get a 503 with Retry-After (never a 500), every 201 is
    stored, and the chain holds. On SQLite and PostgreSQL."""
    server = start_server(database_url, workers=2, threads=4)
    token = server.bootstrap_token
    first = _writer_pid(server)
    assert first in _children(server.proc.pid)
    acked: set[str] = set()
    statuses: list[int] = []
    stop = threading.Event()
    threads = [
        threading.Thread(target=_load, args=(server, token, w, acked, stop, statuses))
        for w in range(6)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acked) < 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(first, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and (
        "died; starting another" not in server.output() or _writer_pid(server) == first
    ):
        time.sleep(0.05)
    second = _writer_pid(server)
    assert second != first, server.output()
    assert second in _children(server.proc.pid)
    before = len(acked)
    deadline = time.monotonic() + 20
    while len(acked) < before + 200 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acked) >= before + 200  # the new writer took over
    assert set(statuses) <= {201, 503}, sorted(set(statuses))
    assert "Traceback" not in server.output()
    stored = export_all(server, token)
    assert acked - {e["id"] for e in stored} == set()
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    server.stop()
    verdict = run_audit("verify", "--database-url", server.database_url)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def _load(
    server: Any,
    token: str,
    worker: int,
    acked: set[str],
    stop: threading.Event,
    statuses: list[int] | None = None,
) -> None:
    """Post singles and batches until stopped or the server dies; remember what was acked
    (and, given `statuses`, every answer's status)."""
    session = requests.Session()
    for i in range(2000):
        if stop.is_set():
            return
        base = worker * 1_000_000 + i * 100
        if i % 3 == 0:
            body: Any = {"events": [event(base + k) for k in range(20)]}
        else:
            body = event(base)
        try:
            response = post(server, token, body, session)
        except requests.RequestException:
            return
        if statuses is not None:
            statuses.append(response.status_code)
        if response.status_code == 201:
            if "events" in body:
                acked.update(item["id"] for item in response.json()["events"])
            else:
                acked.add(response.json()["id"])


def test_kill_9_during_load_loses_no_acknowledged_event(start_server: Any) -> None:
    server = start_server(workers=2, threads=4)
    token = server.bootstrap_token
    acked: set[str] = set()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_load, args=(server, token, w, acked, stop)) for w in range(6)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while len(acked) < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=30)
    assert len(acked) >= 300

    restarted = start_server(server.database_url)
    stored = export_all(restarted, token)
    stored_ids = {e["id"] for e in stored}
    assert acked - stored_ids == set()
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    verdict = run_audit("verify", "--database-url", server.database_url)
    assert verdict.returncode == 0, verdict.stdout + verdict.stderr


def test_concurrent_retries_store_each_event_once(start_server: Any) -> None:
    server = start_server(workers=2, threads=8)
    token = server.bootstrap_token
    answers: list[tuple[str, int, int]] = []
    lock = threading.Lock()

    def retry_all(worker: int) -> None:
        session = requests.Session()
        for n in range(40):
            body: Any = event(n) if (n + worker) % 2 else {"events": [event(n), event(n + 1000)]}
            response = post(server, token, body, session)
            assert response.status_code in (200, 201), response.text
            items = response.json()["events"] if "events" in body else [response.json()]
            with lock:
                answers.extend((item["id"], item["seq"], response.status_code) for item in items)

    threads = [threading.Thread(target=retry_all, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    stored = export_all(server, token)
    ids = [e["id"] for e in stored]
    assert len(ids) == len(set(ids))
    assert set(ids) == {a[0] for a in answers}
    seq_of = {e["id"]: e["seq"] for e in stored}
    # Every answer, first or retry, names the one stored copy.
    assert all(seq_of[event_id] == seq for event_id, seq, _ in answers)


def test_two_servers_on_postgres_write_one_valid_chain(
    start_server: Any, postgres_url: str
) -> None:
    first = start_server(postgres_url, workers=2, threads=4)
    second = start_server(postgres_url, workers=2, threads=4)
    token = first.bootstrap_token
    assert token
    assert second.bootstrap_token is None
    acked: set[str] = set()
    stop = threading.Event()
    threads = [
        threading.Thread(target=_load, args=(server, token, w, acked, stop))
        for w, server in enumerate([first, second, first, second])
    ]
    for thread in threads:
        thread.start()
    time.sleep(3)
    stop.set()
    for thread in threads:
        thread.join(timeout=60)

    stored = export_all(second, token)
    assert {e["id"] for e in stored} == acked
    assert [e["seq"] for e in stored] == list(range(1, len(stored) + 1))
    report = requests.get(f"{first.url}/v1/verify", headers=bearer(token), timeout=60).json()
    assert report["valid"] is True
    assert report["checked"] == len(stored)


def test_paging_is_stable_while_events_are_written(start_server: Any) -> None:
    server = start_server()
    token = server.bootstrap_token
    assert post(server, token, {"events": [event(n) for n in range(120)]}).status_code == 201
    stop = threading.Event()

    def keep_writing() -> None:
        n = 10_000
        while not stop.is_set():
            post(server, token, event(n))
            n += 1

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        for order in ("desc", "asc"):
            seqs: list[int] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 7, "order": order}
                if cursor:
                    params["cursor"] = cursor
                page = requests.get(
                    f"{server.url}/v1/events", params=params, headers=bearer(token), timeout=10
                ).json()
                seqs.extend(e["seq"] for e in page["events"])
                cursor = page["next_cursor"]
                if cursor is None or len(seqs) > 400:
                    break
            assert len(seqs) == len(set(seqs))
            if order == "desc":
                assert seqs == list(range(seqs[0], 0, -1))
            else:
                assert seqs[:120] == list(range(1, 121))
                assert seqs == list(range(1, len(seqs) + 1))
    finally:
        stop.set()
        writer.join(timeout=30)


def test_edits_and_deletions_in_the_file_are_found_at_their_seq(
    start_server: Any, tmp_path: Path
) -> None:
    server = start_server()
    token = server.bootstrap_token
    assert post(server, token, {"events": [event(n) for n in range(10)]}).status_code == 201
    server.stop()
    path = server.database_url.removeprefix("sqlite:///")

    assert run_audit("verify", "--database-url", server.database_url).returncode == 0
    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET action = 'document.read' WHERE seq = 4")
    edited = run_audit("verify", "--database-url", server.database_url)
    assert edited.returncode == 1
    assert "seq 4" in edited.stdout
    assert "Traceback" not in edited.stdout + edited.stderr

    with sqlite3.connect(path) as db:
        db.execute("UPDATE events SET action = 'document.update' WHERE seq = 4")
        db.execute("DELETE FROM event_targets WHERE seq = 7")
        db.execute("DELETE FROM events WHERE seq = 7")
    deleted = run_audit("verify", "--database-url", server.database_url)
    assert deleted.returncode == 1
    assert "seq 7" in deleted.stdout


def test_oversized_bodies_get_413_from_the_real_server(start_server: Any) -> None:
    server = start_server()
    token = server.bootstrap_token
    headers = {**bearer(token), "Content-Type": "application/json"}
    big = b'{"action": "a.b", "actor": {"id": "u"}, "description": "' + b"x" * (6 << 20) + b'"}'

    sized = requests.post(f"{server.url}/v1/events", data=big, headers=headers, timeout=30)
    assert sized.status_code == 413
    assert sized.json()["error"]["code"] == "payload_too_large"

    def chunks() -> Any:
        for start in range(0, len(big), 64 * 1024):
            yield big[start : start + 64 * 1024]

    chunked = requests.post(f"{server.url}/v1/events", data=chunks(), headers=headers, timeout=30)
    assert chunked.status_code == 413
    assert chunked.json()["error"]["code"] == "payload_too_large"
    # Nothing of either was stored.
    assert export_all(server, token) == []
