"""Every `AUDIT_*` variable of the README, seen to take effect under a real `audit serve`."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tests.integration.server.support import Server, bearer, event

from audit.adapters.signing import Ed25519NoteSigner, signer_from_settings

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]

SMALL_BODY = 4096
ORIGIN = "example.org/audit"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("settings")


@pytest.fixture(scope="module")
def server(workdir: Path) -> Iterator[Server]:
    """One server configured only by the environment (no --database-url)."""
    env = {
        "AUDIT_DATABASE_URL": f"sqlite:///{workdir / 'from-env.db'}",
        "AUDIT_MAX_BODY_BYTES": str(SMALL_BODY),
        "AUDIT_LOG_ORIGIN": ORIGIN,
        "AUDIT_SIGNING_KEY_FILE": str(workdir / "keys" / "the.key"),
        "AUDIT_CHECKPOINT_DIR": str(workdir / "checkpoints"),
        "AUDIT_SIGNING_KEY": "",  # empty counts as unset: the file is used
    }
    started = Server(None, workdir, workers=2, threads=2, env=env)
    yield started
    started.stop()


def _public_key(server: Server) -> dict[str, str]:
    response = requests.get(f"{server.url}/v1/public-key", timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_database_url_names_the_database(server: Server, workdir: Path) -> None:
    assert (workdir / "from-env.db").exists()
    assert not (workdir / "audit.db").exists()
    assert server.bootstrap_token is not None  # the new database got its first token


def test_max_body_bytes_limits_the_body(server: Server) -> None:
    assert server.bootstrap_token is not None
    headers = bearer(server.bootstrap_token)
    small = requests.post(f"{server.url}/v1/events", json=event(1), headers=headers, timeout=10)
    assert small.status_code == 201, small.text

    big = event(2, description="x" * SMALL_BODY)
    refused = requests.post(f"{server.url}/v1/events", json=big, headers=headers, timeout=10)
    assert refused.status_code == 413, refused.text
    assert refused.headers["Content-Type"].startswith("application/json")
    assert refused.json()["error"]["code"] == "payload_too_large"


def test_log_origin_names_the_checkpoints_and_the_key(server: Server) -> None:
    assert server.bootstrap_token is not None
    assert _public_key(server)["key_name"] == ORIGIN
    note = requests.get(
        f"{server.url}/v1/checkpoint", headers=bearer(server.bootstrap_token), timeout=10
    )
    assert note.status_code == 200, note.text
    assert note.text.splitlines()[0] == f"{ORIGIN}/default"


def test_signing_key_file_holds_the_key_that_signs(server: Server, workdir: Path) -> None:
    key_file = workdir / "keys" / "the.key"
    assert key_file.exists()
    assert not (workdir / "audit-signing.key").exists()
    assert _public_key(server)["vkey"] == signer_from_settings(ORIGIN, str(key_file)).vkey


def test_checkpoint_dir_keeps_the_newest_checkpoint(server: Server, workdir: Path) -> None:
    assert server.bootstrap_token is not None
    note = requests.get(
        f"{server.url}/v1/checkpoint", headers=bearer(server.bootstrap_token), timeout=10
    )
    assert note.status_code == 200, note.text
    kept = workdir / "checkpoints" / "default.checkpoint"
    assert kept.read_text(encoding="utf-8").splitlines()[0] == f"{ORIGIN}/default"


def test_signing_key_wins_over_the_file(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    seed = base64.b64encode(key.private_bytes_raw()).decode("ascii")
    env = {
        "AUDIT_SIGNING_KEY": seed,
        "AUDIT_SIGNING_KEY_FILE": str(tmp_path / "unused.key"),
        "AUDIT_LOG_ORIGIN": "",  # empty counts as unset: the default origin
    }
    server = Server(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path, workers=1, env=env)
    try:
        expected = Ed25519NoteSigner("localhost/audit", key).vkey
        assert _public_key(server)["vkey"] == expected
        assert not (tmp_path / "unused.key").exists()
    finally:
        server.stop()
