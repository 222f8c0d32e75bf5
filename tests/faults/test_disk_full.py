"""The SQLite database on a full disk (a small tmpfs): writes are 503 with Retry-After,
reads keep answering, writes resume once space is freed, nothing acknowledged is lost."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from tests.faults.support import Service, chain_report, event, ledger_row, stored_ids

TMPFS_SIZE = "8m"
# How long writes may go on succeeding into space SQLite already holds (its WAL is
# reused from the start after a checkpoint) before the full disk must show.
FILL_WITHIN_S = 60
RESUME_WITHIN_S = 15


@contextlib.contextmanager
def small_disk(where: Path) -> Iterator[Path]:
    where.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={TMPFS_SIZE},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False, capture_output=True)


def fill(folder: Path) -> Path:
    """Fill the disk to the last byte; returns the file to delete to free it."""
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):  # big pieces, then the tail
            with contextlib.suppress(OSError):
                while True:
                    os.write(fd, b"\0" * size)
        # Full: not one more byte fits.
        with pytest.raises(OSError, match="No space") as full:
            os.write(fd, b"\0")
        assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


@dataclass
class Observed:
    writes_full: list[requests.Response] = field(default_factory=list)
    reads: list[tuple[str, int]] = field(default_factory=list)
    resumed_after_s: float | None = None
    acked: set[str] = field(default_factory=set)
    stored: list[str] = field(default_factory=list)
    chain: dict[str, object] = field(default_factory=dict)
    before_full: int = 0


def _post(service: Service, ids: list[str]) -> requests.Response:
    return requests.post(
        f"{service.url}/v1/events",
        json={"events": [event(i, pad=2000) for i in ids]},
        headers=service.headers(),
        timeout=30,
    )


@pytest.fixture(scope="module")
def disk_full(tmp_path_factory: pytest.TempPathFactory) -> Observed:
    work = tmp_path_factory.mktemp("disk-full")
    seen = Observed()
    with small_disk(work / "disk") as disk:
        service = Service(
            f"sqlite:///{disk / 'audit.db'}",
            work,
            env={"AUDIT_SIGNING_KEY_FILE": str(work / "signing.key")},
        )
        try:
            service.start()
            first = _post(service, [f"seed-{n}" for n in range(20)])
            assert first.status_code == 201, first.text
            seen.acked.update(f"seed-{n}" for n in range(20))
            reader = service.token("events:read")  # not used before the disk is full
            filler = fill(disk)
            n = 0
            deadline = time.monotonic() + FILL_WITHIN_S
            while time.monotonic() < deadline:
                ids = [f"full-{n + i}" for i in range(20)]
                n += 20
                response = _post(service, ids)
                if response.status_code == 201:
                    seen.acked.update(ids)
                    seen.before_full += 1
                    continue
                seen.writes_full.append(response)
                break
            seen.writes_full += [_post(service, [f"more-{n}-{i}"]) for i in range(5)]
            read_headers = {"Authorization": f"Bearer {reader}"}
            for path in (
                "/v1/events?limit=5",
                "/v1/events/seed-3",
                "/v1/events/seed-3/proof",
                "/v1/export?format=ndjson",
                "/v1/verify",
                "/v1/events?q=fault&order=asc",
            ):
                got = requests.get(f"{service.url}{path}", headers=read_headers, timeout=30)
                seen.reads.append((path, got.status_code))
            filler.unlink()
            freed = time.monotonic()
            while time.monotonic() - freed < RESUME_WITHIN_S:
                ids = [f"after-{n}"]
                n += 1
                if _post(service, ids).status_code == 201:
                    seen.acked.update(ids)
                    seen.resumed_after_s = time.monotonic() - freed
                    break
                time.sleep(0.5)
            seen.stored = stored_ids(service)
            seen.chain = chain_report(service)
        finally:
            service.kill()
    return seen


def test_disk_full_writes_are_503_with_retry_after_and_resume(disk_full: Observed) -> None:
    row = ledger_row("disk full (tmpfs): writes, sqlite")
    lost = disk_full.acked - set(disk_full.stored)
    row.tried = len(disk_full.writes_full)
    row.survived = sum(
        1 for r in disk_full.writes_full if r.status_code == 503 and "Retry-After" in r.headers
    )
    row.lost = len(lost)
    row.note = f"resumed {disk_full.resumed_after_s and round(disk_full.resumed_after_s, 1)} s"
    assert disk_full.writes_full, f"writes never failed within {FILL_WITHIN_S}s of a full disk"
    for response in disk_full.writes_full:
        assert response.status_code == 503, response.text
        assert response.headers.get("Content-Type", "").startswith("application/json")
        assert response.json()["error"]["code"] == "unavailable"
        assert int(response.headers["Retry-After"]) >= 1
    assert disk_full.resumed_after_s is not None, "writes did not resume once space was freed"
    assert not lost, sorted(lost)[:10]
    assert disk_full.chain["valid"] is True, disk_full.chain


def test_disk_full_reads_keep_answering(disk_full: Observed) -> None:
    row = ledger_row("disk full (tmpfs): reads, sqlite")
    row.tried = len(disk_full.reads)
    row.survived = sum(1 for _, status in disk_full.reads if status == 200)
    assert disk_full.reads == [(path, 200) for path, _ in disk_full.reads]
