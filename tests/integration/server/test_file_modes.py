"""Every file `audit serve` makes holds events, token hashes or the key: owner-only."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.integration.server.support import Server, bearer, event


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are made world-readable unless asked otherwise."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.mark.usefixtures("umask_022")
def test_a_fresh_server_makes_every_file_0600(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = Server(f"sqlite:///{data / 'audit.db'}", tmp_path, workers=2, threads=2)
    try:
        assert server.bootstrap_token is not None
        headers = bearer(server.bootstrap_token)
        for n in range(5):
            posted = requests.post(f"{server.url}/v1/events", json=event(n), headers=headers)
            assert posted.status_code == 201, posted.text
        # The signing key is made when first needed.
        assert requests.get(f"{server.url}/v1/checkpoint", headers=headers).status_code == 200
        made = {
            path: stat.S_IMODE(path.stat().st_mode)
            for path in tmp_path.rglob("*")
            if path.is_file() and path != server.log
        }
    finally:
        server.stop()
    names = {path.name for path in made}
    assert {
        "audit.db",
        "audit.db-wal",
        "audit.db-shm",
        "audit.db-writer",
        "audit.db-revocations",
    } <= names
    assert any("key" in name for name in names), names
    assert {str(path): oct(mode) for path, mode in made.items() if mode != 0o600} == {}
