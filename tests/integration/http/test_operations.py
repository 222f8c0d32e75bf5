"""Operations: liveness, readiness, metrics."""

from __future__ import annotations

import re
from pathlib import Path

import attrs
import pytest
from dependency_injector import providers
from flask.testing import FlaskClient
from tests.integration.http.support import AuthHeaders, Headers, event, on_every_storage

from audit.container import Container
from audit.domain.tokens import Scope
from audit.entrypoints.http import create_app
from audit.entrypoints.http.operations import METRICS_MULTIPROCESS


@on_every_storage
def test_health_and_readiness_need_no_token(client: FlaskClient) -> None:
    healthz = client.get("/healthz")
    assert (healthz.status_code, healthz.get_json()) == (200, {"status": "ok"})
    readyz = client.get("/readyz")
    assert (readyz.status_code, readyz.get_json()) == (200, {"status": "ready"})


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        match = re.fullmatch(r"([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)", line)
        if not match or match.group(1) != name:
            continue
        found = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(match.group(3))
    return 0.0


def test_metrics_count_requests_by_route_and_ingested_events(
    client: FlaskClient, headers: Headers, auth_headers: AuthHeaders
) -> None:
    metrics = auth_headers(Scope.METRICS_READ)
    before = client.get("/metrics", headers=metrics).get_data(as_text=True)
    client.post("/v1/events", json=event(id="m1"), headers=headers)
    client.post("/v1/events", json=event(id="m1"), headers=headers)
    client.post("/v1/events", json={"events": [event(id="m2"), event(id="m1")]}, headers=headers)
    client.get("/v1/events/m1", headers=headers)
    client.get("/v1/events/nope", headers=headers)
    client.get("/no/such/route")
    response = client.get("/metrics", headers=metrics)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)

    def grew(name: str, **labels: str) -> float:
        return sample(text, name, **labels) - sample(before, name, **labels)

    assert grew("audit_events_ingested_total", status="created") == 2
    assert grew("audit_events_ingested_total", status="duplicate") == 2
    route = "/v1/events/<event_id>"
    assert grew("audit_http_requests_total", method="GET", route=route, status="200") == 1
    assert grew("audit_http_requests_total", method="GET", route=route, status="404") == 1
    assert grew("audit_http_requests_total", method="POST", route="/v1/events", status="201") == 2
    assert grew("audit_http_requests_total", method="POST", route="/v1/events", status="200") == 1
    assert grew("audit_http_requests_total", route="unmatched", status="404") == 1
    assert (
        grew("audit_http_request_duration_seconds_count", method="GET", route=route, status="200")
        == 1
    )
    # Raw paths never become labels.
    assert "/v1/events/m1" not in text
    assert "/no/such/route" not in text


def test_metrics_of_several_workers_are_read_from_their_folder(
    container: Container,
    auth_headers: AuthHeaders,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # prometheus_client reads its variable; the app reads the settings.
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    settings = attrs.evolve(container.settings(), metrics_dir=str(tmp_path))
    container.settings.override(providers.Object(settings))
    app = create_app(container)
    assert app.config[METRICS_MULTIPROCESS] is True
    response = app.test_client().get("/metrics", headers=auth_headers(Scope.METRICS_READ))
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
