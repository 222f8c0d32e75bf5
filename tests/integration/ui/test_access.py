"""The viewer's door: sign-in, the session cookie, CSRF and the headers on every page."""

from __future__ import annotations

import base64
import json
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from flask.testing import FlaskClient
from tests.integration.ui.conftest import MakeToken
from tests.integration.ui.support import csrf_of, sign_in

from audit.container import Container, build_container
from audit.domain.tokens import Scope
from audit.entrypoints.http import create_app
from audit.settings import Settings

PAGES = ["/ui/", "/ui/log", "/ui/events/evt-1", "/ui/export?format=csv"]


def _session_cookie(response: object) -> str:
    headers = getattr(response, "headers")  # noqa: B009 (a werkzeug TestResponse)
    [cookie] = [c for c in headers.getlist("Set-Cookie") if c.startswith("audit_viewer=")]
    return str(cookie)


@pytest.mark.parametrize("path", PAGES)
def test_without_a_session_every_page_leads_to_the_sign_in_form_and_back(
    client: FlaskClient, path: str
) -> None:
    response = client.get(path)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.path == "/ui/sign-in"
    assert parse_qs(location.query)["next"] == [path]


def test_signing_in_leads_back_to_the_page_asked_for(
    client: FlaskClient, make_token: MakeToken
) -> None:
    response = sign_in(client, make_token(), next_page="/ui/?actor_id=u-1")
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/?actor_id=u-1"
    page = client.get("/ui/?actor_id=u-1")
    assert page.status_code == 200
    assert "Tenant <strong>acme</strong>" in page.get_data(as_text=True)


@pytest.mark.parametrize(
    "next_page",
    ["https://evil.example/ui/", "//evil.example/ui/", "/v1/events", "/ui\\..\\x", "javascript:1"],
)
def test_signing_in_never_leads_to_another_site(
    client: FlaskClient, make_token: MakeToken, next_page: str
) -> None:
    response = sign_in(client, make_token(), next_page=next_page)
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/"


def test_an_unknown_token_is_refused_and_signs_nobody_in(client: FlaskClient) -> None:
    response = sign_in(client, "als_" + "x" * 40)
    assert response.status_code == 401
    assert "unknown, expired or revoked" in response.get_data(as_text=True)
    assert client.get("/ui/").status_code == 302


def test_a_token_without_events_read_is_refused(client: FlaskClient, make_token: MakeToken) -> None:
    response = sign_in(client, make_token(Scope.EVENTS_WRITE, Scope.TOKENS_ADMIN))
    assert response.status_code == 403
    assert "events:read" in response.get_data(as_text=True)
    assert client.get("/ui/").status_code == 302


def test_revoking_the_token_ends_its_sessions(
    client: FlaskClient, make_token: MakeToken, container: Container
) -> None:
    token = make_token()
    sign_in(client, token)
    assert client.get("/ui/").status_code == 200
    [listed] = container.list_tokens()("acme")
    container.revoke_token()("acme", listed.id)
    response = client.get("/ui/log")
    assert response.status_code == 302
    assert "ended=1" in response.headers["Location"]
    notice = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Your session ended" in notice


def test_signing_out_ends_the_session(client: FlaskClient, make_token: MakeToken) -> None:
    sign_in(client, make_token())
    page = client.get("/ui/")
    response = client.post("/ui/sign-out", data={"csrf_token": csrf_of(page)})
    assert response.status_code == 303
    assert response.headers["Location"] == "/ui/sign-in?signed_out=1"
    assert "audit_viewer=;" in _session_cookie(response)
    assert client.get("/ui/").status_code == 302


def test_the_cookie_is_http_only_same_site_strict_and_holds_no_token_in_clear(
    client: FlaskClient, make_token: MakeToken
) -> None:
    token = make_token()
    cookie = _session_cookie(sign_in(client, token))
    attributes = [part.strip() for part in cookie.split(";")]
    assert "HttpOnly" in attributes
    assert "SameSite=Strict" in attributes
    assert "Path=/ui" in attributes
    assert "Secure" not in attributes  # plain HTTP here: a Secure cookie would never return
    value = attributes[0].removeprefix("audit_viewer=")
    assert token not in value
    secret_part = token.removeprefix("als_").encode()
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        assert encode(secret_part).decode()[:16] not in value
    assert secret_part.hex()[:16] not in value


def test_over_https_the_cookie_is_secure(client: FlaskClient, make_token: MakeToken) -> None:
    page = client.get("/ui/sign-in", base_url="https://viewer.example")
    response = client.post(
        "/ui/sign-in",
        data={"token": make_token(), "csrf_token": csrf_of(page)},
        base_url="https://viewer.example",
    )
    assert response.status_code == 303
    assert "Secure" in [part.strip() for part in _session_cookie(response).split(";")]


