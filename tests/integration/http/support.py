"""Helpers of the HTTP tests (fixtures are in conftest.py)."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

START = datetime(2026, 11, 28, 10, 0, 0, tzinfo=UTC)
MAX_BODY_BYTES = 64 * 1024

on_every_storage = pytest.mark.parametrize(
    "database",
    ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)

Headers = dict[str, str]
# make_token(*scopes, tenant="acme", expires_at=None) -> secret
MakeToken = Callable[..., str]
# auth_headers(*scopes, tenant="acme") -> Authorization headers
AuthHeaders = Callable[..., Headers]


def bearer(secret: str) -> Headers:
    return {"Authorization": f"Bearer {secret}"}


def event(**fields: Any) -> dict[str, Any]:
    """A valid event as a client sends it, with `fields` changed."""
    doc: dict[str, Any] = {"action": "document.update", "actor": {"id": "u-1", "type": "user"}}
    doc.update(fields)
    return doc


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is API.md's JSON error with this status and code; returns the error."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"}
    error: dict[str, Any] = body["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str)
    assert error["message"]
    assert "Traceback" not in response.get_data(as_text=True)
    return error


def post_chunked(client: FlaskClient, path: str, body: bytes, headers: Headers) -> TestResponse:
    """POST as a chunked request arrives from a server such as gunicorn: no Content-Length,
    and `wsgi.input_terminated` set because the server ends the stream."""
    environ = EnvironBuilder(
        path=path,
        method="POST",
        headers=[*headers.items(), ("Transfer-Encoding", "chunked")],
        content_type="application/json",
        input_stream=io.BytesIO(body),
        environ_overrides={"wsgi.input_terminated": True},
    ).get_environ()
    # The builder measures the stream; a chunked request has no length to measure.
    del environ["CONTENT_LENGTH"]
    return client.open(Request(environ))
