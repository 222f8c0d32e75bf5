"""Prometheus metrics of the HTTP API: created once per process, at import.

Every metric has labels, so prometheus-client makes no value (nor, in multiprocess mode,
any file) until a request is counted.
"""

from __future__ import annotations

import functools
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
)

# Methods outside this set share one label value, so clients cannot grow the label set.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED_ROUTE = "unmatched"

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


# labels() takes a lock and builds a key on each call; a child, once made, is reused.
_requests = functools.cache(REQUESTS.labels)
_latency = functools.cache(LATENCY.labels)
_ingested = functools.cache(EVENTS_INGESTED.labels)


def count_ingested(created: int, duplicate: int) -> None:
    if created:
        _ingested("created").inc(created)
    if duplicate:
        _ingested("duplicate").inc(duplicate)


def _start() -> None:
    g.audit_request_started = time.perf_counter()


def _observe(response: Response) -> Response:
    started = g.pop("audit_request_started", None)
    method = request.method if request.method in _METHODS else "other"
    route = request.url_rule.rule if request.url_rule is not None else UNMATCHED_ROUTE
    status = str(response.status_code)
    _requests(method, route, status).inc()
    if started is not None:
        _latency(method, route, status).observe(time.perf_counter() - started)
    return response


def install(app: Flask) -> None:
    """Count and time every request the app answers, errors included."""
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
