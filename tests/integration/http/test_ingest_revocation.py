"""Ingest on a kept principal: `POST /v1/events` reads no revocation epoch before it
records, and the recording's own transaction checks it instead. A token revoked after
this process kept it is refused on its very next request, whatever that request holds,
and nothing of it is stored."""

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
    assert reads == 0
    assert client.get("/v1/events", headers=secret).status_code == 200  # reads still ask
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
