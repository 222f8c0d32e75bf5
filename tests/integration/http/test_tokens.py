"""Tokens over HTTP: issue in the caller's tenant, list without secrets, revoke."""

from __future__ import annotations

from datetime import timedelta

from flask.testing import FlaskClient
from tests.integration.http.support import (
    AuthHeaders,
    assert_error,
    bearer,
    event,
    on_every_storage,
)

from audit.adapters.clock import FixedClock
from audit.domain.tokens import Scope

TOKEN_KEYS = {"id", "name", "tenant", "scopes", "created_at", "expires_at"}


@on_every_storage
def test_a_token_lives_from_creation_to_revocation(
    client: FlaskClient, auth_headers: AuthHeaders
) -> None:
    admin = auth_headers()
    response = client.post(
        "/v1/tokens",
        json={"name": "ingest", "scopes": ["events:write", "events:read", "events:write"]},
        headers=admin,
    )
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert set(made) == TOKEN_KEYS | {"token"}
    assert made["tenant"] == "acme"
    assert made["name"] == "ingest"
    assert made["scopes"] == ["events:read", "events:write"]
    assert made["expires_at"] is None
    assert made["token"].startswith("als_")

    # The new token works, in its own tenant and scopes only.
    written = client.post("/v1/events", json=event(id="e1"), headers=bearer(made["token"]))
    assert written.status_code == 201
    assert written.get_json()["tenant"] == "acme"
    assert_error(client.get("/v1/tokens", headers=bearer(made["token"])), 403, "forbidden")

    listed = client.get("/v1/tokens", headers=admin).get_json()["tokens"]
    [entry] = [t for t in listed if t["id"] == made["id"]]
    assert set(entry) == TOKEN_KEYS | {"revoked_at", "last_used_at"}
    assert entry["revoked_at"] is None
    assert entry["last_used_at"] is not None
    text = client.get("/v1/tokens", headers=admin).get_data(as_text=True)
    assert made["token"] not in text
    assert "hash" not in text

    revoked = client.delete(f"/v1/tokens/{made['id']}", headers=admin)
    assert revoked.status_code == 204
    assert revoked.get_data() == b""
    denied = client.get("/v1/events", headers=bearer(made["token"]))
    assert_error(denied, 401, "unauthorized")
    assert denied.headers["WWW-Authenticate"].startswith("Bearer")
    listed = client.get("/v1/tokens", headers=admin).get_json()["tokens"]
    assert [t["revoked_at"] for t in listed if t["id"] == made["id"]] != [None]
    # Revoking again changes nothing.
    assert client.delete(f"/v1/tokens/{made['id']}", headers=admin).status_code == 204


def test_tokens_are_made_and_listed_in_the_callers_tenant_only(
    client: FlaskClient, auth_headers: AuthHeaders
) -> None:
    acme = auth_headers(Scope.TOKENS_ADMIN, tenant="acme")
    globex = auth_headers(Scope.TOKENS_ADMIN, tenant="globex")
    made = client.post("/v1/tokens", json={"name": "n", "scopes": ["tokens:admin"]}, headers=globex)
    assert made.get_json()["tenant"] == "globex"
    assert {t["tenant"] for t in client.get("/v1/tokens", headers=acme).get_json()["tokens"]} == {
        "acme"
    }
    ids = {t["id"] for t in client.get("/v1/tokens", headers=globex).get_json()["tokens"]}
    assert made.get_json()["id"] in ids
    assert_error(
        client.delete(f"/v1/tokens/{made.get_json()['id']}", headers=acme), 404, "not_found"
    )
    assert_error(client.delete("/v1/tokens/tok_nope", headers=acme), 404, "not_found")


def test_a_token_expires_when_it_says(
    client: FlaskClient, auth_headers: AuthHeaders, clock: FixedClock
) -> None:
    admin = auth_headers()
    body = {"name": "brief", "scopes": ["events:read"], "expires_at": "2026-11-28T12:00:00+01:00"}
    response = client.post("/v1/tokens", json=body, headers=admin)
    assert response.status_code == 201, response.get_json()
    made = response.get_json()
    assert made["expires_at"] == "2026-11-28T11:00:00.000000Z"
    assert client.get("/v1/events", headers=bearer(made["token"])).status_code == 200
    clock.advance(timedelta(minutes=59))
    assert client.get("/v1/events", headers=bearer(made["token"])).status_code == 200
    clock.advance(timedelta(minutes=1))
    assert_error(client.get("/v1/events", headers=bearer(made["token"])), 401, "unauthorized")
    # An expiry already past is refused when the token is made.
    body["expires_at"] = "2026-11-28T11:00:00Z"
    error = assert_error(
        client.post("/v1/tokens", json=body, headers=admin), 422, "validation_error"
    )
    assert error["details"][0]["field"] == "expires_at"


def test_a_token_cannot_grant_a_scope_it_does_not_hold(
    client: FlaskClient, auth_headers: AuthHeaders
) -> None:
    admin = auth_headers(Scope.TOKENS_ADMIN)
    refused = client.post(
        "/v1/tokens", json={"name": "ingest", "scopes": ["events:write"]}, headers=admin
    )
    assert_error(refused, 403, "forbidden")
    assert "events:write" in refused.get_json()["error"]["message"]
    listed = client.get("/v1/tokens", headers=admin).get_json()["tokens"]
    assert "ingest" not in [t["name"] for t in listed]
    granted = client.post(
        "/v1/tokens", json={"name": "deputy", "scopes": ["tokens:admin"]}, headers=admin
    )
    assert granted.status_code == 201


@on_every_storage
def test_a_token_cannot_grant_beyond_its_own_expiry(
    client: FlaskClient, auth_headers: AuthHeaders
) -> None:
    # The clock stands at 2026-11-28T10:00Z: an administrator's token of an hour.
    admin = auth_headers()
    body = {"name": "break-glass", "scopes": ["tokens:admin", "events:read"]}
    brief = client.post(
        "/v1/tokens", json={**body, "expires_at": "2026-11-28T11:00:00Z"}, headers=admin
    ).get_json()
    short = bearer(brief["token"])
    for asked in ({}, {"expires_at": "2026-11-28T11:00:00.000001Z"}):
        refused = client.post(
            "/v1/tokens", json={**body, "name": "forever", **asked}, headers=short
        )
        message = assert_error(refused, 403, "forbidden")["message"]
        assert "no later than 2026-11-28T11:00:00.000000Z" in message
    listed = client.get("/v1/tokens", headers=admin).get_json()["tokens"]
    assert "forever" not in [t["name"] for t in listed]
    within = client.post(
        "/v1/tokens",
        json={**body, "name": "within", "expires_at": "2026-11-28T11:00:00Z"},
        headers=short,
    )
    assert within.status_code == 201, within.get_json()
