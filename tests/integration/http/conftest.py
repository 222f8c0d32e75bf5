"""The Flask app under test, its client, and tokens made through the IssueToken use case.

Most tests run on the in-memory storage; those marked `support.on_every_storage` also
run on a real SQLite file (and PostgreSQL when AUDIT_TEST_POSTGRES_URL is set). The
signing key is made in the test's own folder, never in the working directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from dependency_injector import providers
from flask import Flask
from tests.integration.http.support import (
    MAX_BODY_BYTES,
    START,
    AuthHeaders,
    Headers,
    MakeToken,
    bearer,
)
from tests.openapi_check import CheckedClient

from audit.adapters.clock import FixedClock
from audit.adapters.sql import upgrade_schema
from audit.container import Container, build_container
from audit.domain.tokens import ALL_SCOPES, Scope
from audit.entrypoints.http import create_app
from audit.settings import DEFAULT_ORIGIN, MEMORY_URL, Settings


@pytest.fixture
def database(request: pytest.FixtureRequest) -> str:
    """The storage URL: memory unless the test is marked `on_every_storage`."""
    kind = getattr(request, "param", "memory")
    if kind == "memory":
        return MEMORY_URL
    url: str = request.getfixturevalue(f"{kind}_url")
    upgrade_schema(url)
    return url


@pytest.fixture
def log_origin(request: pytest.FixtureRequest) -> str:
    """The origin prefix: the default unless parametrised (indirect=True) with another."""
    origin: str = getattr(request, "param", DEFAULT_ORIGIN)
    return origin


@pytest.fixture
def checkpoint_dir(request: pytest.FixtureRequest, tmp_path: Path) -> Path | None:
    """No checkpoint folder, unless parametrised (indirect=True) with a name under tmp_path."""
    name: str | None = getattr(request, "param", None)
    return tmp_path / name if name else None


@pytest.fixture
def signing_key_file(tmp_path: Path) -> Path:
    return tmp_path / "keys" / "signing.key"


@pytest.fixture
def settings(
    database: str, log_origin: str, checkpoint_dir: Path | None, signing_key_file: Path
) -> Settings:
    # Not from the environment, so a developer's AUDIT_* variables do not leak in.
    return Settings(
        database_url=database,
        max_body_bytes=MAX_BODY_BYTES,
        log_origin=log_origin,
        signing_key_file=str(signing_key_file),
        checkpoint_dir=None if checkpoint_dir is None else str(checkpoint_dir),
    )


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def container(settings: Settings, clock: FixedClock) -> Iterator[Container]:
    container = build_container(settings)
    container.clock.override(providers.Object(clock))
    yield container
    container.unwire()
    if settings.storage == "sql":
        container.engine().dispose()


@pytest.fixture
def app(container: Container) -> Flask:
    app = create_app(container)
    app.test_client_class = CheckedClient
    return app


@pytest.fixture
def client(app: Flask) -> CheckedClient:
    client = app.test_client()
    assert isinstance(client, CheckedClient)
    return client


@pytest.fixture
def make_token(container: Container) -> MakeToken:
    """`make_token(*scopes, tenant="acme", expires_at=None)`: a new token's secret."""

    def make(
        *scopes: Scope, tenant: str = "acme", expires_at: datetime | None = None, name: str = "t"
    ) -> str:
        issued = container.issue_token()(tenant, name, frozenset(scopes or ALL_SCOPES), expires_at)
        return issued.secret

    return make


@pytest.fixture
def auth_headers(make_token: MakeToken) -> AuthHeaders:
    """`auth_headers(*scopes, tenant="acme")`: Authorization headers of a new token."""

    def headers(*scopes: Scope, tenant: str = "acme") -> Headers:
        return bearer(make_token(*scopes, tenant=tenant))

    return headers


@pytest.fixture
def headers(auth_headers: AuthHeaders) -> Headers:
    """A token of tenant `acme` with every scope."""
    return auth_headers()
