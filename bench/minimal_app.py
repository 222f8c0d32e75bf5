"""A minimal Flask app: what gunicorn and Flask cost when the handler does almost nothing.

Run under the same gunicorn settings as `audit serve` (its worker class, same workers
and threads), it is the baseline for the HTTP rows: POST parses the JSON body and echoes it
with 201; GET answers a small JSON document.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request

app = Flask(__name__)


@app.post("/v1/events")
def post_event() -> tuple[Any, int]:
    return request.get_json(force=True), 201


@app.get("/v1/events")
def list_events() -> dict[str, Any]:
    return {"events": [{"id": "evt-1", "seq": 1, "action": "user.login"}], "next_cursor": None}


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
