"""PostgreSQL restarted mid-ingest: only 503s while it is down, writing again within
seconds, nothing acknowledged lost.

It restarts a private cluster made for the test (initdb in a temporary folder, its own
port and socket folder), never a PostgreSQL that others use, and removes it afterwards.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from tests.faults.support import (
    Service,
    Tally,
    chain_report,
    join_all,
    ledger_row,
    stored_ids,
    threads,
    write_until,
)
from tests.integration.server.support import free_port

WRITERS = 8
RECOVER_WITHIN_S = 15


def _run(command: list[str], timeout: float = 120) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")


@contextlib.contextmanager
def private_cluster() -> Iterator[tuple[str, Callable[[], None]]]:
    """A throwaway PostgreSQL cluster: its URL, and a function that restarts it."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found:
        pytest.skip("no initdb under /usr/lib/postgresql/*/bin: install the postgresql package")
    if os.geteuid() != 0 or shutil.which("runuser") is None:
        pytest.skip("making a private PostgreSQL cluster needs root (runuser -u postgres)")
    bindir = Path(found[-1]).parent
    as_postgres = ["runuser", "-u", "postgres", "--"]
    root = Path(tempfile.mkdtemp(prefix="audit-faults-pg-"))  # /tmp: postgres may enter it
    data = root / "data"
    port = free_port()
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c max_connections=60"
    # The server's output goes to its log: never to a pipe of ours, which would stay open.
    log = ["-l", str(root / "log")]
    pg_ctl = [*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-w", "-t", "60"]
    try:
        shutil.chown(root, "postgres", "postgres")
        _run([*as_postgres, str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U",
              "postgres", "--no-sync"])  # fmt: skip
        _run([*pg_ctl, "-o", options, *log, "start"])
        yield (
            f"postgresql://postgres@127.0.0.1:{port}/postgres",
            partial(_run, [*pg_ctl, "-o", options, *log, "-m", "fast", "restart"]),
        )
    finally:
        with contextlib.suppress(Exception):
            _run([*pg_ctl, "-m", "immediate", "stop"], timeout=60)
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.timeout(240)
def test_postgres_restart_mid_ingest_is_only_503s_and_loses_nothing(tmp_path: Path) -> None:
    tally = Tally()
    with private_cluster() as (url, restart):
        row = ledger_row("PostgreSQL restarted mid-ingest")
        service = Service(url, tmp_path)
        try:
            service.start()
            stop = threading.Event()
            writers = threads(
                [
                    partial(
                        write_until,
                        service.url,
                        service.headers(),
                        tally,
                        stop,
                        f"w{w}",
                        allowed=frozenset({200, 201, 503}),
                    )
                    for w in range(WRITERS)
                ]
            )
            time.sleep(2)
            restart_began = time.monotonic()
            restart()
            restarted = time.monotonic()
            deadline = restarted + RECOVER_WITHIN_S
            while time.monotonic() < deadline and not any(
                sent > restarted and status == 201 for sent, _, status in list(tally.statuses)
            ):
                time.sleep(0.2)
            time.sleep(1)
            stop.set()
            join_all(writers)
            ids = stored_ids(service)
            report = chain_report(service)
        finally:
            service.kill()
    recovered = [answered for sent, answered, s in tally.statuses if sent > restarted and s == 201]
    recovery_s = min(recovered) - restarted if recovered else None
    unavailable = sum(1 for _, _, status in tally.statuses if status == 503)
    lost = tally.acked - set(ids)
    row.tried = len(tally.statuses)
    row.survived = sum(1 for _, _, status in tally.statuses if status in (200, 201, 503))
    row.lost = len(lost)
    row.note = (
        f"{unavailable} x 503, restart took {restarted - restart_began:.1f} s, "
        f"writing again {recovery_s if recovery_s is None else round(recovery_s, 1)} s after"
    )
    assert not tally.bad, tally.bad[:5]  # no 500, no dropped connection: only 503s
    assert row.survived == row.tried
    assert recovery_s is not None, f"no write succeeded within {RECOVER_WITHIN_S}s of the restart"
    assert not lost, sorted(lost)[:10]
    assert len(ids) == len(set(ids))
    assert report["valid"] is True, report
