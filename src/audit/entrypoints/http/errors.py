"""Every error the HTTP API answers, mapped in one place to API.md's JSON error body."""

from __future__ import annotations

from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from audit.domain.errors import (
    AuditError,
    Conflict,
    Forbidden,
    InvalidParameter,
    LogDamaged,
    MalformedJson,
    NotFound,
    PayloadTooLarge,
    StaleCredentials,
    StorageUnavailable,
    ValidationFailed,
)
from audit.entrypoints.formats import problem_document
from audit.entrypoints.http import metrics
from audit.entrypoints.http.responses import error_response

# Statuses of the domain's errors, by their code.
STATUS_BY_CODE: dict[str, int] = {
    MalformedJson.code: 400,
    InvalidParameter.code: 400,
    StaleCredentials.code: 401,  # the view authenticates again first (events.py)
    Forbidden.code: 403,
    NotFound.code: 404,
    Conflict.code: 409,
    PayloadTooLarge.code: 413,
    ValidationFailed.code: 422,
    StorageUnavailable.code: 503,
    LogDamaged.code: 500,  # the store, not the request: see LogDamaged
}

# Codes of the statuses werkzeug and Flask-HTTPAuth answer on their own.
CODE_BY_STATUS: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    429: "too_many_requests",
    500: "internal_error",
}

# Every code a client can see, for the OpenAPI document.
ERROR_CODES = tuple(sorted({*STATUS_BY_CODE, *CODE_BY_STATUS.values()}))

INTERNAL_MESSAGE = "the service failed to answer; the error is logged"


def handle_audit_error(exc: AuditError) -> Response:
    status = STATUS_BY_CODE.get(exc.code, 400)
    if isinstance(exc, ValidationFailed):
        details = [problem_document(p) for p in exc.problems]
        return error_response(status, exc.code, exc.message, details=details)
    if isinstance(exc, LogDamaged):
        # An operator must hear of it: the log was changed behind the service's back.
        current_app.logger.error("the stored log is damaged: %s", exc.message)
    if isinstance(exc, StorageUnavailable):
        metrics.count_storage_error(exc)
        headers = {"Retry-After": str(max(1, exc.retry_after))}
        return error_response(status, exc.code, exc.message, headers=headers)
    return error_response(status, exc.code, exc.message)


def handle_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    code = CODE_BY_STATUS.get(status) or (exc.name or "error").lower().replace(" ", "_")
    if status == 413:
        limit = current_app.config.get("MAX_CONTENT_LENGTH")
        message = f"the body is larger than {limit} bytes" if limit else "the body is too large"
    elif status == 404:
        message = f"no route {request.path!r}"[:200]
    elif status == 405:
        message = f"{request.method} is not allowed here"[:200]
    else:
        message = exc.description or exc.name or "the request failed"
    # Keep headers such as Allow (405); the body is ours, so not its Content-Type.
    headers = {k: v for k, v in exc.get_headers() if k.lower() != "content-type"}
    return error_response(status, code, message, headers=headers)


def handle_unexpected(exc: Exception) -> Response:
    # The traceback stays in the server's log; the client learns nothing of the internals.
    # The path as a repr: its CR, LF and NUL cannot forge log lines.
    current_app.logger.exception(
        "unhandled error answering %s %r", request.method, request.path, exc_info=exc
    )
    return error_response(500, CODE_BY_STATUS[500], INTERNAL_MESSAGE)


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(AuditError, handle_audit_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(Exception, handle_unexpected)
