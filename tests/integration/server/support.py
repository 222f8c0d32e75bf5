"""Real `audit serve` processes on loopback, for tests that need the whole service."""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

TOKEN_RE = re.compile(r"als_[A-Za-z0-9_-]{20,}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# A server killed with SIGKILL leaves its temporary folders (the writer's socket, the
# metrics files): the servers of one test process make theirs in a folder of its own,
# removed when it exits.
_SERVERS_TMP: list[str] = []


def server_env(added: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a server: this process's, `added`, and TMPDIR that folder."""
    if not _SERVERS_TMP:
        folder = tempfile.mkdtemp(prefix="audit-tests-")
        atexit.register(shutil.rmtree, folder, True)
        _SERVERS_TMP.append(folder)
    return {**os.environ, "TMPDIR": _SERVERS_TMP[0], **(added or {})}


def audit_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "audit", *args]


def run_audit(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        audit_command(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


class Server:
    """One `audit serve` process group; kill() is a SIGKILL of master and workers."""

    def __init__(
        self,
        database_url: str | None,
        workdir: Path,
        workers: int = 2,
        threads: int = 8,
        port: int | None = None,
        env: dict[str, str] | None = None,
        options: tuple[str, ...] = (),
    ) -> None:
        """`database_url` None: no --database-url (the environment's or the default);
        `env`: variables added to this process's environment; `options`: more of serve's."""
        self.database_url = database_url
        self.port = port or free_port()  # a restart passes the port it had
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        self._out = self.log.open("w")
        url_option = [] if database_url is None else ["--database-url", database_url]
        self.proc = subprocess.Popen(
            audit_command(
                "serve",
                *url_option,
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--threads",
                str(threads),
                *options,
            ),
            stdout=self._out,
            stderr=subprocess.STDOUT,
            cwd=workdir,
            env=server_env(env),
            start_new_session=True,
        )
        try:
            self._wait_ready()
        except BaseException:
            self.kill()  # a server that never became ready must not outlive the test
            raise
        found = TOKEN_RE.search(self.log.read_text())
        self.bootstrap_token = found.group(0) if found else None

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a busy machine answered late
            time.sleep(0.1)
        raise RuntimeError(f"server not ready in {timeout}s:\n{self.log.read_text()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no clean shutdown, no flushing."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)
        self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._out.close()

    def output(self) -> str:
        return self.log.read_text()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def event(n: int, **extra: object) -> dict[str, object]:
    return {
        "id": f"evt-{n}",
        "action": "document.update",
        "actor": {"id": f"user-{n % 7}", "type": "user", "name": "Alice"},
        "targets": [{"id": f"doc-{n % 11}", "type": "document"}],
        "metadata": {"n": n},
        **extra,
    }


def sqlite_path(database_url: str) -> Path:
    assert database_url.startswith("sqlite:///"), database_url
    return Path(database_url.removeprefix("sqlite:///"))


def sqlite_backup(database: Path, copy: Path) -> None:
    """A consistent copy of a live SQLite database (its WAL included), by the backup API."""
    with (
        contextlib.closing(sqlite3.connect(database)) as source,
        contextlib.closing(sqlite3.connect(copy)) as target,
    ):
        source.backup(target)


def sqlite_replace(database: Path, copy: Path | None) -> None:
    """Put `copy` (None: nothing) where a stopped server's database was, leaving none of the
    old file's -wal or -shm behind to be replayed into it."""
    for suffix in ("-wal", "-shm", ""):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    if copy is not None:
        shutil.copyfile(copy, database)
