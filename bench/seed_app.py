"""The original toy audit log service, rebuilt as a baseline: what a user moving from it had.

Its source is not part of this repository; this follows what is known of it: a Flask app
with one SQLite connection per process, shared by its threads, no authentication, no
hashing, one INSERT and one commit per request, in SQLite's default journal mode. It
takes the bench's JSON event (the original took a form body; parsing either costs about
the same) and answers 201 with the event's id, so the load generators count it as they
count ours. Run under the same gunicorn settings as `audit serve`.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Any

from flask import Flask, request

app = Flask(__name__)

_connection = sqlite3.connect(os.environ.get("SEED_DATABASE", "seed.db"), check_same_thread=False)
_connection.execute("CREATE TABLE IF NOT EXISTS logs (id INTEGER PRIMARY KEY, data TEXT)")
_connection.commit()
_lock = threading.Lock()  # the one connection, taken in turn by the process's threads


@app.post("/v1/events")
def save_logs() -> tuple[dict[str, Any], int]:
    data = request.get_json(force=True)
    with _lock:
        _connection.execute("INSERT INTO logs (data) VALUES (?)", (json.dumps(data),))
        _connection.commit()
    return {"id": data.get("id")}, 201


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
