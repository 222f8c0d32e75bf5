"""API.md's error table, answered by a real `audit serve` (gunicorn) on loopback."""

from __future__ import annotations

import json
import sqlite3
import threading
from typing import Any

import pytest
import requests
from tests.integration.server.support import bearer, event, run_audit, sqlite_path

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]


def _token(server: Any, tenant: str, *scopes: str) -> str:
    args = ["tokens", "create", "--database-url", server.database_url, "--tenant", tenant]
    for scope in scopes:
        args += ["--scope", scope]
    done = run_audit(*args)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def _error(response: requests.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    return dict(body["error"])


def test_every_row_of_the_error_table(start_server: Any) -> None:
    server = start_server()
    url = server.url
    writer = _token(server, "acme", "events:write", "events:read")
    reader = _token(server, "acme", "events:read")
    json_headers = {**bearer(writer), "Content-Type": "application/json"}

    def post(data: bytes, headers: dict[str, str] | None = None) -> requests.Response:
        return requests.post(
            f"{url}/v1/events", data=data, headers=headers or json_headers, timeout=30
        )

    # 400 malformed_json: not JSON, not UTF-8, NaN, a repeated key
    for body in (b"{", b'{"action": "\xff"}', b'{"metadata": {"x": NaN}}', b'{"a": 1, "a": 2}'):
        _error(post(body), 400, "malformed_json")
    # 400 invalid_parameter: an unknown filter must never return unfiltered results
    for query in ("actor=u-1", "limit=0", "limit=1001", "since=yesterday", "cursor=garbage"):
        response = requests.get(f"{url}/v1/events?{query}", headers=bearer(reader), timeout=10)
        _error(response, 400, "invalid_parameter")
    # 401 unauthorized, with WWW-Authenticate: Bearer
    for headers in ({}, bearer("als_not-a-token"), {"Authorization": "Basic dXNlcjpwdw=="}):
        response = requests.get(f"{url}/v1/events", headers=headers, timeout=10)
        _error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # 403 forbidden: a token without the scope
    _error(
        post(json.dumps(event(1)).encode(), {**bearer(reader), "Content-Type": "application/json"}),
        403,
        "forbidden",
    )
    # 404 not_found: no such event, another tenant's, no such route
    assert post(json.dumps(event(1)).encode()).status_code == 201
    other = _token(server, "globex", "events:read")
    _error(
        requests.get(f"{url}/v1/events/evt-1", headers=bearer(other), timeout=10), 404, "not_found"
    )
    _error(requests.get(f"{url}/v1/nothing", headers=bearer(reader), timeout=10), 404, "not_found")
    # 405 method_not_allowed: events are never updated or deleted
    for method in ("PUT", "PATCH", "DELETE"):
        response = requests.request(
            method, f"{url}/v1/events/evt-1", headers=json_headers, timeout=10
        )
        _error(response, 405, "method_not_allowed")
    # 409 conflict: a stored id with other content
    changed = json.dumps(event(1, outcome="failure")).encode()
    _error(post(changed), 409, "conflict")
    # 413 payload_too_large: a batch over 1000 events
    batch = json.dumps({"events": [event(n) for n in range(1001)]}).encode()
    _error(post(batch), 413, "payload_too_large")
    # 415 unsupported_media_type
    _error(
        post(json.dumps(event(2)).encode(), {**bearer(writer), "Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )
    # 422 validation_error, naming every problem with its index in a batch
    bad = json.dumps({"events": [event(3), {"action": "", "actor": {}, "tenant": "x"}]}).encode()
    details = _error(post(bad), 422, "validation_error")["details"]
    assert {(d["index"], d["field"]) for d in details} >= {
        (1, "action"),
        (1, "actor.id"),
        (1, "tenant"),
    }
    # Nothing of the refused requests was stored.
    stored = requests.get(f"{url}/v1/export", headers=bearer(reader), timeout=10).text
    assert [json.loads(line)["id"] for line in stored.splitlines()] == ["evt-1"]


def test_a_locked_database_is_a_503_with_retry_after_and_nothing_half_written(
    start_server: Any,
) -> None:
    server = start_server(workers=1, threads=4)
    token = server.bootstrap_token
    assert (
        requests.post(
            f"{server.url}/v1/events", json=event(1), headers=bearer(token), timeout=10
        ).status_code
        == 201
    )
    # Another program holds SQLite's write lock for longer than the service's busy timeout.
    holder = sqlite3.connect(
        sqlite_path(server.database_url), isolation_level=None, check_same_thread=False
    )
    holder.execute("BEGIN IMMEDIATE")
    released = threading.Timer(9, holder.rollback)
    released.start()
    try:
        response = requests.post(
            f"{server.url}/v1/events", json=event(2), headers=bearer(token), timeout=30
        )
        _error(response, 503, "unavailable")
        assert int(response.headers["Retry-After"]) >= 1
    finally:
        released.join()
        holder.close()
    # Once the lock is gone, the retry is stored, once, and the chain holds.
    retry = requests.post(
        f"{server.url}/v1/events", json=event(2), headers=bearer(token), timeout=30
    )
    assert retry.status_code == 201
    assert retry.json()["seq"] == 2
    verdict = requests.get(f"{server.url}/v1/verify", headers=bearer(token), timeout=10).json()
    assert verdict == {
        "valid": True,
        "checked": 2,
        "head": {"seq": 2, "hash": retry.json()["hash"]},
    }
