"""Operating a real `audit serve` (2 workers, as it starts by default): revocation seen at
once by every worker (made through the API or by the command line), /metrics summed over
the workers, the access log, throttling of failed authentication, and reads that keep
answering while the database takes no writes."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import stat
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
from tests.integration.server.support import (
    bearer,
    event,
    run_audit,
    server_env,
    sqlite_path,
)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]

TIMEOUT = 30


def access_log(server: Any) -> list[dict[str, Any]]:
    """The server's access-log records (its other lines are gunicorn's and the banner)."""
    records = []
    for line in server.output().splitlines():
        if line.startswith("{"):
            records.append(orjson.loads(line))
    return records


def by_request_id(server: Any, prefix: str, count: int) -> list[dict[str, Any]]:
    """The records of requests sent with ids `prefix-0`..: waits for every one of them."""
    deadline = time.monotonic() + 10
    while True:
        found = [r for r in access_log(server) if r["request_id"].startswith(f"{prefix}-")]
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def get(server: Any, path: str, token: str | None, request_id: str) -> requests.Response:
    # A new connection for each request, so the workers share them out.
    headers = {"X-Request-Id": request_id, "Connection": "close"}
    if token is not None:
        headers.update(bearer(token))
    return requests.get(f"{server.url}{path}", headers=headers, timeout=TIMEOUT)


def post_event(server: Any, token: str | None, request_id: str) -> requests.Response:
    """One event, its id the request's, on a new connection (as `get`)."""
    headers = {"X-Request-Id": request_id, "Connection": "close"}
    if token is not None:
        headers.update(bearer(token))
    return requests.post(
        f"{server.url}/v1/events", json=event(0, id=request_id), headers=headers, timeout=TIMEOUT
    )


def spread(
    server: Any, path: str, token: str | None, prefix: str, count: int, method: str = "GET"
) -> list[int]:
    """`count` GETs (or single-event POSTs to /v1/events) from 8 threads at once; their
    statuses, in order sent."""

    def send(n: int) -> requests.Response:
        if method == "POST":
            return post_event(server, token, f"{prefix}-{n}")
        return get(server, path, token, f"{prefix}-{n}")

    with ThreadPoolExecutor(8) as pool:
        return [r.status_code for r in pool.map(send, range(count), timeout=120)]


def served_by_both_workers(records: list[dict[str, Any]]) -> bool:
    return len({r["pid"] for r in records}) >= 2


def make_token(server: Any, *scopes: str) -> dict[str, Any]:
    response = requests.post(
        f"{server.url}/v1/tokens",
        json={"name": "live", "scopes": list(scopes)},
        headers=bearer(server.bootstrap_token),
        timeout=TIMEOUT,
    )
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


def kept_by_both_workers(server: Any, made: dict[str, Any], method: str = "GET") -> None:
    """Use the token many times over, until both workers keep it (with another round if
    one happened to go to one worker only)."""
    ok = 201 if method == "POST" else 200
    for round_ in range(5):
        statuses = spread(server, "/v1/events", made["token"], f"warm{round_}", 40, method)
        assert statuses == [ok] * 40
        warm = by_request_id(server, f"warm{round_}", 40)
        if served_by_both_workers(warm):
            break
    assert served_by_both_workers(warm), "every request went to one worker"
    assert {r["token_id"] for r in warm} == {made["id"]}


def test_a_revoked_token_is_refused_at_once_by_every_worker(start_server: Any) -> None:
    server = start_server(workers=2)
    made = make_token(server, "events:read")
    kept_by_both_workers(server, made)

    revoked = requests.delete(
        f"{server.url}/v1/tokens/{made['id']}",
        headers=bearer(server.bootstrap_token),
        timeout=TIMEOUT,
    )
    assert revoked.status_code == 204
    # The very next requests, whichever worker answers them, are refused.
    statuses = spread(server, "/v1/events", made["token"], "after", 40)
    assert statuses == [401] * 40
    after = by_request_id(server, "after", 40)
    assert served_by_both_workers(after)
    assert {r["auth"] for r in after} == {"invalid"}
    # Other tokens are untouched.
    assert spread(server, "/v1/events", server.bootstrap_token, "other", 8) == [200] * 8


