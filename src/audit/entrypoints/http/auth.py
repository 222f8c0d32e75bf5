"""Bearer tokens at the edge: who is calling, and may they do this?

Views are protected with `require(scope)`, which is `auth.login_required(role=scope)` and
also records the scope on the view so the OpenAPI document states what each route needs.
A refused token is counted, noted for the access log, and charged to the client address;
an address over its limit is answered 429 unheard, unless it brings a token a process of
this server already found valid (so one misconfigured client behind a shared address
cannot cut off the others).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast

from dependency_injector.wiring import Provide, inject
from flask import Response, abort, current_app, g, request
from flask_httpauth import HTTPTokenAuth
from werkzeug.exceptions import TooManyRequests

from audit.application.authentication import Authenticate, FailureThrottle
from audit.container import Container
from audit.domain.errors import StaleCredentials
from audit.domain.tokens import Principal, Scope
from audit.entrypoints.http import metrics
from audit.entrypoints.http.responses import error_response

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

REALM = "audit"

auth = HTTPTokenAuth(scheme="Bearer", realm=REALM)


# Set on `g` for the access log: why authentication failed (missing, invalid, throttled).
AUTH_FAILURE = "audit_auth_failure"
# Set on `g` when the caller is a principal this process kept, not yet checked against
# the revocation epoch: the epoch it was loaded at (see `require`'s checks_revocation).
UNCHECKED_EPOCH = "audit_unchecked_epoch"


def client_address() -> str:
    return request.remote_addr or "unknown"


@inject
def verify_token(
    token: str,
    authenticate: Authenticate = Provide[Container.authenticate],
    throttle: FailureThrottle = Provide[Container.auth_throttle],
) -> Principal | None:
    # The secret is only ever handed to the use case: never logged, never echoed.
    view = current_app.view_functions.get(request.endpoint or "")
    if getattr(view, "checks_revocation", False):
        # A kept token is one this process knows, which its address's limit spares.
        kept = authenticate.kept(token)
        # Not for a 403: that answer would come before the view could check the epoch.
        if kept is not None and getattr(view, "required_scope", None) in get_user_roles(kept[0]):
            principal, epoch = kept
            setattr(g, UNCHECKED_EPOCH, epoch)
            return principal
    _hold_off_if_over_limit(throttle, spared=functools.partial(authenticate.knows, token))
    return authenticate(token)


def unchecked_epoch() -> int | None:
    """The epoch this request's principal was loaded at, when it was not checked against
    the revocation epoch yet: the view's operation must check it (EventRecorder)."""
    epoch = g.get(UNCHECKED_EPOCH)
    return epoch if isinstance(epoch, int) else None


def checking_revocation(operation: Callable[[int | None], T]) -> T:
    """`operation(unchecked_epoch())`, for a view of `require(..., checks_revocation=True)`:
    when the operation refuses the epoch as stale (StaleCredentials), the request is
    authenticated in full (the 401, if its token was revoked) and the operation runs
    once more, on the principal checked now."""
    try:
        return operation(unchecked_epoch())
    except StaleCredentials:
        check_revocation()  # the 401, unless only another token was revoked
        return operation(None)


@inject
def check_revocation(authenticate: Authenticate = Provide[Container.authenticate]) -> None:
    """Authenticate in full a request that began on a kept principal (a no-op for any
    other): a view calls it before answering anything but what the checked operation
    returned. Aborts with the 401 when the token was revoked since it was kept."""
    if g.pop(UNCHECKED_EPOCH, None) is None:
        return
    credentials = auth.get_auth()
    token = getattr(credentials, "token", None) or ""
    if authenticate(token) is None:
        g.flask_httpauth_user = None
        abort(auth.auth_error_callback(401))


def _hold_off_if_over_limit(
    throttle: FailureThrottle, spared: Callable[[], bool] | None = None
) -> None:
    # `spared` (is the token known?) only once the address is held off: a request that
    # is not pays nothing for it.
    wait = throttle.retry_after(client_address())
    if wait is not None and not (spared is not None and spared()):
        g.setdefault(AUTH_FAILURE, "throttled")
        metrics.count_auth_failure("throttled")
        raise TooManyRequests(
            "too many failed authentications from this address; try again later",
            retry_after=wait,
        )


@inject
def _failed(reason: str, throttle: FailureThrottle = Provide[Container.auth_throttle]) -> None:
    if reason == "missing":  # no token, so verify_token was not asked
        _hold_off_if_over_limit(throttle)
    g.setdefault(AUTH_FAILURE, reason)
    metrics.count_auth_failure(reason)
    throttle.failed(client_address())


def get_user_roles(principal: Principal) -> list[str]:
    return [str(scope) for scope in principal.scopes]


def auth_error(status: int) -> Response:
    # RFC 6750: name the problem in the challenge, never the token.
    if status == 403:
        challenge = f'Bearer realm="{REALM}", error="insufficient_scope"'
        return error_response(
            403,
            "forbidden",
            "the token lacks the scope this operation needs",
            headers={"WWW-Authenticate": challenge},
        )
    challenge = f'Bearer realm="{REALM}"'
    if request.headers.get("Authorization"):
        challenge += ', error="invalid_token"'
        _failed("invalid")
    else:
        _failed("missing")
    return error_response(
        401,
        "unauthorized",
        "a valid bearer token is required (Authorization: Bearer <token>)",
        headers={"WWW-Authenticate": challenge},
    )


# Registered by call, not as decorators: flask_httpauth is untyped, and its decorators
# would erase these functions' types.
auth.verify_token(verify_token)
auth.get_user_roles(get_user_roles)
auth.error_handler(auth_error)


def require(scope: Scope, *, checks_revocation: bool = False) -> Callable[[F], F]:
    """Protect a view: a valid token (else 401) holding `scope` (else 403).

    `checks_revocation`: the view's operation checks the revocation epoch inside its own
    transaction (EventRecorder's and QueryEvents.json's `epoch`, with `unchecked_epoch()`),
    so a principal this process keeps is taken without reading the epoch first: one read
    of storage less a request. The view runs the operation through `checking_revocation`;
    any other exception waits for the full check here, so a request after a revocation
    gets the 401 however it fails (a 400, 409, 413, 503 ...).
    """

    def decorator(view: F) -> F:
        if checks_revocation:
            view = _checked_before_failing(view)
        protected = auth.login_required(role=str(scope))(view)
        protected.required_scope = str(scope)
        protected.checks_revocation = checks_revocation
        return cast(F, protected)

    return decorator


def _checked_before_failing(view: F) -> F:
    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        try:
            return view(*args, **kwargs)
        except Exception:
            check_revocation()
            raise

    return cast(F, checked)


def required_scope(view: Callable[..., Any]) -> str | None:
    """The scope `require` put on a view, or None for a public one."""
    scope = getattr(view, "required_scope", None)
    return scope if isinstance(scope, str) else None


def principal_or_none() -> Principal | None:
    """The authenticated caller of this request, if there is one."""
    principal = g.get("flask_httpauth_user")
    return principal if isinstance(principal, Principal) else None


def current_principal() -> Principal:
    """The caller of a view protected by `require`."""
    principal = auth.current_user()
    if not isinstance(principal, Principal):
        raise RuntimeError("current_principal() outside a view protected by require()")
    return principal
