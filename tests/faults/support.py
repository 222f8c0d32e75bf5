"""What the fault cases share: a real `audit serve`, writers that keep count, the ledger.

Every case runs on loopback, bounds each loop in count and time, and leaves nothing
running: servers are process groups, killed at the end whatever happened.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import requests
from tests.integration.server.support import (
    TOKEN_RE,
    audit_command,
    bearer,
    free_port,
    server_env,
)

# --- the ledger: one row per case, printed as a table at the end of the run ------------------


@dataclass
class Row:
    """One case: how many operations it tried, how many met the rule, acknowledged
    events that went missing."""

    case: str
    tried: int = 0
    survived: int = 0
    lost: int = 0
    note: str = ""


LEDGER: list[Row] = []


def ledger_row(case: str) -> Row:
    row = Row(case)
    LEDGER.append(row)
    return row


def table(rows: list[Row]) -> list[str]:
    header = ("case", "tried", "survived", "lost", "note")
    cells = [header] + [(r.case, str(r.tried), str(r.survived), str(r.lost), r.note) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for n, line in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return lines


# --- a real server ----------------------------------------------------------------------------


class Service:
    """`audit serve` in its own process group, with its own environment additions."""

    def __init__(
        self,
        database_url: str,
        workdir: Path,
        *,
        env: dict[str, str] | None = None,
        workers: int | None = 2,
        threads: int | None = 8,
        port: int | None = None,
    ) -> None:
        self.database_url = database_url
        self.workdir = workdir
        self.env = server_env(env)
        self.workers = workers
        self.threads = threads
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.bootstrap_token: str | None = None

    def start(self, ready_within: float = 60) -> Service:
        with self.log.open("ab") as out:
            # None: as `audit serve` starts by default.
            sizes = [
                *([] if self.workers is None else ["--workers", str(self.workers)]),
                *([] if self.threads is None else ["--threads", str(self.threads)]),
            ]
            self.proc = subprocess.Popen(
                audit_command(
                    "serve", "--database-url", self.database_url, "--port", str(self.port), *sizes
                ),
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
                start_new_session=True,
            )
        try:
            self._wait_ready(ready_within)
        except BaseException:
            self.kill()
            raise
        if self.bootstrap_token is None:
            found = TOKEN_RE.search(self.output())
            self.bootstrap_token = found.group(0) if found else None
        return self

    def _wait_ready(self, within: float) -> None:
        deadline = time.monotonic() + within
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()[-4000:]}")
            try:
                if requests.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {within}s:\n{self.output()[-4000:]}")

    def kill(self) -> None:
        """SIGKILL of the whole group (master and workers): no shutdown, no flushing."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def headers(self) -> dict[str, str]:
        assert self.bootstrap_token, "the server printed no bootstrap token"
        return bearer(self.bootstrap_token)

    def token(self, *scopes: str) -> str:
        """A new token of the bootstrap tenant, never used yet."""
        response = requests.post(
            f"{self.url}/v1/tokens",
            json={"name": "fault-suite", "scopes": list(scopes)},
            headers=self.headers(),
            timeout=30,
        )
        assert response.status_code == 201, response.text
        secret: str = response.json()["token"]
        return secret


def stored_ids(service: Service) -> list[str]:
    """Every event id of the tenant, by the NDJSON export."""
    response = requests.get(
        f"{service.url}/v1/export?format=ndjson", headers=service.headers(), timeout=120
    )
    assert response.status_code == 200, response.text
    return [orjson.loads(line)["id"] for line in response.content.splitlines() if line]


def chain_report(service: Service) -> dict[str, Any]:
    response = requests.get(f"{service.url}/v1/verify", headers=service.headers(), timeout=120)
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


# --- writers that keep count ------------------------------------------------------------------


@dataclass
class Tally:
    """What writers saw: ids acknowledged (201 or 200), and every answer's status."""

    acked: set[str] = field(default_factory=set)
    sent: int = 0
    # (sent at, answered at, status or 0 for no answer), in time.monotonic()
    statuses: list[tuple[float, float, int]] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)  # answers that broke the rule
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, sent: float, status: int) -> None:
        with self.lock:
            self.statuses.append((sent, time.monotonic(), status))


def event(event_id: str, pad: int = 0) -> dict[str, Any]:
    return {
        "id": event_id,
        "action": "fault.write",
        "actor": {"id": "fault-suite", "type": "service"},
        "metadata": {"pad": "x" * pad} if pad else {},
    }


def write_until(
    service_url: str,
    headers: dict[str, str],
    tally: Tally,
    stop: threading.Event,
    prefix: str,
    *,
    batch: int = 5,
    pad: int = 0,
    allowed: frozenset[int] = frozenset({200, 201}),
    pause: float = 0.0,
) -> None:
    """Post batches of new events until `stop`; count acknowledgements and statuses.

    A connection error (the server killed or restarting) counts as status 0 and is no
    acknowledgement. An answer whose status is not in `allowed` is noted as bad, as is a
    503 without Retry-After.
    """
    session = requests.Session()
    n = 0
    try:
        while not stop.is_set():
            ids = [f"{prefix}-{n + i}" for i in range(batch)]
            n += batch
            with tally.lock:
                tally.sent += batch
            sent = time.monotonic()
            try:
                response = session.post(
                    f"{service_url}/v1/events",
                    json={"events": [event(i, pad) for i in ids]},
                    headers=headers,
                    timeout=30,
                )
            except requests.RequestException:
                tally.count(sent, 0)
                session.close()
                session = requests.Session()
                time.sleep(0.05)
                continue
            tally.count(sent, response.status_code)
            if response.status_code in (200, 201):
                with tally.lock:
                    tally.acked.update(ids)
            if response.status_code not in allowed or (
                response.status_code == 503 and "Retry-After" not in response.headers
            ):
                with tally.lock:
                    tally.bad.append(f"{response.status_code}: {response.text[:200]}")
            if response.status_code == 503:
                time.sleep(0.1)
            elif pause:
                time.sleep(pause)
    finally:
        session.close()


def read_until(
    url: str, headers: dict[str, str], paths: list[str], tally: Tally, stop: threading.Event
) -> None:
    """GET the paths in turn until `stop`, counting statuses and times."""
    with requests.Session() as session:
        while not stop.is_set():
            for path in paths:
                sent = time.monotonic()
                try:
                    status = session.get(f"{url}{path}", headers=headers, timeout=30).status_code
                except requests.RequestException:
                    status = 0
                tally.count(sent, status)
            time.sleep(0.05)


def threads(targets: list[Callable[[], None]]) -> list[threading.Thread]:
    started = [threading.Thread(target=t, daemon=True) for t in targets]
    for thread in started:
        thread.start()
    return started


def join_all(started: list[threading.Thread], within: float = 60) -> None:
    deadline = time.monotonic() + within
    for thread in started:
        thread.join(max(0.1, deadline - time.monotonic()))
    alive = [t for t in started if t.is_alive()]
    assert not alive, f"{len(alive)} client threads still running after {within}s"


def running(service: Service) -> Iterator[Service]:
    """Start the service, yield it, and kill it whatever happens."""
    try:
        yield service.start()
    finally:
        service.kill()
