"""`audit serve`: the HTTP API under gunicorn, with threads in each worker process
(`worker.AuditWorker`)."""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import resource
import shutil
import signal
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

import attrs
from gunicorn.app.base import BaseApplication
from gunicorn.arbiter import Arbiter

from audit.adapters.writer import listen
from audit.adapters.writer import serve as writer_serve
from audit.container import build_container
from audit.settings import Settings

logger = logging.getLogger(__name__)

MAX_CONNECTIONS = 10_000


class _WriterProcess:
    """The server's writer (adapters/writer.py): forked by the master before its workers,
    and again whenever it dies. The master made the listening socket and keeps it, so
    workers' connections wait in its backlog while a writer starts."""

    def __init__(self, settings: Settings, folder: str) -> None:
        self.settings = settings
        self.folder = folder
        self.path = os.path.join(folder, "writer.sock")
        self.listener = listen(self.path)
        self.pid = 0

    def start(self, arbiter: Any) -> None:
        master = os.getpid()
        pid = os.fork()
        if pid:
            self.pid = pid
            arbiter.log.info("Started the database writer (pid: %s)", pid)
            return
        code = 1
        try:
            for listener in arbiter.LISTENERS:
                listener.close()  # the HTTP sockets are the workers'
            for number in _ARBITER_SIGNALS:
                signal.signal(number, signal.SIG_DFL)
            stopping = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stopping.set())
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # the master stops it, last
            record = build_container(attrs.evolve(self.settings, writer_socket=None))
            commit_group = record.record_groups().commit_group
            writer_serve(self.listener, commit_group, stopping, parent=master)
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)

    def alive(self) -> bool:
        try:
            pid, _ = os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:  # gunicorn's reaping of its children took it
            return False
        return pid == 0

    def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while self.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        self.listener.close()
        shutil.rmtree(self.folder, ignore_errors=True)


_ARBITER_SIGNALS = [
    getattr(signal, f"SIG{name}")
    for name in ("HUP", "QUIT", "INT", "TERM", "TTIN", "TTOU", "USR1", "USR2", "WINCH", "CHLD")
]


class _Arbiter(Arbiter):  # type: ignore[misc]
    """gunicorn's master, which also keeps the SQLite writer running."""

    writer: _WriterProcess | None = None

    def manage_workers(self) -> None:
        writer = self.writer
        if writer is not None and (writer.pid == 0 or not writer.alive()):
            if writer.pid:
                self.log.error("The database writer (pid: %s) died; starting another", writer.pid)
            writer.start(self)
        super().manage_workers()

    def stop(self, graceful: bool = True) -> None:
        super().stop(graceful)  # the workers first: they may still be waiting for answers
        if self.writer is not None:
            self.writer.stop()


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(
        self,
        load_app: Callable[[], Any],
        options: dict[str, Any],
        writer: _WriterProcess | None = None,
    ) -> None:
        self._load_app = load_app
        self._options = options
        self._writer = writer
        super().__init__()

    def run(self) -> None:
        arbiter = _Arbiter(self)
        arbiter.writer = self._writer
        arbiter.run()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load_app()


def _mark_worker_dead(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def _connection_limit() -> int:
    """Open connections per worker: as many as the file limit leaves room for, raising
    the soft limit to the hard one (idle clients must not lock others out)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = MAX_CONNECTIONS + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(100, min(MAX_CONNECTIONS, soft - 256))


def run_server(settings: Settings, host: str, port: int, workers: int, threads: int) -> None:
    """Serve until stopped. Each worker builds its own app and engine after the fork."""

    def load_app() -> Any:
        from audit.entrypoints.http import create_app
        from audit.entrypoints.http.metrics import count_in_shared_files

        count_in_shared_files()
        app = create_app(build_container(settings))
        # What is loaded now (modules, the app) lives as long as the worker: out of the
        # collector's way, a full collection no longer walks it. Exports and pages make
        # many objects, and full collections were a large share of an export's time
        # (figures in bench/README.md).
        gc.freeze()
        return app

    # A connection kept for every thread of a worker (PostgreSQL's pool, the epoch reads).
    settings = attrs.evolve(settings, db_connections=threads)
    metrics_dir = None
    if workers > 1 and settings.metrics_dir is None:
        # Each worker counts in files here, so /metrics adds up every worker's numbers.
        # prometheus_client reads the folder from its environment variable.
        metrics_dir = tempfile.mkdtemp(prefix="audit-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        settings = attrs.evolve(settings, metrics_dir=metrics_dir)
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        # gthread, but a thread gets a connection only once its request has arrived.
        "worker_class": "audit.entrypoints.worker.AuditWorker",
        # Connections waiting for a request cost a socket, not a thread.
        "worker_connections": _connection_limit(),
        "timeout": 60,
        "graceful_timeout": 20,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "info",
        "proc_name": "audit",
        # gunicorn's control socket is one per user by default: servers side by side
        # would fight over it, and nothing here uses it.
        "control_socket_disable": True,
    }
    known_tokens_dir = None
    if settings.auth_failure_limit > 0:
        # Where the workers note the tokens they accept, so that an address they hold off
        # keeps the use of its tokens on all of them (adapters/known_tokens.py).
        try:
            known_tokens_dir = tempfile.mkdtemp(prefix="audit-tokens-")
        except OSError as exc:
            logger.warning(
                "no folder for the tokens in use (%s): a throttled address's token passes "
                "only on a worker that accepted it",
                exc,
            )
        else:
            known_tokens_file = os.path.join(known_tokens_dir, "known-tokens")
            settings = attrs.evolve(settings, known_tokens_file=known_tokens_file)
    if settings.metrics_dir is not None:
        # A dead worker's gauges leave the sum (with no folder there is nothing to mark).
        options["child_exit"] = _mark_worker_dead
    writer = None
    if settings.storage == "sql":
        # One process writes for the server; the workers hand it their events.
        writer = _WriterProcess(settings, tempfile.mkdtemp(prefix="audit-writer-"))
        settings = attrs.evolve(settings, writer_socket=writer.path)
    master = os.getpid()
    try:
        _Gunicorn(load_app, options, writer).run()
    finally:
        # A worker leaves through this frame too (its SystemExit unwinds the forked
        # stack): only the master removes the folder, or a worker stopping first would
        # pull it from under the others (seen: a worker still booting failed, exit 3).
        if os.getpid() == master:
            for folder in (metrics_dir, known_tokens_dir):
                if folder:
                    shutil.rmtree(folder, ignore_errors=True)
