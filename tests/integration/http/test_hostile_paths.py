"""Paths and parameters no storage can hold, and the headers every answer carries."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient
from tests.integration.http.support import Headers, assert_error, event, on_every_storage
from tests.openapi_check import CheckedClient
from werkzeug.routing import UnicodeConverter

NUL_PATHS = [
    ("GET", "/v1/events/a%00b"),
    ("GET", "/v1/events/%00"),
    ("GET", "/v1/events/a%00b/proof"),
    ("DELETE", "/v1/tokens/a%00b"),
    ("GET", "/v1/events/a%00%0d%0aforged: line"),
]


@on_every_storage
@pytest.mark.parametrize(("method", "path"), NUL_PATHS)
def test_a_path_id_with_a_nul_byte_is_not_found_on_every_storage(
    client: FlaskClient, headers: Headers, method: str, path: str
) -> None:
    assert_error(client.open(path, method=method, headers=headers), 404, "not_found")


@on_every_storage
def test_a_nul_path_leaves_the_stored_events_alone(client: FlaskClient, headers: Headers) -> None:
    stored = client.post("/v1/events", json=event(id="a"), headers=headers)
    assert stored.status_code == 201
    assert_error(client.get("/v1/events/a%00", headers=headers), 404, "not_found")
    assert client.get("/v1/events/a", headers=headers).status_code == 200


QUERY_PATHS = [
    "/v1/events",
    "/v1/export",
    "/v1/verify",
    "/v1/checkpoint",
    "/v1/consistency",
    "/v1/tokens",
    "/get_logs",
]


@on_every_storage
@pytest.mark.parametrize("path", QUERY_PATHS)
@pytest.mark.parametrize(
    "query", ["actor_id=a%00b", "q=%00", "a%00b=1", "since=2026-01-01T00:00:00Z%00"]
)
def test_a_query_parameter_with_a_nul_byte_is_an_invalid_parameter(
    client: FlaskClient, headers: Headers, path: str, query: str
) -> None:
    assert_error(client.get(f"{path}?{query}", headers=headers), 400, "invalid_parameter")


def test_the_log_shows_a_hostile_path_on_one_line(
    app: Flask, headers: Headers, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(rest: str) -> str:
        raise RuntimeError("a bug")

    # A route taking any byte (no route of the API does) that fails: the error is logged.
    app.url_map.converters["raw"] = UnicodeConverter
    app.add_url_rule("/fail/<raw:rest>", view_func=fail)
    client = app.test_client()
    assert isinstance(client, CheckedClient)
    with caplog.at_level(logging.ERROR), client.undocumented(500):  # a bug's status, on purpose
        response = client.get("/fail/a%0d%0aforged: line%00", headers=headers)
    assert_error(response, 500, "internal_error")
    messages = [record.getMessage() for record in caplog.records]
    assert any("forged" in message for message in messages)
    for message in messages:
        assert "\n" not in message
        assert "\r" not in message
        assert "\x00" not in message


@on_every_storage
def test_a_form_keyword_with_a_nul_byte_is_an_invalid_parameter(
    client: FlaskClient, headers: Headers
) -> None:
    response = client.get("/get_logs", data={"user": "a\x00b"}, headers=headers)
    assert_error(response, 400, "invalid_parameter")


SAFETY_HEADERS = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


@pytest.mark.parametrize(
    ("method", "path", "authorised", "status"),
    [
        ("GET", "/healthz", False, 200),
        ("GET", "/openapi.json", False, 200),
        ("GET", "/v1/public-key", False, 200),
        ("GET", "/v1/events", True, 200),
        ("GET", "/v1/export?format=csv", True, 200),
        ("GET", "/v1/checkpoint", True, 200),
        ("GET", "/v1/events", False, 401),
        ("GET", "/v1/events?nosuch=1", True, 400),
        ("GET", "/v1/events/nosuch", True, 404),
        ("GET", "/no/such/path", False, 404),
        ("GET", "/v1/events/a%00b", True, 404),
        ("PUT", "/v1/events", True, 405),
        ("POST", "/v1/events", True, 415),
    ],
)
def test_every_answer_carries_nosniff_and_no_store(
    client: FlaskClient, headers: Headers, method: str, path: str, authorised: bool, status: int
) -> None:
    response = client.open(path, method=method, headers=headers if authorised else {})
    assert response.status_code == status
    for name, value in SAFETY_HEADERS.items():
        assert response.headers.get(name) == value, name
