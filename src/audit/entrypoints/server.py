"""`audit serve`: the HTTP API under gunicorn, with threads in each worker process."""

from __future__ import annotations

import gc
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication

from audit.container import build_container


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, load_app: Callable[[], Any], options: dict[str, Any]) -> None:
        self._load_app = load_app
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self._load_app()


def _mark_worker_dead(server: Any, worker: Any) -> None:
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def run_server(settings: dict[str, Any], host: str, port: int, workers: int, threads: int) -> None:
    """Serve until stopped. Each worker builds its own app and engine after the fork."""

    def load_app() -> Any:
        from audit.entrypoints.http import create_app

        app = create_app(build_container(settings))
        # What is loaded now (modules, the app) lives as long as the worker: out of the
        # collector's way, a full collection no longer walks it. Exports and pages make
        # many objects, and full collections were some 17% of an export's time.
        gc.freeze()
        return app

    metrics_dir = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker counts in files here, so /metrics adds up every worker's numbers.
        metrics_dir = tempfile.mkdtemp(prefix="audit-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    options = {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread",
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
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # A dead worker's gauges leave the sum (with no folder there is nothing to mark).
        options["child_exit"] = _mark_worker_dead
    try:
        _Gunicorn(load_app, options).run()
    finally:
        if metrics_dir:
            shutil.rmtree(metrics_dir, ignore_errors=True)
