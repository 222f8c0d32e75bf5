"""What an operator meets on the command line: states, typos, missing databases, a busy
port and long work, each said plainly."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url
from tests.conftest import POSTGRES_URL_ENV
from tests.integration.server.support import audit_command, free_port, run_audit

from audit.container import build_container
from audit.domain.validation import parse_batch
from audit.settings import Settings

pytestmark = pytest.mark.slow


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def _token(db: str, tenant: str, *extra: str) -> dict[str, object]:
    done = run_audit(
        "tokens", "create", "--database-url", db, "--tenant", tenant, "--scope", "events:read",
        "--json", *extra,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def _record(db: str, tenant: str, count: int) -> None:
    container = build_container(Settings(database_url=db))
    container.upgrade_schema()
    events = [{"action": "doc.read", "actor": {"id": f"u{n}"}} for n in range(count)]
    container.record_events()(tenant, parse_batch(events))
    container.engine().dispose()


def test_tokens_list_shows_an_expired_token_as_expired(db: str) -> None:
    short = _token(db, "acme", "--expires-in", "1s")
    lasting = _token(db, "acme")
    time.sleep(1.5)
    listed = run_audit("tokens", "list", "--database-url", db)
    assert listed.returncode == 0, listed.stderr
    states = {line.split()[0]: line.split()[4] for line in listed.stdout.splitlines()}
    assert states == {short["id"]: "expired", lasting["id"]: "active"}


def test_verify_of_an_unknown_tenant_exits_2(db: str) -> None:
    _token(db, "acme")  # a tenant with a token and no events is known, and empty
    _record(db, "globex", 3)
    missing = run_audit("verify", "--database-url", db, "--tenant", "nosuch")
    assert missing.returncode == 2, missing.stdout + missing.stderr
    assert missing.stderr.strip() == (
        "Error: no such tenant 'nosuch': it has neither events nor tokens"
    )
    assert missing.stdout == ""
    for tenant, checked in (("acme", 0), ("globex", 3)):
        known = run_audit("verify", "--database-url", db, "--tenant", tenant)
        assert known.returncode == 0, known.stderr
        assert f"{tenant}: valid, {checked} events checked" in known.stdout


@pytest.mark.postgres
def test_a_missing_postgresql_database_or_role_is_named() -> None:
    server = os.environ.get(POSTGRES_URL_ENV)
    if not server:
        pytest.skip(f"set {POSTGRES_URL_ENV} to run the PostgreSQL tests")
    url = make_url(server)
    no_database = url.set(database="audit_no_such_database").render_as_string(False)
    no_role = url.set(username="audit_no_such_role").render_as_string(False)
    for target, expected in (
        (no_database, "Error: the PostgreSQL database 'audit_no_such_database' does not exist"),
        (no_role, "Error: the PostgreSQL role 'audit_no_such_role' does not exist"),
    ):
        for command in (["tokens", "list"], ["verify"]):
            done = run_audit(*command, "--database-url", target)
            assert done.returncode == 1, done.stderr
            assert done.stderr.strip() == expected


def test_serve_on_a_busy_port_fails_before_making_a_token(tmp_path: Path) -> None:
    database = tmp_path / "busy.db"
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        done = run_audit(
            "serve", "--database-url", f"sqlite:///{database}", "--port", str(port), timeout=60
        )
    assert done.returncode == 1
    assert done.stderr.strip().startswith(f"Error: cannot listen on 127.0.0.1 port {port}: ")
    assert "als_" not in done.stdout + done.stderr
    assert not database.exists()  # no schema, no bootstrap token


def _with_terminal_stderr(*args: str) -> tuple[int, str, str]:
    """Run `audit` with stderr on a pseudo-terminal; (status, stdout, stderr)."""
    controller, terminal = os.openpty()
    try:
        proc = subprocess.Popen(
            audit_command(*args), stdout=subprocess.PIPE, stderr=terminal, text=True
        )
    finally:
        os.close(terminal)
    seen = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the terminal's last writer closed it
            break
        if not chunk:
            break
        seen += chunk
    os.close(controller)
    assert proc.stdout is not None
    out = proc.stdout.read()
    return proc.wait(timeout=60), out, seen.decode("utf-8", "replace")


def test_verify_and_export_show_progress_on_a_terminal_only(db: str, tmp_path: Path) -> None:
    _record(db, "acme", 50)
    status, out, err = _with_terminal_stderr("verify", "--database-url", db)
    assert status == 0, err
    assert "acme: valid, 50 events checked" in out
    assert "verifying acme" in err
    assert "100%" in err

    target = tmp_path / "export.ndjson"
    status, _, err = _with_terminal_stderr(
        "export", "--database-url", db, "--tenant", "acme", "-o", str(target)
    )
    assert status == 0, err
    assert "exporting" in err
    assert len(target.read_text().splitlines()) == 50

    piped = run_audit("verify", "--database-url", db)
    assert piped.returncode == 0
    assert piped.stderr == ""  # no bar when stderr is not a terminal
