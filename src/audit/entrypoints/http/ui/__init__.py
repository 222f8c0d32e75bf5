"""The web viewer at /ui/: server-rendered pages for auditors and operators.

Sign in with a token (events:read) into an encrypted cookie session; read, filter, verify
and export the tenant's events. Templates and static files ship in this package: nothing
is fetched from another origin and nothing is built.
"""

from __future__ import annotations

from datetime import datetime

from flask import Flask, Response, redirect, render_template, url_for
from flask.typing import ResponseReturnValue
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, NotFound

from audit.container import Container
from audit.domain.errors import AuditError, StorageUnavailable
from audit.domain.time import format_time
from audit.entrypoints.http import metrics
from audit.entrypoints.http.errors import STATUS_BY_CODE
from audit.entrypoints.http.ui import access, pages
from audit.entrypoints.http.ui.blueprint import blueprint
from audit.entrypoints.http.ui.session import configure_session

__all__ = ["access", "install", "is_viewer_endpoint", "pages"]

HOME_ENDPOINT = "viewer_home"

# No inline script or style, nothing from another origin, never framed.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # Same-origin: a CSRF check may look at the Referer; other sites never see our URLs.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    # Cache-Control: no-store comes from the app, on every response (static files too).
    response.headers.update(SECURITY_HEADERS)
    return response


def _error_page(
    status: int, title: str, message: str, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    page = render_template("ui/error.html", status=status, title=title, message=message)
    return page, status, headers or {}


@blueprint.errorhandler(AuditError)
def _audit_error(exc: AuditError) -> ResponseReturnValue:
    status = STATUS_BY_CODE.get(exc.code, 400)
    title = exc.code.replace("_", " ").capitalize()
    if isinstance(exc, StorageUnavailable):
        metrics.count_storage_error(exc)  # as the API counts its 503s
        retry = {"Retry-After": str(max(1, exc.retry_after))}
        return _error_page(status, title, exc.message, retry)
    return _error_page(status, title, exc.message)


@blueprint.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> ResponseReturnValue:
    status = exc.code or 500
    if isinstance(exc, CSRFError):
        message = "The form had expired or did not come from this site. Reload it and try again."
        return _error_page(status, "Form expired", message)
    return _error_page(status, exc.name, exc.description or exc.name)


@blueprint.route("/<path:unknown>")
def _no_page(unknown: str) -> ResponseReturnValue:
    raise NotFound("There is no such page in the viewer.")


def _utc(moment: datetime) -> str:
    return format_time(moment)


def install(app: Flask, container: Container) -> None:
    """Serve the viewer on `app`: its session, its pages, and `/` leading to it."""
    configure_session(app, container.viewer_secret)
    app.jinja_env.globals["csrf_token"] = access.csrf_token
    app.jinja_env.filters["rfc3339"] = _utc
    app.register_blueprint(blueprint)
    app.add_url_rule("/", HOME_ENDPOINT, lambda: redirect(url_for("ui.events")))


def is_viewer_endpoint(endpoint: str) -> bool:
    """Whether a route is one of the viewer's HTML pages (not part of the JSON API)."""
    return endpoint == HOME_ENDPOINT or endpoint.startswith(f"{blueprint.name}.")
