"""Ingest and pages on a kept principal: `POST /v1/events` and `GET /v1/events` read no
revocation epoch before they record or read, and the operation's own transaction (or
the page's own statement) checks it instead. A token revoked after this process kept it
is refused on its very next request, whatever that request holds; nothing of it is
stored and no event of the log is sent."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.integration.http.support import (
    AuthHeaders,
    assert_error,
    bearer,
    event,
    on_every_storage,
)

from audit.container import Container
from audit.domain.tokens import Scope


@pytest.fixture
def kept_token(client: FlaskClient, auth_headers: AuthHeaders) -> dict[str, Any]:
    """A write token this process has used, so it keeps its principal."""
    made = client.post(
        "/v1/tokens",
        json={"name": "ingest", "scopes": ["events:write", "events:read"]},
        headers=auth_headers(),
    )
    assert made.status_code == 201
    token: dict[str, Any] = made.get_json()
    written = client.post("/v1/events", json=event(id="before"), headers=bearer(token["token"]))
    assert written.status_code == 201
    return token


def revoke(client: FlaskClient, auth_headers: AuthHeaders, token: dict[str, Any]) -> None:
    admin = auth_headers()
    assert client.delete(f"/v1/tokens/{token['id']}", headers=admin).status_code == 204


def stored_ids(client: FlaskClient, auth_headers: AuthHeaders) -> list[str]:
    page = client.get("/v1/events?limit=100&order=asc", headers=auth_headers(Scope.EVENTS_READ))
    return [e["id"] for e in page.get_json()["events"]]


def test_ingest_takes_a_kept_principal_without_reading_the_epoch(
    client: FlaskClient, container: Container, kept_token: dict[str, Any]
) -> None:
    reads = 0
    epoch = container.revocation_epoch()
    current = epoch.current

    def counted() -> int:
        nonlocal reads
        reads += 1
        return current()

    epoch.current = counted  # type: ignore[method-assign]
    secret = bearer(kept_token["token"])
    assert client.post("/v1/events", json=event(id="e-1"), headers=secret).status_code == 201
    assert client.post("/v1/events", json={"events": [event()]}, headers=secret).status_code == 201
    assert client.get("/v1/events?limit=1", headers=secret).status_code == 200
    assert client.post("/save_logs", data={"m": "x"}, headers=secret).status_code == 200
    assert reads == 0
    # One event by id reads the epoch first, as every other route does.
    assert client.get("/v1/events/e-1", headers=secret).status_code == 200
    assert reads == 1


@on_every_storage
@pytest.mark.parametrize(
    "body",
    [
        pytest.param(event(id="after"), id="single"),
        pytest.param({"events": [event(id="after"), event()]}, id="batch"),
        pytest.param(event(id="before"), id="duplicate"),
    ],
)
def test_a_revoked_kept_token_is_refused_and_nothing_is_stored(
    client: FlaskClient,
    auth_headers: AuthHeaders,
    kept_token: dict[str, Any],
    body: dict[str, Any],
) -> None:
    revoke(client, auth_headers, kept_token)
    refused = client.post("/v1/events", json=body, headers=bearer(kept_token["token"]))
    assert_error(refused, 401, "unauthorized")
    assert 'error="invalid_token"' in refused.headers["WWW-Authenticate"]
    assert stored_ids(client, auth_headers) == ["before"]


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        pytest.param(b'{"action": 1}', "application/json", id="invalid event"),
        pytest.param(b"{not json", "application/json", id="malformed"),
        pytest.param(b"x" * 2_000_000, "application/json", id="too large"),
        pytest.param(b"{}", "text/plain", id="not json"),
    ],
)
def test_a_revoked_kept_token_gets_401_not_the_bodys_error(
    client: FlaskClient,
    auth_headers: AuthHeaders,
    kept_token: dict[str, Any],
    body: bytes,
    content_type: str,
) -> None:
    revoke(client, auth_headers, kept_token)
    refused = client.post(
        "/v1/events",
        data=body,
        headers={**bearer(kept_token["token"]), "Content-Type": content_type},
    )
    assert_error(refused, 401, "unauthorized")


@on_every_storage
def test_another_tokens_revocation_costs_a_kept_token_nothing(
    client: FlaskClient, auth_headers: AuthHeaders, kept_token: dict[str, Any]
) -> None:
    other = client.post(
        "/v1/tokens",
        json={"name": "other", "scopes": ["events:write"]},
        headers=auth_headers(),
    ).get_json()
    revoke(client, auth_headers, other)
    # Refused by the writer as stale, authenticated again, recorded: one 201.
    accepted = client.post("/v1/events", json=event(id="e-2"), headers=bearer(kept_token["token"]))
    assert accepted.status_code == 201
    assert accepted.get_json()["id"] == "e-2"
    assert stored_ids(client, auth_headers) == ["before", "e-2"]


@on_every_storage
@pytest.mark.parametrize(
    "query",
    [
        pytest.param("", id="page"),
        pytest.param("?actor_id=u-1&limit=5", id="filtered"),
        pytest.param("?q=nothing-holds-this", id="empty page"),
        pytest.param("?limit=0", id="bad parameter"),
        pytest.param("?cursor=forged", id="bad cursor"),
    ],
)
def test_a_revoked_kept_token_reads_no_page(
    client: FlaskClient, auth_headers: AuthHeaders, kept_token: dict[str, Any], query: str
) -> None:
    secret = bearer(kept_token["token"])
    assert client.get("/v1/events", headers=secret).status_code == 200  # kept for pages too
    revoke(client, auth_headers, kept_token)
    refused = client.get(f"/v1/events{query}", headers=secret)
    assert_error(refused, 401, "unauthorized")
    assert "before" not in refused.get_data(as_text=True)


@on_every_storage
def test_another_tokens_revocation_still_serves_a_kept_tokens_page(
    client: FlaskClient, auth_headers: AuthHeaders, kept_token: dict[str, Any]
) -> None:
    secret = bearer(kept_token["token"])
    assert client.get("/v1/events", headers=secret).status_code == 200
    other = client.post(
        "/v1/tokens", json={"name": "other", "scopes": ["events:read"]}, headers=auth_headers()
    ).get_json()
    revoke(client, auth_headers, other)
    # The page's epoch is stale: authenticated again, read again, one 200.
    page = client.get("/v1/events", headers=secret)
    assert page.status_code == 200
    assert [e["id"] for e in page.get_json()["events"]] == ["before"]


@on_every_storage
def test_a_revoked_kept_token_saves_no_log_on_the_original_route(
    client: FlaskClient, auth_headers: AuthHeaders, kept_token: dict[str, Any]
) -> None:
    secret = bearer(kept_token["token"])
    saved = client.post("/save_logs", data={"user": "u", "message": "kept"}, headers=secret)
    assert saved.status_code == 200
    assert len(stored_ids(client, auth_headers)) == 2
    revoke(client, auth_headers, kept_token)
    refused = client.post("/save_logs", data={"user": "u", "message": "after"}, headers=secret)
    assert_error(refused, 401, "unauthorized")
    empty = client.post("/save_logs", data={}, headers=secret)  # else a 422
    assert_error(empty, 401, "unauthorized")
    assert len(stored_ids(client, auth_headers)) == 2
