"""Who is looking: sign in with a token, sign out, and CSRF checks on every form.

The session holds the token (encrypted, see session.py) and each request hands it to the
Authenticate use case, so a token revoked or expired ends its sessions at once. It also
holds the session's random id and end: signing out records the id as ended in storage
(application/sessions.py), so a copy of the cookie is refused by every server after it.
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
from audit.application.sessions import EndSession, Session, SessionHolds, StartSession
from audit.container import Container
from audit.domain.errors import StorageUnavailable
from audit.domain.time import from_micros, to_micros
from audit.domain.tokens import Principal, Scope
from audit.entrypoints.http import metrics
from audit.entrypoints.http.auth import AUTH_FAILURE, client_address
from audit.entrypoints.http.ui.blueprint import blueprint
from audit.entrypoints.http.ui.session import LIFETIME

F = TypeVar("F", bound=Callable[..., ResponseReturnValue])

TOKEN_KEY = "token"  # noqa: S105 (the session key it sits under, not a secret)
SESSION_ID_KEY = "sid"
SESSION_END_KEY = "until"  # microseconds since the epoch
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


@inject
def _start_session(start: StartSession = Provide[Container.start_session]) -> Session:
    return start()


@inject
def _session_holds(
    current: Session, holds: SessionHolds = Provide[Container.session_holds]
) -> bool:
    return holds(current)


@inject
def _end_session(current: Session, end: EndSession = Provide[Container.end_session]) -> None:
    end(current)


def _current_session() -> Session | None:
    """The session the cookie names; None for a cookie without one (made before sessions
    had ids: its holder signs in again)."""
    session_id = session.get(SESSION_ID_KEY)
    until = session.get(SESSION_END_KEY)
    if not isinstance(session_id, str) or not isinstance(until, int):
        return None
    return Session(session_id, from_micros(until))


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
        principal = _signed_in()
        if principal is None:
            ended = TOKEN_KEY in session
            session.clear()
            back = _here() if request.method == "GET" else None
            return redirect(url_for("ui.sign_in", next=back, ended=1 if ended else None))
        g.viewer = principal
        # The access log names the caller where Flask-HTTPAuth keeps it for the API.
        g.flask_httpauth_user = principal
        return view(*args, **kwargs)

    return cast(F, wrapper)


def _signed_in() -> Principal | None:
    """The principal of a session that holds: its token valid with the scope the viewer
    needs, and the session neither past its end nor signed out."""
    token = session.get(TOKEN_KEY)
    current = _current_session()
    if not isinstance(token, str) or current is None:
        return None
    principal = _authenticate(token)
    if principal is None or NEEDED_SCOPE not in principal.scopes:
        return None
    return principal if _session_holds(current) else None


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
        notice = (
            "Your session ended: it was signed out or timed out, or the token was revoked "
            "or expired."
        )
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
    started = _start_session()
    session.clear()
    session[TOKEN_KEY] = token
    session[SESSION_ID_KEY] = started.id
    session[SESSION_END_KEY] = to_micros(started.expires_at)
    return redirect(safe_next(request.form.get("next")), 303)


@blueprint.post("/sign-out")
def sign_out() -> ResponseReturnValue:
    current = _current_session()
    if current is not None:
        try:
            _end_session(current)
        except StorageUnavailable as exc:
            return _not_signed_out(exc)
    session.clear()
    return redirect(url_for("ui.sign_in", signed_out=1), 303)


def _not_signed_out(exc: StorageUnavailable) -> ResponseReturnValue:
    """Storage could not record the sign-out: say so, keep the cookie (deleting it would
    leave any copy of it working, unseen), and offer to try again."""
    metrics.count_storage_error(exc)
    retry = max(1, exc.retry_after)
    message = (
        f"You are still signed in: the sign-out could not be recorded ({exc.message}). "
        f"Try again in {retry} s."
    )
    page = render_template(
        "ui/error.html", status=503, title="Not signed out", message=message, retry_sign_out=True
    )
    return page, 503, {"Retry-After": str(retry)}
