"""Hostile requests against a real server on both engines: a JSON 4xx every time, never a
5xx, never an HTML page, and the server keeps serving."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import secrets
import socket
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from tests.faults.support import Row, Service, ledger_row

MIB = 1024 * 1024
EVENT = b'{"action": "a.b", "actor": {"id": "u"}'


def _events(body: bytes, content_type: str = "application/json") -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("Content-Length", str(len(body)))]


def _chunked(body: bytes, piece: int = 65536) -> bytes:
    out = [b"%x\r\n%s\r\n" % (len(body[i : i + piece]), body[i : i + piece])
           for i in range(0, len(body), piece)]  # fmt: skip
    return b"".join(out) + b"0\r\n\r\n"


# name -> (method, target, extra headers, body, authorised)
CASES: dict[str, tuple[str, str, list[tuple[str, str]], bytes, bool]] = {}


def case(name: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes,
         authorised: bool = True) -> None:  # fmt: skip
    CASES[name] = (method, target, headers, body, authorised)


big = b'{"events": [' + b",".join([EVENT + b', "description": "' + b"x" * 1000 + b'"}'] * 6500)
big += b"]}"
case("oversize body (6 MiB)", "POST", "/v1/events", _events(big), big)
CHUNKED = [("Content-Type", "application/json"), ("Transfer-Encoding", "chunked")]
case("oversize chunked body", "POST", "/v1/events", CHUNKED, _chunked(big))
case("garbled chunked body", "POST", "/v1/events", CHUNKED, b"zz\r\n{}\r\n0\r\n\r\n")
FORM_CHUNKED = [("Content-Type", "application/x-www-form-urlencoded"), *CHUNKED[1:]]
case("garbled chunked form", "POST", "/save_logs", FORM_CHUNKED, b"zz\r\na=b\r\n0\r\n\r\n")
deep = EVENT + b', "metadata": {"x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}}"
case("deep nesting", "POST", "/v1/events", _events(deep), deep)
for name, literal in (("NaN", b"NaN"), ("Infinity", b"Infinity"), ("-Infinity", b"-Infinity")):
    doc = EVENT + b', "metadata": {"x": ' + literal + b"}}"
    case(name, "POST", "/v1/events", _events(doc), doc)
surrogate = EVENT + b', "description": "\\ud800 alone"}'
case("lone surrogate", "POST", "/v1/events", _events(surrogate), surrogate)
escaped_nul = EVENT + b', "description": "a\\u0000b"}'
case("NUL escaped in a string", "POST", "/v1/events", _events(escaped_nul), escaped_nul)
raw_nul = EVENT + b', "description": "a\x00b"}'
case("NUL byte in the body", "POST", "/v1/events", _events(raw_nul), raw_nul)
not_utf8 = EVENT + b', "description": "caf\xe9"}'
case("invalid UTF-8", "POST", "/v1/events", _events(not_utf8), not_utf8)
duplicate = b'{"action": "a.b", "action": "c.d", "actor": {"id": "u"}}'
case("duplicate keys", "POST", "/v1/events", _events(duplicate), duplicate)
case("wrong content type", "POST", "/v1/events", _events(EVENT + b"}", "text/plain"), EVENT + b"}")
case("form content type", "POST", "/v1/events",
     _events(b"action=a.b", "application/x-www-form-urlencoded"), b"action=a.b")  # fmt: skip
case("NUL in a path id", "GET", "/v1/events/a%00b", [], b"")
case("NUL in a proof path", "GET", "/v1/events/a%00b/proof", [], b"")
case("NUL in a token id", "DELETE", "/v1/tokens/a%00b", [], b"")
case("NUL in a query value", "GET", "/v1/events?actor_id=a%00b", [], b"")
case("CR LF in a path", "GET", "/v1/events/a%0d%0aX-Forged:%201", [], b"")
token_junk = b'{"name": "x", "scopes": "events:read", "scopes": []}'
case("duplicate keys, tokens", "POST", "/v1/tokens", _events(token_junk), token_junk)
# Malformed HTTP, answered by the server before the app.
case("giant header (64 KiB)", "GET", "/v1/events", [("X-Big", "x" * 65536)], b"")
case("too many headers", "GET", "/v1/events", [(f"X-H{n}", "x") for n in range(200)], b"")
case("request line of 16 KiB", "GET", "/v1/events?q=" + "x" * 16384, [], b"")
case("garbled request line", "GET", "/v1/events HTTP/1.1 and then some", [], b"")
case("no HTTP at all", "\x16\x03\x01 TLS", "hello", [], b"")


def exchange(
    port: int, raw: bytes, timeout: float = 30
) -> tuple[int, http.client.HTTPMessage | None, bytes]:
    """Send raw bytes; the answer's status, headers and body (status 0: no answer)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer and close before reading all of a refused body.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(raw)
        response = http.client.HTTPResponse(sock)
        try:
            response.begin()
            body = response.read()
        except (ConnectionResetError, http.client.HTTPException, TimeoutError):
            return 0, None, b""
        return response.status, response.msg, body


def request_bytes(name: str, token: str) -> bytes:
    method, target, headers, body, authorised = CASES[name]
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    if authorised:
        lines.append(f"Authorization: Bearer {token}")
    lines += [f"{key}: {value}" for key, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[str]:
    server_url = os.environ.get("AUDIT_TEST_POSTGRES_URL")
    if not server_url:
        pytest.skip("set AUDIT_TEST_POSTGRES_URL to run the PostgreSQL cases")
    url = make_url(server_url).set(drivername="postgresql+psycopg")
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    name = f"audit_faults_{secrets.token_hex(6)}"
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def served(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Service, Row]]:
    work = tmp_path_factory.mktemp(f"bad-input-{request.param}")
    if request.param == "sqlite":
        url = f"sqlite:///{work / 'audit.db'}"
    else:
        url = request.getfixturevalue("private_postgres")
    service = Service(url, work, env={"AUDIT_SIGNING_KEY_FILE": str(work / "signing.key")})
    row = ledger_row(f"bad input ({len(CASES)} kinds), {request.param}")
    try:
        service.start()
        yield service, row
        # Still serving after all of it.
        assert requests.get(f"{service.url}/healthz", timeout=10).status_code == 200
    finally:
        service.kill()


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_a_json_4xx(served: tuple[Service, Row], name: str) -> None:
    service, row = served
    assert service.bootstrap_token
    raw = request_bytes(name, service.bootstrap_token)
    status, headers, body = exchange(service.port, raw)
    content_type = "" if headers is None else headers.get("Content-Type", "")
    row.tried += 1
    good = 400 <= status < 500 and content_type.startswith("application/json")
    if good:
        error = json.loads(body)["error"]
        good = isinstance(error["code"], str) and b"<html" not in body.lower()
    row.survived += int(good)
    assert 400 <= status < 500, (status, body[:300])
    assert content_type.startswith("application/json"), (content_type, body[:300])
    assert b"<html" not in body.lower()
    assert set(json.loads(body)) == {"error"}
    assert headers is not None
    assert headers.get("X-Content-Type-Options") == "nosniff"
    assert headers.get("Cache-Control") == "no-store"
