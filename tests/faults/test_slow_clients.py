"""16 slowloris clients (headers one byte a second) and 1,000 idle connections against the
server as `audit serve` starts by default: any other request is answered within 2 s."""

from __future__ import annotations

import contextlib
import resource
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from tests.faults.support import Service, ledger_row

SLOW_CLIENTS = 16
IDLE = 1000
PROBES = 24
ANSWER_WITHIN_S = 2.0


@contextlib.contextmanager
def open_files(needed: int) -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= needed:
        yield
        return
    raised = hard if hard == resource.RLIM_INFINITY else max(hard, needed)
    try:  # the server started inside inherits it
        resource.setrlimit(resource.RLIMIT_NOFILE, (needed, raised))
    except (ValueError, OSError):
        pytest.skip(f"needs {needed} open files; the limit is {soft} (hard {hard})")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, raised))


def slowloris(port: int, stop: threading.Event, opened: list[socket.socket]) -> None:
    """Each client sends a request line, then its headers one byte a second, never ending."""
    clients = []
    for _ in range(SLOW_CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        clients.append(sock)
        opened.append(sock)
    header = b"X-Slow: " + b"a" * 1000
    n = 0
    while not stop.wait(1.0):
        for sock in clients:
            with contextlib.suppress(OSError):  # a server may close a slow client: fine
                sock.sendall(header[n % len(header) : n % len(header) + 1])
        n += 1


@pytest.mark.timeout(180)
def test_slow_and_idle_clients_do_not_hold_up_others(tmp_path: Path) -> None:
    service = Service(f"sqlite:///{tmp_path / 'audit.db'}", tmp_path, workers=None, threads=None)
    opened: list[socket.socket] = []
    stop = threading.Event()
    took: list[tuple[float, int]] = []
    with open_files(IDLE + SLOW_CLIENTS + 256):
        row = ledger_row(f"{SLOW_CLIENTS} slowloris + {IDLE} idle connections")
        try:
            service.start()
            headers = service.headers()
            for _ in range(IDLE):
                opened.append(socket.create_connection(("127.0.0.1", service.port), timeout=10))
            slow = threading.Thread(target=slowloris, args=(service.port, stop, opened))
            slow.start()
            time.sleep(2)  # every slow client has begun
            for n in range(PROBES):
                path = "/healthz" if n % 2 else "/v1/events?limit=5"
                started = time.monotonic()
                try:
                    status = requests.get(
                        f"{service.url}{path}", headers=headers, timeout=10
                    ).status_code
                except requests.RequestException:
                    status = 0
                took.append((time.monotonic() - started, status))
                time.sleep(0.4)
        finally:
            stop.set()
            for sock in opened:
                sock.close()
            service.kill()
    row.tried = len(took)
    row.survived = sum(
        1 for seconds, status in took if status == 200 and seconds <= ANSWER_WITHIN_S
    )
    row.note = f"slowest {max((s for s, _ in took), default=0):.2f} s"
    assert row.survived == row.tried, took
