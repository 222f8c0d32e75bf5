"""The HTTP API: the Flask app factory, its blueprints and its error mapping."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response

from audit.container import Container, build_container
from audit.entrypoints.http import (
    access_log,
    events,
    metrics,
    openapi,
    operations,
    proofs,
    seed,
    tokens,
    ui,
)
from audit.entrypoints.http.body import AuditRequest
from audit.entrypoints.http.errors import register_error_handlers
from audit.entrypoints.http.operations import METRICS_MULTIPROCESS
from audit.entrypoints.http.paths import SegmentConverter, refuse_nul_in_query

_SYNC_CACHE_SIZE = 1024


class AuditApp(Flask):
    """A Flask app that carries its composition root, as `app.container`."""

    container: Container
    request_class = AuditRequest

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        # Flask asks `inspect` whether a hook or view is a coroutine function each time it
        # calls one, ten times a single-event POST; a function's answer never changes.
        sync = self._sync.get(func)
        if sync is None:
            sync = super().ensure_sync(func)
            if len(self._sync) < _SYNC_CACHE_SIZE:  # views and hooks: a fixed few
                self._sync[func] = sync
        return sync


def _no_store(response: Response) -> Response:
    # Audit records and token lists must not linger in shared or browser caches, and no
    # browser may guess a type other than the one sent (an event's text is never markup).
    # Set, not defaulted: Flask's static files come with `no-cache` of their own.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def create_app(container: Container | None = None) -> Flask:
    """Build the app around a container (by default one configured from the environment)."""
    if container is None:
        container = build_container()
    app = AuditApp(__name__, static_folder=None)
    app.container = container
    # Before any route is added: every `<name>` in a path refuses control characters.
    app.url_map.converters["default"] = SegmentConverter
    # Point the views' Provide markers at this container (wiring is per module, so the
    # last app created in a process wins; tests unwire after each app).
    container.wire()

    settings = container.settings()
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    # Answer OPTIONS with a JSON 405 like any other method a path does not take.
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False
    app.config[METRICS_MULTIPROCESS] = settings.metrics_dir is not None

    register_error_handlers(app)
    metrics.install(app)
    access_log.install(app)
    app.after_request(_no_store)
    app.before_request(refuse_nul_in_query)
    for module in (events, proofs, tokens, operations, openapi, seed):
        app.register_blueprint(module.blueprint)
    ui.install(app, container)
    return app