def stored(server: Any, prefix: str) -> list[str]:
    """The ids of the events stored whose id starts with `prefix`."""
    page = requests.get(
        f"{server.url}/v1/events?limit=1000",
        headers=bearer(server.bootstrap_token),
        timeout=TIMEOUT,
    )
    assert page.status_code == 200
    return [e["id"] for e in page.json()["events"] if e["id"].startswith(f"{prefix}-")]


def test_a_revoked_token_is_refused_at_once_by_every_worker_ingesting(start_server: Any) -> None:
    # Ingest takes a kept principal without reading the revocation epoch; the writer
    # checks it in the group's transaction, so the refusal is as immediate as for reads.
    server = start_server(workers=2)
    made = make_token(server, "events:write", "events:read")
    kept_by_both_workers(server, made, "POST")
    revoked = requests.delete(
        f"{server.url}/v1/tokens/{made['id']}",
        headers=bearer(server.bootstrap_token),
        timeout=TIMEOUT,
    )
    assert revoked.status_code == 204
    assert spread(server, "/v1/events", made["token"], "after", 40, "POST") == [401] * 40
    after = by_request_id(server, "after", 40)
    assert served_by_both_workers(after)
    assert {r["auth"] for r in after} == {"invalid"}
    assert stored(server, "after") == []
    assert len(stored(server, "warm0")) == 40
    assert spread(server, "/v1/events", server.bootstrap_token, "other", 8, "POST") == [201] * 8


def test_a_token_revoked_by_the_command_line_is_refused_at_once_by_every_worker(
    start_server: Any,
) -> None:
    # Another process, outside the server: on SQLite the workers learn of it from the
    # revocation beacon beside the database file, not from a read of every request.
    server = start_server(workers=2)
    made = make_token(server, "events:read")
    kept_by_both_workers(server, made)
    done = run_audit("tokens", "revoke", "--database-url", server.database_url, made["id"])
    assert done.returncode == 0, done.stderr
    assert spread(server, "/v1/events", made["token"], "after", 40) == [401] * 40
    assert served_by_both_workers(by_request_id(server, "after", 40))
    assert spread(server, "/v1/events", server.bootstrap_token, "other", 8) == [200] * 8


@pytest.mark.postgres
def test_a_token_revoked_on_one_server_is_refused_at_once_by_another(
    start_server: Any, postgres_url: str
) -> None:
    first = start_server(postgres_url, workers=1, threads=4)
    second = start_server(postgres_url, workers=1, threads=4)
    admin = first.bootstrap_token or second.bootstrap_token
    assert admin
    first.bootstrap_token = second.bootstrap_token = admin
    made = make_token(first, "events:write", "events:read")
    for server in (first, second):  # both servers keep it, for reads and for ingest
        assert spread(server, "/v1/events", made["token"], "warm", 8) == [200] * 8
        assert spread(server, "", made["token"], f"w{server.port}", 8, "POST") == [201] * 8
    revoked = requests.delete(
        f"{first.url}/v1/tokens/{made['id']}", headers=bearer(admin), timeout=TIMEOUT
    )
    assert revoked.status_code == 204
    # Each server's first refusal is of its kept principal, which the refusal drops: a
    # page on the second (its statement reads the epoch), ingest on the first (the
    # writer's group reads it). Then the other way round, on principals loaded anew.
    assert spread(second, "/v1/events", made["token"], "after", 8) == [401] * 8
    assert spread(first, "", made["token"], "after", 8, "POST") == [401] * 8
    assert spread(second, "", made["token"], "after", 8, "POST") == [401] * 8
    assert spread(first, "/v1/events", made["token"], "after", 8) == [401] * 8
    assert stored(second, "after") == []
    assert spread(second, "/v1/events", admin, "admin", 4) == [200] * 4


