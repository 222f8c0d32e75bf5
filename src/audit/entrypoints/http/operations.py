"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response, current_app

from audit.application.health import CheckReadiness
from audit.container import Container
from audit.domain.errors import StorageUnavailable
from audit.domain.tokens import Scope
from audit.entrypoints.http.auth import require
from audit.entrypoints.http.errors import handle_audit_error
from audit.entrypoints.http.metrics import exposition
from audit.entrypoints.http.responses import json_response

blueprint = Blueprint("operations", __name__)

# app.config key: whether gunicorn workers share metrics through PROMETHEUS_MULTIPROC_DIR.
METRICS_MULTIPROCESS = "AUDIT_METRICS_MULTIPROCESS"


@blueprint.get("/healthz")
def healthz() -> Response:
    return json_response({"status": "ok"})


@blueprint.get("/readyz")
@inject
def readyz(check: CheckReadiness = Provide[Container.check_readiness]) -> Response:
    try:
        check()
    except StorageUnavailable:
        raise
    except Exception as exc:
        # Whatever stops storage answering means "not ready", not a 500.
        current_app.logger.warning("readiness check failed: %r", exc)
        return handle_audit_error(StorageUnavailable("storage does not answer"))
    return json_response({"status": "ready"})


@blueprint.get("/metrics")
@require(Scope.METRICS_READ)
def metrics() -> Response:
    text, content_type = exposition(bool(current_app.config.get(METRICS_MULTIPROCESS)))
    return Response(text, status=200, content_type=content_type)
