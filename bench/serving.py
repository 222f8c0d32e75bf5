"""`python -m bench.serving [NAME ...]`: production WSGI servers side by side, serving the
minimal Flask app (bench/minimal_app.py) with 2 workers (or 8 threads in one process).

For each server: single-event POST req/s with wrk at 64 connections (rounds alternate
between the servers, so all meet the same noise) and the server's CPU per request; then
whether another client is answered within 2 s while 16 clients send their headers a
byte a second and while 1,000 connections sit idle; and what a 20 KB header and a
garbled request get. Servers that are not installed are skipped (granian, waitress,
uvicorn with a2wsgi are not dependencies: `pip install granian waitress uvicorn a2wsgi`).
Loopback only; each server is stopped by its own process group.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from bench.servers import HOST, REPO, _children, _cpu_seconds, _env, free_port

POST_LUA = """wrk.method = "POST"
wrk.body = '{"action":"document.update","actor":{"id":"u-1","type":"user"},"metadata":{"n":1}}'
wrk.headers["Content-Type"] = "application/json"
"""
APP = "bench.minimal_app:app"
GIANT_HEADER = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
GARBLED = b"\x16\x03\x01\x02\x00garbage\r\n\r\n"


def _commands(port: int) -> dict[str, list[str] | None]:
    py = sys.executable
    gunicorn = [py, "-m", "gunicorn", "--bind", f"{HOST}:{port}", "--workers", "2"]
    gunicorn += ["--threads", "8", "--keep-alive", "5", "--no-control-socket"]
    have = {m: importlib.util.find_spec(m) is not None for m in ("granian", "waitress", "a2wsgi")}
    granian = shutil.which("granian", path=str(Path(py).parent))
    return {
        "gunicorn gthread": [*gunicorn, "--worker-class", "gthread", APP],
        "gunicorn AuditWorker": [
            *gunicorn,
            "--worker-class",
            "audit.entrypoints.worker.AuditWorker",
            "--worker-connections",
            "10000",
            APP,
        ],
        "granian (wsgi)": [
            granian,
            "--interface",
            "wsgi",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "2",
            "--blocking-threads",
            "8",
            APP,
        ]
        if granian and have["granian"]
        else None,
        "waitress (1 process)": [
            py,
            "-m",
            "waitress",
            "--host",
            HOST,
            f"--port={port}",
            "--threads",
            "8",
            APP,
        ]
        if have["waitress"]
        else None,
        "uvicorn + a2wsgi": [
            py,
            "-m",
            "uvicorn",
            "--host",
            HOST,
            "--port",
            str(port),
            "--workers",
            "2",
            "--log-level",
            "warning",
            "--factory",
            "bench.serving:asgi_app",
        ]
        if have["a2wsgi"]
        else None,
    }


def asgi_app() -> object:
    """The minimal app behind a2wsgi, for uvicorn."""
    from a2wsgi import WSGIMiddleware

    from bench.minimal_app import app

    return WSGIMiddleware(app, workers=8)  # type: ignore[arg-type]


def _get(port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            return sock.recv(64).startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def _ready(port: int, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if _get(port, 1):
            return
        time.sleep(0.2)
    raise RuntimeError(f"no server on port {port} after {seconds:.0f}s")


def _cpu(pid: int) -> float:
    return _cpu_seconds(pid) + sum(_cpu_seconds(w) for w in _children(pid))


def _wrk(port: int, script: Path, seconds: int) -> tuple[float, int]:
    out = subprocess.run(  # noqa: S603 - wrk on loopback, bounded by -d and timeout
        [
            shutil.which("wrk") or "wrk",
            "-t2",
            "-c64",
            f"-d{seconds}s",
            "-s",
            str(script),
            f"http://{HOST}:{port}/v1/events",
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, int(bad.group(1)) if bad else 0


def _worst_answer(port: int, seconds: float) -> float:
    """The slowest of fresh-connection GETs for `seconds`; 99 when one is not answered."""
    worst = 0.0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        start = time.monotonic()
        took = time.monotonic() - start if _get(port, 5) else 99.0
        worst = max(worst, took)
        time.sleep(0.2)
    return worst


def _slow_clients(port: int) -> float:
    socks = [socket.create_connection((HOST, port), timeout=5) for _ in range(16)]
    stop = threading.Event()

    def drip() -> None:
        for byte in b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaa":
            for sock in socks:
                with contextlib.suppress(OSError):
                    sock.send(bytes([byte]))
            if stop.wait(1.0):
                return

    dripper = threading.Thread(target=drip)
    dripper.start()
    try:
        time.sleep(2)
        return _worst_answer(port, 5)
    finally:
        stop.set()
        dripper.join()
        for sock in socks:
            sock.close()


def _idle_connections(port: int) -> float:
    socks: list[socket.socket] = []
    try:
        for _ in range(1000):
            with contextlib.suppress(OSError):
                socks.append(socket.create_connection((HOST, port), timeout=3))
        time.sleep(0.5)
        return _worst_answer(port, 4)
    finally:
        for sock in socks:
            sock.close()


def _answer_to(port: int, request: bytes) -> str:
    received = b""
    with socket.create_connection((HOST, port), timeout=5) as sock, contextlib.suppress(OSError):
        sock.sendall(request)
        while chunk := sock.recv(65536):
            received += chunk
    head = received.partition(b"\r\n\r\n")[0].decode("latin-1")
    status = head.split("\r\n")[0].split(" ")[1:2] or ["(closed)"]
    kind = re.search(r"(?im)^content-type: *([^\r\n;]*)", head)
    return f"{status[0]} {kind.group(1) if kind else '(no body type)'}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.serving", description=__doc__)
    parser.add_argument("names", nargs="*", help="substrings of the servers to run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk is not on PATH (apt-get install wrk)", file=sys.stderr)
        return 2
    names = [
        n
        for n, cmd in _commands(0).items()
        if cmd and (not args.names or any(w in n for w in args.names))
    ]
    script = Path(os.environ.get("TMPDIR", "/tmp")) / f"serving-{os.getpid()}.lua"  # noqa: S108
    script.write_text(POST_LUA)
    started: dict[str, tuple[int, subprocess.Popen[bytes]]] = {}
    try:
        for name in names:
            port = free_port()
            command = _commands(port)[name]
            assert command is not None
            started[name] = (
                port,
                subprocess.Popen(  # noqa: S603 - our interpreter, loopback
                    command,
                    cwd=REPO,
                    env=_env(),
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                ),
            )
        for port, _ in started.values():
            _ready(port)
        rates: dict[str, list[float]] = {n: [] for n in names}
        cpu: dict[str, list[float]] = {n: [] for n in names}
        for _ in range(args.rounds):
            for name, (port, proc) in started.items():
                before = _cpu(proc.pid)
                rps, bad = _wrk(port, script, args.seconds)
                if bad:
                    print(f"{name}: {bad} non-2xx answers", file=sys.stderr)
                rates[name].append(rps)
                cpu[name].append((_cpu(proc.pid) - before) / max(1.0, rps * args.seconds))
        print(
            "| server | POST req/s, 64 conn. (median of rounds) | CPU per request | slow"
            " headers: worst answer | 1,000 idle: worst answer | 20 KB header | garbled |"
        )
        print("|---|---:|---:|---:|---:|---|---|")
        for name, (port, _) in started.items():
            slow = _slow_clients(port)
            idle = _idle_connections(port)
            giant, garbled = _answer_to(port, GIANT_HEADER), _answer_to(port, GARBLED)
            median = sorted(rates[name])[len(rates[name]) // 2]
            per_request = sorted(cpu[name])[len(cpu[name]) // 2] * 1e6
            print(
                f"| {name} | {median:,.0f} | {per_request:,.0f} us | {slow:.2f} s | "
                f"{idle:.2f} s | {giant} | {garbled} |",
                flush=True,
            )
    finally:
        script.unlink(missing_ok=True)
        for _, proc in started.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
