"""Prometheus metrics of the HTTP API: created once per process, at import.

Every metric has labels, so prometheus-client makes no value (nor, in multiprocess mode,
any file) until a request is counted, or `install` makes the zero-valued children that
must always be shown.
"""

from __future__ import annotations

import functools
import os
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)

from audit.domain.errors import StorageUnavailable

MULTIPROC_DIR_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Methods outside this set share one label value, so clients cannot grow the label set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"
UNPARSED_ROUTE = "unparsed"  # not HTTP the server could read: no method or path to name

REQUESTS = Counter(
    "audit_http_requests_total",
    "HTTP requests answered, by method, route (the URL rule) and status.",
    ("method", "route", "status"),
)
LATENCY = Histogram(
    "audit_http_request_duration_seconds",
    "Time from receiving a request to returning its response, by method, route and status.",
    ("method", "route", "status"),
)
EVENTS_INGESTED = Counter(
    "audit_events_ingested_total",
    "Events received by POST /v1/events, by status: created, or duplicate of a stored one.",
    ("status",),
)
AUTH_FAILURES = Counter(
    "audit_auth_failures_total",
    "Requests refused for their credentials: a token that is missing, or unknown, expired "
    "or revoked (invalid); throttled: refused unheard after too many failures.",
    ("reason",),
)
AUTH_FAILURE_REASONS = ("missing", "invalid", "throttled")
STORAGE_ERRORS = Counter(
    "audit_storage_errors_total",
    "Requests answered 503 because storage could not take them, by reason.",
    ("reason",),
)


# labels() takes a lock and builds a key on each call; a child, once made, is reused.
_requests = functools.cache(REQUESTS.labels)
_latency = functools.cache(LATENCY.labels)
_ingested = functools.cache(EVENTS_INGESTED.labels)
_auth_failures = functools.cache(AUTH_FAILURES.labels)
_storage_errors = functools.cache(STORAGE_ERRORS.labels)


def count_in_shared_files() -> None:
    """In a server worker: count in the files of PROMETHEUS_MULTIPROC_DIR, if it is set.

    prometheus-client picks in-memory or file-backed values once, when it is first
    imported. A master process that imported it before the folder was chosen (building a
    container wires, and so imports, the HTTP package) would hand its workers in-memory
    values, and /metrics would sum an empty folder. Every metric here has labels, so no
    value exists before a worker counts: picking again in the worker is safe.
    """
    if os.environ.get(MULTIPROC_DIR_ENV) and not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]


def count_ingested(created: int, duplicate: int) -> None:
    if created:
        _ingested("created").inc(created)
    if duplicate:
        _ingested("duplicate").inc(duplicate)


def count_auth_failure(reason: str) -> None:
    _auth_failures(reason).inc()


def count_unparsed_request(status: int) -> None:
    """A request the server could not read as HTTP, answered without the app."""
    _requests("other", UNPARSED_ROUTE, str(status)).inc()


def count_storage_error(error: StorageUnavailable) -> None:
    _storage_errors(error.reason).inc()


def _start() -> None:
    g.audit_request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("audit_request_started", None)
    # Resolved once: each look through the proxy costs.
    current = request._get_current_object()  # type: ignore[attr-defined]
    method = current.method if current.method in _METHODS else "other"
    rule = current.url_rule
    route = rule.rule if rule is not None else UNMATCHED_ROUTE
    status = str(response.status_code)
    _requests(method, route, status).inc()
    if started is not None:
        _latency(method, route, status).observe(time.perf_counter() - started)
    return response


def install(app: Flask) -> None:
    """Count and time every request the app answers, errors included."""
    # Families an operator alerts on are shown at zero from the start.
    for reason in AUTH_FAILURE_REASONS:
        _auth_failures(reason)
    for reason in StorageUnavailable.REASONS:
        _storage_errors(reason)
    app.before_request(_start)
    app.after_request(_observe)


def exposition(multiprocess_mode: bool) -> tuple[bytes, str]:
    """The metrics in Prometheus text format, and its content type.

    Under gunicorn with several workers each keeps its numbers in files in
    PROMETHEUS_MULTIPROC_DIR; a fresh registry then sums every worker's.
    """
    if multiprocess_mode:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
