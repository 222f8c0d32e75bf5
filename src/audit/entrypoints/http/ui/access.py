"""Who is looking: sign in with a token, sign out, and CSRF checks on every form.

The session holds the token (encrypted, see session.py) and each request hands it to the
Authenticate use case, so a token revoked or expired ends its sessions at once.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from dependency_injector.wiring import Provide, inject
from flask import g, redirect, render_template, request, session, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError, generate_csrf, validate_csrf
from wtforms import ValidationError

from audit.application.authentication import Authenticate, FailureThrottle
from audit.container import Container
from audit.domain.tokens import Principal, Scope
from audit.entrypoints.http import metrics
from audit.entrypoints.http.auth import AUTH_FAILURE, client_address
from audit.entrypoints.http.ui.blueprint import blueprint
from audit.entrypoints.http.ui.session import LIFETIME

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

TOKEN_KEY = "token"  # noqa: S105 (the session key it sits under, not a secret)
CSRF_FIELD = "csrf_token"
NEEDED_SCOPE = Scope.EVENTS_READ
_TOKEN_MAX = 512


@inject
def _secret(secret: bytes = Provide[Container.viewer_secret]) -> bytes:
    return secret


@inject
def _authenticate(
    token: str, authenticate: Authenticate = Provide[Container.authenticate]
) -> Principal | None:
    return authenticate(token)


def csrf_token() -> str:
    """The form token of this session (templates put it in every form)."""
    token: str = generate_csrf(secret_key=_secret(), token_key=CSRF_FIELD)
    return token


@blueprint.before_request
def check_csrf() -> None:
    if request.method != "POST":
        return
    try:
        validate_csrf(
            request.form.get(CSRF_FIELD),
            secret_key=_secret(),
            time_limit=int(LIFETIME.total_seconds()),
            token_key=CSRF_FIELD,
        )
    except ValidationError as exc:
        raise CSRFError(str(exc)) from None


def viewer() -> Principal:
    """The signed-in principal of a view protected by `signed_in`."""
    principal = g.get("viewer")
    if not isinstance(principal, Principal):
        raise RuntimeError("viewer() outside a view protected by signed_in")
    return principal


def _here() -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def signed_in(view: F) -> F:
    """Protect a page: without a usable session, go to the sign-in form and come back."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        token = session.get(TOKEN_KEY)
        principal = _authenticate(token) if isinstance(token, str) else None
        if principal is None or NEEDED_SCOPE not in principal.scopes:
            ended = token is not None
            session.pop(TOKEN_KEY, None)
            back = _here() if request.method == "GET" else None
            return redirect(url_for("ui.sign_in", next=back, ended=1 if ended else None))
        g.viewer = principal
        # The access log names the caller where Flask-HTTPAuth keeps it for the API.
        g.flask_httpauth_user = principal
        return view(*args, **kwargs)

    return cast(F, wrapper)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a page of the viewer, never another site."""
    default = url_for("ui.events")
    if not value or "\\" in value or any(ord(c) < 0x20 for c in value):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith(f"{blueprint.url_prefix}/"):
        return default
    return value


def _sign_in_page(
    status: int = 200, error: str | None = None, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    notice = None
    if request.args.get("ended"):
        notice = "Your session ended: the token was revoked, expired, or the session timed out."
    elif request.args.get("signed_out"):
        notice = "You are signed out."
    next_page = safe_next(request.values.get("next"))
    page = render_template("ui/sign_in.html", error=error, notice=notice, next_page=next_page)
    return page, status, headers or {}


@blueprint.get("/sign-in")
def sign_in() -> ResponseReturnValue:
    return _sign_in_page()


@inject
def _sign_in_with(
    token: str,
    authenticate: Authenticate = Provide[Container.authenticate],
    throttle: FailureThrottle = Provide[Container.auth_throttle],
) -> Principal | int | None:
    """The token's principal; None when refused; the seconds to wait when the address is
    held off. The API's throttle: guessing through this form is no cheaper than there."""
    address = client_address()
    wait = throttle.retry_after(address)
    if wait is not None and not authenticate.knows(token):
        _failed_sign_in("throttled")
        return wait
    principal = authenticate(token) if 0 < len(token) <= _TOKEN_MAX else None
    if principal is None:
        _failed_sign_in("invalid")
        throttle.failed(address)
    return principal


def _failed_sign_in(reason: str) -> None:
    # Counted and logged as the API's failed authentications are.
    metrics.count_auth_failure(reason)
    g.setdefault(AUTH_FAILURE, reason)


@blueprint.post("/sign-in")
def sign_in_submit() -> ResponseReturnValue:
    token = request.form.get("token", "").strip()
    principal = _sign_in_with(token)
    if isinstance(principal, int):
        message = f"Too many failed sign-ins from this address: try again in {principal} s."
        return _sign_in_page(429, message, {"Retry-After": str(principal)})
    if principal is None:
        return _sign_in_page(401, "That token is unknown, expired or revoked.")
    if NEEDED_SCOPE not in principal.scopes:
        return _sign_in_page(403, f"That token lacks the {NEEDED_SCOPE} scope the viewer needs.")
    # A new session on sign-in: nothing from before (a planted CSRF token) carries over.
    session.clear()
    session[TOKEN_KEY] = token
    return redirect(safe_next(request.form.get("next")), 303)


@blueprint.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    session.clear()
    return redirect(url_for("ui.sign_in", signed_out=1), 303)
