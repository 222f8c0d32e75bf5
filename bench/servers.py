"""The processes under test: `audit serve` and the minimal Flask app, on loopback only.

Both run under gunicorn, with `audit serve`'s worker class (`audit.entrypoints.worker`),
the same workers and threads. Each is started in
its own session and stopped by its own pid (SIGTERM, then SIGKILL of its own group).
"""

from __future__ import annotations

import http.client
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

HOST = "127.0.0.1"
REPO = Path(__file__).resolve().parent.parent
TOKEN_RE = re.compile(r"als_[A-Za-z0-9_-]+")
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    env = dict(os.environ)
    # bench/ab.py serves another checkout's code with this checkout's bench.
    paths = [env.pop("AUDIT_BENCH_SERVER_SRC", None) or str(REPO / "src"), str(REPO)]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    return env


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    # utime and stime are fields 14 and 15 of stat(5); the split starts at field 3.
    return (int(fields[11]) + int(fields[12])) / _TICKS


def status_kib(pid: int, key: str) -> int:
    """A `kB` line of /proc/<pid>/status (VmRSS, VmHWM), 0 if the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak_rss(pid: int) -> bool:
    """Reset VmHWM to the current RSS (Linux clear_refs 5); False where not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class GunicornProcess:
    """A server process tree we started; knows its workers and their CPU time."""

    def __init__(self, name: str, log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.stdout_lines: list[str] = []
        self.expected_workers = 1
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def _spawn(self, cmd: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_path.open("a")
        self.proc = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            cmd,
            cwd=REPO,
            env={**_env(), **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        log.close()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.stdout_lines.append(line)

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before it was ready; "
                    f"see {self.log_path}"
                )
            status, _ = get(self.port, "/healthz", None, timeout_s=2)
            if status == 200 and len(self.workers()) >= self.expected_workers:
                # A worker exists before it has loaded the app: one answering /healthz
                # is not all of them. Until the others are idle they are still loading,
                # and a load started then put all 64 connections on one worker (seen:
                # 1,010 req/s against 1,400-1,500 with both).
                self.wait_idle()
                return
            time.sleep(0.1)
        raise RuntimeError(
            f"{self.name} was not ready within {timeout_s:.0f}s; see {self.log_path}"
        )

    def workers(self) -> list[int]:
        return _children(self.pid)

    def cpu_seconds(self) -> float:
        """CPU used so far by the master and its live workers."""
        return _cpu_seconds(self.pid) + sum(_cpu_seconds(w) for w in self.workers())

    def wait_idle(self, timeout_s: float = 60.0) -> float:
        """Wait until the server uses under 0.1 core, e.g. after wrk dropped requests it was
        still working on, so the next measurement starts clean. Returns the seconds waited."""
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            before = self.cpu_seconds()
            time.sleep(0.1)
            if self.cpu_seconds() - before < 0.015:  # at most one clock tick in 0.1 s
                break
        return time.monotonic() - started

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)
        return self.proc.returncode

    def log_problems(self) -> list[str]:
        """Lines of the server's log that say something went wrong."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [
            line
            for line in text.splitlines()
            if "Traceback" in line or "[ERROR]" in line or "WORKER TIMEOUT" in line
        ]


class AuditServer(GunicornProcess):
    """`python -m audit serve` on a database URL; reads the bootstrap token it prints
    (or is given the token, to restart on a database that has one)."""

    def __init__(
        self, database_url: str, workers: int, threads: int, log_path: Path, token: str = ""
    ) -> None:
        super().__init__("audit serve", log_path)
        self.database_url = database_url
        self.workers_n = workers
        self.threads_n = threads
        self.expected_workers = workers + 1  # and the writer, also the master's child
        self.token = token

    def start(self) -> None:
        self._spawn(
            [
                sys.executable,
                "-m",
                "audit",
                "serve",
                "--database-url",
                self.database_url,
                "--host",
                HOST,
                "--port",
                str(self.port),
                "--workers",
                str(self.workers_n),
                "--threads",
                str(self.threads_n),
            ]
        )
        self.wait_ready()
        if self.token:  # a restart on a database that has its token already
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            found = TOKEN_RE.search("".join(self.stdout_lines))
            if found:
                self.token = found.group(0)
                return
            time.sleep(0.05)
        raise RuntimeError(
            "audit serve printed no bootstrap token on an empty database: "
            + "".join(self.stdout_lines)[:500]
        )


class MinimalApp(GunicornProcess):
    """An app of bench/ under gunicorn with the settings `audit serve` uses: by default
    minimal_app.py; `module` names another (seed_app.py), `env` its variables."""

    def __init__(
        self,
        workers: int,
        threads: int,
        log_path: Path,
        module: str = "bench.minimal_app:app",
        name: str = "minimal Flask app",
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name, log_path)
        self.workers_n = workers
        self.threads_n = threads
        self.expected_workers = workers
        self.token = "unused"  # noqa: S105 - the minimal app checks no token
        self.module = module
        self.env = env or {}

    def start(self) -> None:
        # The options of audit.entrypoints.server.run_server, minus its metrics hooks.
        self._spawn(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "--bind",
                f"{HOST}:{self.port}",
                "--worker-class",
                "audit.entrypoints.worker.AuditWorker",
                "--worker-connections",
                "10000",
                "--workers",
                str(self.workers_n),
                "--threads",
                str(self.threads_n),
                "--timeout",
                "60",
                "--graceful-timeout",
                "20",
                "--keep-alive",
                "5",
                "--log-level",
                "info",
                "--no-control-socket",
                self.module,
            ],
            self.env,
        )
        self.wait_ready()


def get(port: int, path: str, token: str | None, timeout_s: float = 30) -> tuple[int, bytes]:
    """One GET on loopback; (0, b"") when the connection fails."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout_s)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    except OSError:
        return 0, b""
    finally:
        conn.close()


@dataclass
class ExportResult:
    status: int
    lines: int
    bytes: int
    seconds: float
    peak_rss_growth_kib: int
    rss_method: str


def export_to_file(server: AuditServer, path: Path, query: str = "format=ndjson") -> ExportResult:
    """Stream GET /v1/export to a file, sampling the workers' RSS meanwhile.

    The peak RSS growth is the largest, over the workers, of (peak during the export
    minus RSS just before it): the peak from VmHWM after resetting it (clear_refs), and
    from samples every 20 ms where a reset is not allowed.
    """
    workers = server.workers()
    before = {w: status_kib(w, "VmRSS") for w in workers}
    reset = all(reset_peak_rss(w) for w in workers)
    peaks = dict(before)
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            for w in workers:
                peaks[w] = max(peaks[w], status_kib(w, "VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    conn = http.client.HTTPConnection(HOST, server.port, timeout=600)
    size = lines = 0
    started = time.perf_counter()
    try:
        conn.request(
            "GET", f"/v1/export?{query}", headers={"Authorization": f"Bearer {server.token}"}
        )
        response = conn.getresponse()
        with path.open("wb") as out:
            while chunk := response.read(1 << 20):
                out.write(chunk)
                size += len(chunk)
                lines += chunk.count(b"\n")
        status = response.status
    finally:
        conn.close()
        seconds = time.perf_counter() - started
        done.set()
        sampler.join()
    if reset:
        for w in workers:
            peaks[w] = max(peaks[w], status_kib(w, "VmHWM"))
    worst = max(workers, key=lambda w: peaks[w] - before[w], default=None)
    growth = 0 if worst is None else peaks[worst] - before[worst]
    method = "VmHWM after clear_refs" if reset else "VmRSS sampled every 20 ms"
    if worst is not None:
        method += f"; that worker {before[worst] / 1024:.0f} -> {peaks[worst] / 1024:.0f} MiB"
    return ExportResult(status, lines, size, seconds, growth, method)


# ---------------------------------------------------------------- databases


@contextmanager
def sqlite_database(folder: Path) -> Iterator[str]:
    yield f"sqlite:///{folder / 'audit-bench.db'}"


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database `audit_bench_<hex>` beside the one `admin_url` names; dropped after."""
    import psycopg

    name = f"audit_bench_{secrets.token_hex(4)}"
    parts = urlsplit(admin_url)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
