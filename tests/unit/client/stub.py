"""A tiny scripted HTTP server on loopback, for the client's unit tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Seen:
    method: str
    path: str
    body: Any
    at: float
    headers: dict[str, str] = field(default_factory=dict)


Answer = tuple[int, dict[str, str], Any]
Script = Callable[[Seen], Answer]


def created(seen: Seen) -> Answer:
    """What the service answers a batch it stores whole."""
    events = seen.body["events"]
    items = [{"id": e["id"], "seq": 0, "hash": "", "status": "created"} for e in events]
    return 201, {}, {"count": len(items), "events": items}


def error(status: int, code: str, details: list[dict[str, Any]] | None = None) -> Answer:
    body: dict[str, Any] = {"code": code, "message": f"stub says {code}"}
    if details is not None:
        body["details"] = details
    return status, {}, {"error": body}


class Stub:
    def __init__(self, script: Script, port: int = 0) -> None:
        self.script = script
        self.seen: list[Seen] = []
        self.lock = threading.Lock()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                seen = Seen(
                    self.command,
                    self.path,
                    json.loads(raw) if raw else None,
                    time.monotonic(),
                    dict(self.headers),
                )
                with stub.lock:
                    stub.seen.append(seen)
                status, headers, body = stub.script(seen)
                data = json.dumps(body).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def posted_ids(self) -> list[str]:
        """Ids of every event POSTed (in batches or alone), in the order sent."""
        ids = []
        for seen in self.seen:
            if seen.method == "POST":
                body = seen.body
                ids += [e["id"] for e in body["events"]] if "events" in body else [body["id"]]
        return ids


@contextmanager
def stub_server(script: Script, port: int = 0) -> Iterator[Stub]:
    stub = Stub(script, port)
    thread = threading.Thread(target=stub.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield stub
    finally:
        stub.server.shutdown()
        stub.server.server_close()
        thread.join(timeout=10)