def sample(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format, or None when absent."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return None


def test_metrics_are_the_sum_of_every_worker(start_server: Any) -> None:
    server = start_server()  # as `audit serve` starts by default
    token = server.bootstrap_token
    for round_ in range(5):
        assert spread(server, "/v1/events", token, f"page{round_}", 30) == [200] * 30
        if served_by_both_workers(by_request_id(server, f"page{round_}", 30)):
            break
    pages = 30 * (round_ + 1)
    assert served_by_both_workers(
        [r for r in access_log(server) if r["request_id"].startswith("page")]
    )
    with requests.Session() as session:
        posted = session.post(
            f"{server.url}/v1/events",
            json={"events": [event(n) for n in range(7)]},
            headers=bearer(token),
            timeout=TIMEOUT,
        )
        assert posted.status_code == 201, posted.text
    assert spread(server, "/v1/events", "als_wrong", "bad", 12) == [401] * 12
    assert spread(server, "/v1/events/nope", token, "missing", 4) == [404] * 4

    response = requests.get(f"{server.url}/metrics", headers=bearer(token), timeout=TIMEOUT)
    assert response.status_code == 200
    text = response.text
    assert text.strip(), "an empty /metrics body"
    route = {"method": "GET", "route": "/v1/events"}
    assert sample(text, "audit_http_requests_total", **route, status="200") == pages
    assert sample(text, "audit_http_requests_total", **route, status="401") == 12
    assert (
        sample(
            text,
            "audit_http_requests_total",
            method="GET",
            route="/v1/events/<event_id>",
            status="404",
        )
        == 4
    )
    assert sample(text, "audit_http_request_duration_seconds_count", **route, status="200") == pages
    assert sample(
        text, "audit_http_request_duration_seconds_bucket", **route, status="200", le="+Inf"
    ) == (pages)
    assert sample(text, "audit_events_ingested_total", status="created") == 7
    assert sample(text, "audit_auth_failures_total", reason="invalid") == 12
    assert sample(text, "audit_auth_failures_total", reason="throttled") == 0
    for reason in ("busy", "disk_full", "unreachable"):
        assert sample(text, "audit_storage_errors_total", reason=reason) == 0


def test_the_access_log_is_one_json_object_per_request(start_server: Any) -> None:
    server = start_server()
    token = server.bootstrap_token
    sent = requests.get(
        f"{server.url}/v1/events?limit=5",
        headers={**bearer(token), "X-Request-Id": "trace-42"},
        timeout=TIMEOUT,
    )
    assert sent.headers["X-Request-Id"] == "trace-42"
    made_up = requests.get(
        f"{server.url}/healthz", headers={"X-Request-Id": "not a plain id"}, timeout=TIMEOUT
    )
    assert re.fullmatch(r"[0-9a-f]{16}", made_up.headers["X-Request-Id"])
    # A token sent as the request id by mistake is of the id's alphabet: replaced too.
    mistaken = requests.get(
        f"{server.url}/healthz", headers={"X-Request-Id": token}, timeout=TIMEOUT
    )
    assert re.fullmatch(r"[0-9a-f]{16}", mistaken.headers["X-Request-Id"])
    # A path and a query that would forge a line if written raw.
    forged = '%0A{"forged":true,"status":200}%0D%1B[31m'
    requests.get(
        f"{server.url}/v1/events/{forged}?x={forged}",
        headers={**bearer(token), "X-Request-Id": "forge-1"},
        timeout=TIMEOUT,
    )
    requests.get(f"{server.url}/v1/events", headers=bearer("als_nope"), timeout=TIMEOUT)

    deadline = time.monotonic() + 10
    records: list[dict[str, Any]] = []
    while len(records) < 5 and time.monotonic() < deadline:
        time.sleep(0.1)
        # Less the readiness probes of the test's start.
        records = [r for r in access_log(server) if r["route"] != "/readyz"]
    output = server.output()
    assert len(records) == 5
    [page] = [r for r in records if r["request_id"] == "trace-42"]
    assert page["method"] == "GET"
    assert page["route"] == "/v1/events"
    assert page["status"] == 200
    assert page["tenant"] == "default"
    assert re.fullmatch(r"tok_[0-9a-f]{16}", page["token_id"])
    assert page["client"] == "127.0.0.1"
    assert isinstance(page["duration_ms"], float)
    assert page["duration_ms"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", page["time"])
    logged = datetime.strptime(page["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs(datetime.now(UTC) - logged) < timedelta(minutes=5)  # now, in UTC
    assert "auth" not in page
    [evil] = [r for r in records if r["request_id"] == "forge-1"]
    # The rule if a route took the path (none does: a segment holds no control
    # character), never the path itself.
    assert evil["route"] in (None, "/v1/events/<event_id>")
    assert evil["status"] in (400, 404)
    [refused] = [r for r in records if r["status"] == 401]
    assert (refused["auth"], refused["tenant"], refused["token_id"]) == ("invalid", None, None)
    # Nothing a client sent reached the log but what the fields above hold.
    assert "forged" not in output
    assert "\x1b" not in output
    assert token not in output.split("Checkpoints are signed by")[-1]
    assert "als_nope" not in output


def hold_off_on_both_workers(server: Any, per_round: int) -> list[int]:
    """Guessed tokens, rounds of `per_round`, until both workers answered one with 429
    (each worker counts its own failures); the statuses of every guess."""
    statuses: list[int] = []
    for round_ in range(10):
        statuses += spread(server, "/v1/events", "als_guess", f"guess{round_}", per_round)
        held = [r for r in access_log(server) if r["request_id"].startswith("guess")]
        if served_by_both_workers([r for r in held if r["status"] == 429]):
            return statuses
    pytest.fail(f"both workers never held the address off: {statuses}")


def test_failed_authentication_holds_an_address_off_but_not_its_tokens(
    start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 5
    monkeypatch.setenv("AUDIT_AUTH_FAILURE_LIMIT", str(limit))
    server = start_server(workers=2)
    token = server.bootstrap_token
    # The token in use, known to both workers: which worker accepts a connection is
    # gunicorn's (on a busy machine one may take every one of a round), so go on until
    # both have served it; the rest of the test depends on it.
    for round_ in range(30):
        assert spread(server, "/v1/events", token, f"use{round_}", 30) == [200] * 30
        if served_by_both_workers(by_request_id(server, f"use{round_}", 30)):
            break
    else:
        pytest.fail("30 rounds of 30 requests never reached both workers")

    statuses = hold_off_on_both_workers(server, 30)
    assert set(statuses) == {401, 429}
    # Each worker counts its own failures: limit x workers are heard, and the requests
    # already under way when the limit was reached (8 at a time here).
    assert statuses.count(401) <= limit * 2 + 8
    for n in range(8):
        held = get(server, "/v1/events", None, f"no-token-{n}")
        assert held.status_code == 429
        assert held.json()["error"]["code"] == "too_many_requests"
        assert 1 <= int(held.headers["Retry-After"]) <= 60
    # The address's token in use keeps working, on every worker.
    assert spread(server, "/v1/events", token, "still", 30) == [200] * 30
    guesses = [r for r in access_log(server) if r["request_id"].startswith("guess")]
    throttled = [r for r in guesses if r["status"] == 429]
    assert throttled
    assert {r["auth"] for r in throttled} == {"throttled"}
    metrics = requests.get(f"{server.url}/metrics", headers=bearer(token), timeout=TIMEOUT).text
    assert (
        sample(metrics, "audit_auth_failures_total", reason="throttled") == statuses.count(429) + 8
    )
    assert sample(metrics, "audit_auth_failures_total", reason="invalid") == statuses.count(401)


def test_a_token_one_worker_accepted_passes_the_throttle_on_every_worker(
    start_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    limit = 5
    monkeypatch.setenv("AUDIT_AUTH_FAILURE_LIMIT", str(limit))
    folders = Path(server_env()["TMPDIR"])
    before = set(folders.glob("audit-tokens-*"))
    server = start_server(workers=2)
    token = server.bootstrap_token
    # Three uses on one kept-alive connection: one worker has accepted the token, the
    # other has never seen it.
    with requests.Session() as session:
        for n in range(3):
            headers = {**bearer(token), "X-Request-Id": f"first-{n}"}
            used = session.get(f"{server.url}/v1/events", headers=headers, timeout=TIMEOUT)
            assert used.status_code == 200
    accepting = {r["pid"] for r in by_request_id(server, "first", 3)}
    assert len(accepting) == 1

    guessed = hold_off_on_both_workers(server, 10)
    assert set(guessed) == {401, 429}

    # The token, on new connections, until the worker that had never seen it answered.
    statuses: list[int] = []
    for n in range(40):
        statuses.append(get(server, "/v1/events", token, f"good-{n}").status_code)
        if {r["pid"] for r in by_request_id(server, "good", n + 1)} - accepting:
            break
    assert statuses == [200] * len(statuses)
    assert {r["pid"] for r in by_request_id(server, "good", len(statuses))} - accepting, (
        "every request went to the worker that had accepted the token"
    )
    # Guesses and requests without a token are still held off, by every worker.
    for round_ in range(5):
        assert spread(server, "/v1/events", "als_guess", f"again{round_}", 10) == [429] * 10
        if served_by_both_workers(by_request_id(server, f"again{round_}", 10)):
            break
    else:
        pytest.fail("5 rounds of 10 guesses never reached both workers")
    assert get(server, "/v1/events", None, "no-token").status_code == 429
    # What the workers share: one owner-only file in a folder of the server's own, which
    # goes when the server does.
    (folder,) = set(folders.glob("audit-tokens-*")) - before
    assert stat.S_IMODE((folder / "known-tokens").stat().st_mode) == 0o600
    server.stop()
    assert not folder.exists()


@contextlib.contextmanager
def write_locked(database: str) -> Iterator[None]:
    """Another process's write lock on the SQLite file (this test's, not the server's)."""
    connection = sqlite3.connect(database, timeout=5, isolation_level=None)
    try:
        connection.execute("BEGIN IMMEDIATE")
        yield
    finally:
        connection.execute("ROLLBACK")
        connection.close()


def test_reads_answer_while_another_process_holds_the_write_lock(start_server: Any) -> None:
    server = start_server()
    token = server.bootstrap_token
    created = requests.post(
        f"{server.url}/v1/events",
        json={"events": [event(n) for n in range(5)]},
        headers=bearer(token),
        timeout=TIMEOUT,
    )
    assert created.status_code == 201
    made = make_token(server, "events:read")  # first used only under the lock
    database = str(sqlite_path(server.database_url))
    reads = [
        "/v1/events",
        "/v1/events?actor_id=user-1",
        "/v1/events/evt-1",
        "/v1/events/evt-1/proof",
        "/v1/checkpoint",
        "/v1/consistency?first=2&second=5",
        "/v1/verify",
        "/v1/export?format=ndjson",
        "/v1/export?format=csv",
        "/v1/tokens",
        "/readyz",
    ]
    with write_locked(database):
        for path in reads:
            for user in (token, made["token"]):
                response = get(server, path, user, "locked")
                assert response.status_code == (
                    403 if path == "/v1/tokens" and user != token else 200
                ), (
                    path,
                    response.text,
                )
        started = time.monotonic()
        refused = requests.post(
            f"{server.url}/v1/events", json=event(99), headers=bearer(token), timeout=TIMEOUT
        )
        assert refused.status_code == 503, refused.text
        assert refused.json()["error"]["code"] == "unavailable"
        assert int(refused.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 15  # the lock timeout, not forever
    assert (
        requests.post(
            f"{server.url}/v1/events", json=event(99), headers=bearer(token), timeout=TIMEOUT
        ).status_code
        == 201
    )
    metrics = requests.get(f"{server.url}/metrics", headers=bearer(token), timeout=TIMEOUT).text
    assert sample(metrics, "audit_storage_errors_total", reason="busy") == 1