def test_a_tampered_or_foreign_cookie_is_no_session(
    client: FlaskClient, make_token: MakeToken
) -> None:
    cookie = _session_cookie(sign_in(client, make_token()))
    value = cookie.split(";")[0].removeprefix("audit_viewer=")
    flipped = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    client.set_cookie("audit_viewer", flipped, path="/ui")
    assert client.get("/ui/").status_code == 302


@pytest.mark.parametrize("path", ["/ui/sign-in", "/ui/sign-out", "/ui/log/check"])
def test_a_form_without_its_csrf_token_is_refused(
    client: FlaskClient, make_token: MakeToken, path: str
) -> None:
    token = make_token()
    sign_in(client, token)
    response = client.post(path, data={"token": token})
    assert response.status_code == 400
    assert "Form expired" in response.get_data(as_text=True)
    assert client.get("/ui/").status_code == 200  # still signed in: sign-out did not happen


def test_a_csrf_token_of_another_session_is_refused(
    app: object, client: FlaskClient, make_token: MakeToken
) -> None:
    other = getattr(app, "test_client")()  # noqa: B009
    sign_in(other, make_token())
    foreign = csrf_of(other.get("/ui/"))
    sign_in(client, make_token())
    response = client.post("/ui/sign-out", data={"csrf_token": foreign})
    assert response.status_code == 400
    assert client.get("/ui/").status_code == 200


def _policy(response: object) -> dict[str, str]:
    header = getattr(response, "headers")["Content-Security-Policy"]  # noqa: B009
    return {part.split()[0]: part.strip() for part in header.split(";")}


@pytest.mark.parametrize(
    "path", [*PAGES[:3], "/ui/events/no-such-event", "/ui/no-such-page", "/ui/sign-in"]
)
def test_every_page_sends_a_strict_policy_and_is_never_cached(
    client: FlaskClient, make_token: MakeToken, path: str
) -> None:
    if path != "/ui/sign-in":
        sign_in(client, make_token())
    response = client.get(path)
    assert response.mimetype == "text/html"
    policy = _policy(response)
    assert policy["default-src"] == "default-src 'self'"
    assert policy["script-src"] == "script-src 'self'"  # no 'unsafe-inline', no other origin
    assert policy["frame-ancestors"] == "frame-ancestors 'none'"
    assert policy["form-action"] == "form-action 'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert "<script>" not in response.get_data(as_text=True)  # only <script src=...>


def test_the_root_leads_to_the_viewer(client: FlaskClient) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response.headers["Location"] == "/ui/"


STATIC_FILES = [
    ("viewer.css", "text/css"),
    ("viewer.js", "text/javascript"),
    ("favicon.svg", "image/svg+xml"),
]


@pytest.mark.parametrize(("name", "kind"), STATIC_FILES)
def test_the_static_files_ship_with_the_package_and_are_never_stored(
    client: FlaskClient, name: str, kind: str
) -> None:
    response = client.get(f"/ui/static/{name}")
    assert response.status_code == 200
    assert response.mimetype == kind
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    response.close()
    # A browser asking again with the validator it holds: the answer keeps both headers.
    again = client.get(f"/ui/static/{name}", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert again.headers["X-Content-Type-Options"] == "nosniff"
    assert again.headers["Cache-Control"] == "no-store"
    again.close()


def test_guessing_tokens_in_the_form_is_throttled_like_the_api(settings: Settings) -> None:
    container = build_container(attrs.evolve(settings, auth_failure_limit=3))
    try:
        client = create_app(container).test_client()
        for _ in range(3):
            assert sign_in(client, "als_" + "g" * 40).status_code == 401
        held_off = sign_in(client, "als_" + "h" * 40)
        assert held_off.status_code == 429
        assert int(held_off.headers["Retry-After"]) >= 1
        assert "Too many failed sign-ins" in held_off.get_data(as_text=True)
        # One count for the address: the API holds it off too.
        api = client.get("/v1/events", headers={"Authorization": "Bearer als_" + "i" * 40})
        assert api.status_code == 429
    finally:
        container.unwire()


def test_the_access_log_names_the_viewers_caller_and_failed_sign_ins(
    client: FlaskClient, make_token: MakeToken, capfd: pytest.CaptureFixture[str]
) -> None:
    sign_in(client, "als_" + "f" * 40)
    sign_in(client, make_token())
    client.get("/ui/", headers={"X-Request-Id": "viewer-page"})
    records = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line]
    [failed] = [r for r in records if r["route"] == "/ui/sign-in" and r["status"] == 401]
    assert failed["auth"] == "invalid"
    [page] = [r for r in records if r["request_id"] == "viewer-page"]
    assert (page["tenant"], page["status"]) == ("acme", 200)
    assert page["token_id"]
