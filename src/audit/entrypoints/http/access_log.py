"""The access log: one JSON object per request, written to stderr in one write.

Fields: `time` (UTC, RFC 3339), `method`, `route` (the URL rule, never the raw path),
`status`, `duration_ms`, `tenant` and `token_id` (null unless authenticated), `client`
(the peer address), `request_id` (the client's `X-Request-Id` when it is a plain token of
at most 128 characters, else a new one; echoed in the response), `pid` (the worker), and
`auth` when authentication failed (`missing`, `invalid`, `throttled`); a request the
server could not read as HTTP gets a line from the worker (unparsed_request_record), with
`error` instead of a method and route. Never a token, a
body, a query string or a raw path: nothing a client sends reaches the log but the method
(one of a fixed set) and a request id of a fixed alphabet, and orjson escapes every
control character, so no client can write a line of its own.
"""

from __future__ import annotations

import itertools
import os
import re
import secrets
import time
from collections.abc import Callable
from typing import Any

import orjson
from flask import Flask, Response, g, request

from audit.domain.time import format_micros
from audit.domain.tokens import TOKEN_PREFIX, Principal
from audit.entrypoints.http.auth import AUTH_FAILURE

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_STARTED = "audit_access_started"
_REQUEST_ID_KEY = "audit_request_id"


def write_stderr(line: bytes) -> None:
    """One write(2) per line, so lines of concurrent requests do not interleave."""
    view = memoryview(line)
    while view:
        view = view[os.write(2, view) :]


def request_id() -> str:
    """This request's id: the client's, when it is a plain token, else a new one."""
    return _request_id(request.environ, g._get_current_object())


def _request_id(environ: dict[str, Any], store: Any) -> str:
    found = getattr(store, _REQUEST_ID_KEY, None)
    if found is None:
        sent = environ.get("HTTP_X_REQUEST_ID")
        # A token sent there by mistake is of the same alphabet: never kept, or logged.
        usable = sent and _REQUEST_ID.fullmatch(sent) and not sent.startswith(TOKEN_PREFIX)
        found = sent if usable else _new_request_id()
        setattr(store, _REQUEST_ID_KEY, found)
    return str(found)


class _RequestIds:
    """Ids for requests that bring none: 16 hex digits, the process's random prefix then a
    count. Unique, not secret (the client is sent it, the log keeps it), so no
    getrandom(2) per request, which lets go of the GIL for the worker's other threads."""

    def __init__(self) -> None:
        self.fresh()

    def fresh(self) -> None:
        self._prefix = secrets.token_hex(4)
        self._counter = itertools.count()

    def __call__(self) -> str:
        return f"{self._prefix}{next(self._counter) & 0xFFFFFFFF:08x}"


_new_request_id = _RequestIds()
os.register_at_fork(after_in_child=_new_request_id.fresh)  # each worker a prefix of its own


def unparsed_request_record(status: int, client: str | None, error: str) -> bytes:
    """The access log's line for a request the server could not read as HTTP (the
    worker answered it without the app): no method, route or identity to give."""
    record = {
        "time": format_micros(time.time_ns() // 1000)[:-4] + "Z",
        "method": None,
        "route": None,
        "status": status,
        "duration_ms": None,
        "tenant": None,
        "token_id": None,
        "client": client,
        "request_id": _new_request_id(),
        "pid": os.getpid(),
        "error": error,
    }
    return orjson.dumps(record) + b"\n"


def _begin() -> None:
    g.setdefault(_STARTED, time.perf_counter())


def _record(response: Response) -> dict[str, Any]:
    # Each look through Flask's `request` and `g` proxies costs: resolve them once.
    current = request._get_current_object()  # type: ignore[attr-defined]
    store = g._get_current_object()
    environ = current.environ
    started = getattr(store, _STARTED, None)
    principal = getattr(store, "flask_httpauth_user", None)
    if not isinstance(principal, Principal):
        principal = None
    method = environ.get("REQUEST_METHOD", "")
    rule = current.url_rule
    record: dict[str, Any] = {
        # RFC 3339 to the millisecond (truncated), from the formatter of stored times,
        # which writes each second's text once.
        "time": format_micros(time.time_ns() // 1000)[:-4] + "Z",
        "method": method if method in _METHODS else "OTHER",
        "route": rule.rule if rule is not None else None,
        "status": response.status_code,
        "duration_ms": None if started is None else round((time.perf_counter() - started) * 1e3, 3),
        "tenant": principal.tenant if principal else None,
        "token_id": principal.token_id if principal else None,
        "client": environ.get("REMOTE_ADDR"),
        "request_id": _request_id(environ, store),
        "pid": os.getpid(),
    }
    failure = getattr(store, AUTH_FAILURE, None)
    if failure is not None:
        record["auth"] = failure
    return record


def install(app: Flask, write: Callable[[bytes], None] | None = None) -> None:
    """Log every request the app answers, errors included, and echo its request id."""
    writer = write or write_stderr

    def finish(response: Response) -> Response:
        record = _record(response)
        response.headers[REQUEST_ID_HEADER] = record["request_id"]
        if response.is_streamed:
            # An export is logged when its last byte is sent, with the time it took.
            started = g.get(_STARTED)

            def at_close() -> None:
                if started is not None:
                    record["duration_ms"] = round((time.perf_counter() - started) * 1e3, 3)
                writer(orjson.dumps(record) + b"\n")

            response.call_on_close(at_close)
        else:
            writer(orjson.dumps(record) + b"\n")
        return response

    app.before_request(_begin)
    app.after_request(finish)
