"""Fixtures that start real `audit serve` processes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.server.support import Server


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
