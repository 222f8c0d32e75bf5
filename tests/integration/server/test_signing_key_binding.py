"""The database is bound to the key that signs its checkpoints: `audit serve` with another
key on a log that has events refuses to start, unless told to switch on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests
from tests.integration.server.support import Server, bearer, event, run_audit

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]


def _vkey(server: Server) -> str:
    return str(requests.get(f"{server.url}/v1/public-key", timeout=10).json()["vkey"])


def _key_id(vkey: str) -> str:
    """`<name>+<8 hex>`: the first two of a vkey's parts (its base64 may hold a `+`)."""
    key_id = "+".join(vkey.split("+")[:2])
    assert re.fullmatch(r"localhost/audit\+[0-9a-f]{8}", key_id), vkey
    return key_id


def _serve_refused(database_url: str, key_file: Path) -> str:
    done = run_audit(
        "serve",
        "--database-url",
        database_url,
        "--port",
        "0",
        env={"AUDIT_SIGNING_KEY_FILE": str(key_file)},
        timeout=60,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "als_" not in done.stdout
    (line,) = done.stderr.strip().splitlines()
    return line


def test_another_key_on_a_log_with_events_is_refused(tmp_path: Path) -> None:
    database_url = f"sqlite:///{tmp_path / 'audit.db'}"
    first_key, second_key = tmp_path / "first.key", tmp_path / "second.key"

    first = Server(
        database_url, tmp_path, workers=1, env={"AUDIT_SIGNING_KEY_FILE": str(first_key)}
    )
    try:
        first_vkey = _vkey(first)
        assert first.bootstrap_token is not None
        posted = requests.post(
            f"{first.url}/v1/events",
            json=event(1),
            headers=bearer(first.bootstrap_token),
            timeout=10,
        )
        assert posted.status_code == 201, posted.text
    finally:
        first.stop()

    line = _serve_refused(database_url, second_key)
    assert line.startswith("Error: this database's checkpoints are signed by key ")
    assert _key_id(first_vkey) in line
    assert "--accept-new-signing-key" in line
    second_id = line.split("not by ")[1].split(":")[0]
    assert re.fullmatch(r"localhost/audit\+[0-9a-f]{8}", second_id), line
    assert second_id != _key_id(first_vkey)

    switched = Server(
        database_url,
        tmp_path,
        workers=1,
        env={"AUDIT_SIGNING_KEY_FILE": str(second_key)},
        options=("--accept-new-signing-key",),
    )
    try:
        assert _key_id(_vkey(switched)) == second_id
    finally:
        switched.stop()

    # Now the second key is the database's: the first one is refused in its turn.
    assert _key_id(first_vkey) in _serve_refused(database_url, first_key).split("not by ")[1]


def test_an_empty_log_keeps_its_first_key_too(tmp_path: Path) -> None:
    """Servers of one database, each with a key of its own (PostgreSQL's default key file
    is in the working folder): the first key is the log's even before any event, and the
    next server is refused rather than sign the same log under another."""
    database_url = f"sqlite:///{tmp_path / 'audit.db'}"
    first = Server(
        database_url, tmp_path, workers=1, env={"AUDIT_SIGNING_KEY_FILE": str(tmp_path / "one.key")}
    )
    try:
        first_vkey = _vkey(first)
    finally:
        first.stop()
    line = _serve_refused(database_url, tmp_path / "two.key")
    assert _key_id(first_vkey) in line.split("not by ")[0]
    assert "AUDIT_SIGNING_KEY" in line


def test_the_default_key_is_beside_the_sqlite_database(tmp_path: Path) -> None:
    data, elsewhere = tmp_path / "data", tmp_path / "elsewhere"
    data.mkdir()
    elsewhere.mkdir()
    database_url = f"sqlite:///{data / 'audit.db'}"
    server = Server(database_url, elsewhere, workers=1, env={"AUDIT_SIGNING_KEY_FILE": ""})
    try:
        vkey = _vkey(server)
    finally:
        server.stop()
    assert (data / "audit-signing.key").exists()
    assert not (elsewhere / "audit-signing.key").exists()

    # Started again from yet another folder, it signs with the same key.
    again = Server(database_url, tmp_path, workers=1, env={"AUDIT_SIGNING_KEY_FILE": ""})
    try:
        assert _vkey(again) == vkey
    finally:
        again.stop()
