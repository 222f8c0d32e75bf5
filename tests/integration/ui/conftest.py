"""The viewer's app on in-memory storage (or a real SQLite file), its client, its tokens."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from selenium import webdriver
from tests.integration.ui.browser import SCREENSHOTS_ENV, missing, start_chromium

from audit.adapters.sql import upgrade_schema
from audit.container import Container, build_container
from audit.domain.tokens import Scope
from audit.entrypoints.http import create_app
from audit.settings import MEMORY_URL, Settings

MakeToken = Callable[..., str]


@pytest.fixture
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """In-memory storage, or a real database when parametrised (indirect) with "sqlite" or
    "postgres" (which skips without AUDIT_TEST_POSTGRES_URL).

    Not from the environment; the signing key (and so the cookie key) in the test's folder.
    """
    kind = getattr(request, "param", "memory")
    database = MEMORY_URL
    if kind != "memory":
        database = request.getfixturevalue(f"{kind}_url")
        upgrade_schema(database)
    return Settings(database_url=database, signing_key_file=str(tmp_path / "keys" / "signing.key"))


@pytest.fixture
def container(settings: Settings) -> Iterator[Container]:
    container = build_container(settings)
    yield container
    container.unwire()
    if settings.storage == "sql":
        container.engine().dispose()


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
