"""The viewer's app on in-memory storage (or a real SQLite file), its client, its tokens."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from tests.integration.ui.browser import SCREENSHOTS_ENV, missing, start_chromium

from audit.container import MEMORY_URL, Container, build_container, signing_settings
from audit.domain.tokens import Scope
from audit.entrypoints.http import create_app

MakeToken = Callable[..., str]


@pytest.fixture
def settings(tmp_path: Path) -> dict[str, Any]:
    # Environment-free, the signing key (and so the cookie key) in the test's own folder.
    return {
        **signing_settings({}),
        "database_url": MEMORY_URL,
        "storage": "memory",
        "max_body_bytes": 5 * 1024 * 1024,
        "signing_key_file": str(tmp_path / "keys" / "signing.key"),
    }


@pytest.fixture
def container(settings: dict[str, Any]) -> Iterator[Container]:
    container = build_container(settings)
    yield container
    container.unwire()


@pytest.fixture
def app(container: Container) -> Flask:
    return create_app(container)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def make_token(container: Container) -> MakeToken:
    """`make_token(*scopes, tenant="acme")`: a new token's secret (default: events:read)."""

    def make(*scopes: Scope, tenant: str = "acme") -> str:
        wanted = frozenset(scopes or {Scope.EVENTS_READ})
        return container.issue_token()(tenant, "viewer", wanted).secret

    return make


@pytest.fixture
def writer(make_token: MakeToken) -> dict[str, str]:
    """Authorization headers of an events:write token of tenant acme."""
    return {"Authorization": f"Bearer {make_token(Scope.EVENTS_WRITE)}"}


@pytest.fixture
def chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[webdriver.Chrome]:
    reason = missing()
    if reason:
        pytest.skip(reason)
    # Belt and braces: should Selenium Manager run at all, it must not fetch anything.
    monkeypatch.setenv("SE_OFFLINE", "true")
    driver = start_chromium(tmp_path / "chromium-profile", tmp_path / "chromedriver.log")
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    """Where the run saves its screenshots: $AUDIT_UI_SCREENSHOTS, else the test's folder."""
    folder = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder
