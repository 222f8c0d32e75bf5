"""What authenticating a request costs, in-process through Flask's test client (no HTTP).

    .venv/bin/python -m bench.auth [--requests N] [--rounds R] 2>/dev/null

(stderr carries the access log, one line a request: send it where a server would.)

On a real SQLite file with 1,000 events, it times three calls, each the best of R rounds
of N (wall time, and this process's CPU time): an `actor_id` page of 50 with a valid
token, `GET /healthz` (no token: the app's own cost), and `authenticate(secret)` alone
(the use case every authenticated request pays for).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.adapters.sql import upgrade_schema
from audit.container import build_container
from audit.domain.events import NewEvent, Party
from audit.domain.tokens import ALL_SCOPES
from audit.entrypoints.http import create_app
from audit.settings import Settings


def _best_us(run: Callable[[], Any], requests: int, rounds: int) -> tuple[float, float]:
    """The best round's wall time and CPU time (this process's) per call, in us: on a
    shared machine the CPU time is the steadier of the two."""
    wall = cpu = float("inf")
    for _ in range(rounds):
        started, started_cpu = time.perf_counter(), time.process_time()
        for _ in range(requests):
            run()
        wall = min(wall, (time.perf_counter() - started) / requests)
        cpu = min(cpu, (time.process_time() - started_cpu) / requests)
    return wall * 1e6, cpu * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'audit.db'}"
        upgrade_schema(url)
        settings = Settings.from_env(
            {}, database_url=url, signing_key_file=str(Path(folder) / "signing.key")
        )
        container = build_container(settings)
        record = container.record_events()
        events = [NewEvent(action="a.b", actor=Party(id=f"u-{n % 5}")) for n in range(1000)]
        record("acme", events)
        secret = container.issue_token()("acme", "bench", ALL_SCOPES).secret
        client = create_app(container).test_client()
        headers = {"Authorization": f"Bearer {secret}"}
        authenticate = container.authenticate()

        def page() -> None:
            response = client.get("/v1/events?actor_id=u-1", headers=headers)
            assert response.status_code == 200, response.status_code

        def healthz() -> None:
            assert client.get("/healthz").status_code == 200

        def auth_only() -> None:
            assert authenticate(secret) is not None

        for name, run in (("page", page), ("healthz", healthz), ("authenticate", auth_only)):
            wall, cpu = _best_us(run, args.requests, args.rounds)
            print(f"{name:>14}: {wall:8.1f} us wall, {cpu:8.1f} us CPU per call")
        container.token_uses().flush()
        container.unwire()
        container.engine().dispose()


if __name__ == "__main__":
    main()
