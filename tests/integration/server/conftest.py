"""Fixtures that start real `audit serve` processes, and hold every answer they give
`requests` to the server's own /openapi.json."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.integration.server.support import Server
from tests.openapi_check import RequestsChecker, built_document


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[object]:
    """Start servers on demand; every one is stopped at the end of the test."""
    started: list[Server] = []

    def start(database_url: str | None = None, **kwargs: int) -> Server:
        url = database_url or f"sqlite:///{tmp_path / 'audit.db'}"
        server = Server(url, tmp_path, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def served_document(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return built_document(tmp_path_factory.mktemp("openapi"))


@pytest.fixture(autouse=True)
def responses_match_the_document(monkeypatch: pytest.MonkeyPatch, served_document: bytes) -> None:
    send = requests.Session.send
    checker = RequestsChecker(served_document)

    def checked_send(session: requests.Session, request: Any, **kwargs: Any) -> Any:
        response = send(session, request, **kwargs)
        checker.check(response, streamed=bool(kwargs.get("stream")))
        return response

    monkeypatch.setattr(requests.Session, "send", checked_send)
