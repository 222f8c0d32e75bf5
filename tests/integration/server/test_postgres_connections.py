"""A server's PostgreSQL connections under load: each worker keeps its own, one per thread.

With fewer kept than a worker's threads, every read beyond them opened a connection and
closed it again (a new PostgreSQL backend each time): hundreds a second under a page load.
"""

from __future__ import annotations

import http.client
import os
import threading
import time
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from tests.conftest import POSTGRES_URL_ENV, _admin_engine
from tests.integration.server.support import bearer, event

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server"), pytest.mark.postgres]

WORKERS = 2  # audit serve's defaults
THREADS = 8
CLIENTS = 16  # more than a worker's threads: every thread of both is busy at once
REQUESTS_EACH = 120
PAGE = "/v1/events?actor_id=user-1&limit=50"


def _sessions_opened(admin: sa.Connection, database: str) -> int:
    """Connections ever opened to `database` (PostgreSQL 14+), as its statistics say now."""
    admin.exec_driver_sql("SELECT pg_stat_clear_snapshot()")
    count = admin.execute(
        sa.text("SELECT sessions FROM pg_stat_database WHERE datname = :name"),
        {"name": database},
    ).scalar_one()
    return int(count)


def _read_pages(server: Any, token: str, failures: list[str]) -> None:
    # http.client, not requests: the suite checks every `requests` answer against the
    # OpenAPI document, which made the clients too slow to keep every thread busy.
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        for _ in range(REQUESTS_EACH):
            connection.request("GET", PAGE, headers=bearer(token))
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                failures.append(f"{response.status} {body[:200]!r}")
    except Exception as exc:  # a client that stopped early must fail the test, not thin the load
        failures.append(repr(exc))
    finally:
        connection.close()


def test_a_page_load_opens_no_connection_per_request(start_server: Any, postgres_url: str) -> None:
    server = start_server(postgres_url, workers=WORKERS, threads=THREADS)
    token = server.bootstrap_token
    assert token, server.output()
    body = {"events": [event(n) for n in range(200)]}
    created = requests.post(f"{server.url}/v1/events", json=body, headers=bearer(token), timeout=30)
    assert created.status_code == 201, created.text

    admin = _admin_engine(os.environ[POSTGRES_URL_ENV])
    database = make_url(postgres_url).database
    assert database
    with admin.connect() as connection:
        before = _sessions_opened(connection, database)
        failures: list[str] = []
        clients = [
            threading.Thread(target=_read_pages, args=(server, token, failures))
            for _ in range(CLIENTS)
        ]
        for client in clients:
            client.start()
        for client in clients:
            client.join(timeout=120)
        assert not any(client.is_alive() for client in clients)
        assert not failures, failures[:3]
        time.sleep(1.5)  # a backend reports its statistics within a second
        opened = _sessions_opened(connection, database) - before
    admin.dispose()
    # At most what the workers keep (a pool and an epoch reader per thread), had none
    # been opened before the load, and a worker's overflow once: not one per request.
    kept = WORKERS * THREADS * 2
    assert opened <= kept + THREADS, (
        f"{opened} connections opened for {CLIENTS * REQUESTS_EACH} pages"
    )
