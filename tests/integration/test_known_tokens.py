"""SharedKnownTokens: the tokens one server's processes accepted lately, in one small file
that each maps (known_tokens.py), so that the throttle spares them on every worker."""

from __future__ import annotations

import hashlib
import logging
import multiprocessing
import os
import secrets
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from audit.adapters.known_tokens import BUCKET, SLOTS, SharedKnownTokens, fingerprint
from audit.domain.tokens import hash_secret

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def a_hash() -> str:
    return hash_secret("als_" + secrets.token_urlsafe(32))


def test_what_one_instance_notes_another_on_the_same_file_knows(tmp_path: Path) -> None:
    path = tmp_path / "known-tokens"
    writer, reader = SharedKnownTokens(path), SharedKnownTokens(path)
    noted, other = a_hash(), a_hash()
    assert not reader.knows(noted, T0)
    writer.note(noted, T0 + HOUR)
    assert reader.knows(noted, T0)
    assert reader.knows(noted, T0 + HOUR - timedelta(seconds=1))
    assert not reader.knows(noted, T0 + HOUR)  # aged out
    assert not reader.knows(other, T0)
    # Noted again, it is known for longer; never for less.
    writer.note(noted, T0 + 2 * HOUR)
    writer.note(noted, T0 + HOUR)
    assert reader.knows(noted, T0 + HOUR)
    assert len([key for key in _keys(path) if key]) == 1  # one slot, refreshed


def test_what_another_process_notes_is_known_here(tmp_path: Path) -> None:
    path = tmp_path / "known-tokens"
    here = SharedKnownTokens(path)
    assert not here.knows(hash_secret("als_first"), T0)  # maps the file before the others
    hashes = [hash_secret(f"als_{n}") for n in range(300)]
    context = multiprocessing.get_context("fork")
    processes = [
        context.Process(target=_note, args=(path, hashes[n::3], T0 + HOUR)) for n in range(3)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    assert all(here.knows(secret_hash, T0) for secret_hash in hashes)
    assert not here.knows(hash_secret("als_first"), T0)


def _note(path: Path, hashes: list[str], until: datetime) -> None:
    known = SharedKnownTokens(path)
    for secret_hash in hashes:
        known.note(secret_hash, until)


def test_the_file_is_owner_only_and_holds_neither_token_nor_hash(tmp_path: Path) -> None:
    path = tmp_path / "known-tokens"
    secret = "als_" + secrets.token_urlsafe(32)
    old = os.umask(0o022)
    try:
        SharedKnownTokens(path).note(hash_secret(secret), T0 + HOUR)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    held = path.read_bytes()
    digest = hashlib.sha256(secret.encode()).digest()
    for part in (secret.encode(), digest[:8], digest[-8:], hash_secret(secret)[:16].encode()):
        assert part not in held
    assert fingerprint(hash_secret(secret)).to_bytes(8, "little") in held


def test_a_full_bucket_gives_up_its_most_outdated_entry(tmp_path: Path) -> None:
    known = SharedKnownTokens(tmp_path / "known-tokens")
    buckets = SLOTS // BUCKET
    first = a_hash()
    crowd = [first]
    while len(crowd) < BUCKET + 1:  # hashes that share the first one's bucket
        candidate = a_hash()
        if fingerprint(candidate) % buckets == fingerprint(first) % buckets:
            crowd.append(candidate)
    for n, secret_hash in enumerate(crowd[:BUCKET]):
        known.note(secret_hash, T0 + HOUR + timedelta(minutes=n))
    known.note(crowd[1], T0 + 2 * HOUR)  # refreshed: crowd[2] is now the most outdated
    known.note(crowd[BUCKET], T0 + 2 * HOUR)
    assert [known.knows(h, T0) for h in crowd[:3]] == [False, True, True]
    assert all(known.knows(h, T0) for h in crowd[3:])


def test_without_the_file_nothing_is_known_and_that_is_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A folder that is gone (removed under the server): the file cannot be made, as in
    # one the service may not write in.
    known = SharedKnownTokens(tmp_path / "gone" / "known-tokens")
    secret_hash = a_hash()
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            known.note(secret_hash, T0 + HOUR)
            assert not known.knows(secret_hash, T0)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "known-tokens" in warnings[0].getMessage()


def _keys(path: Path) -> list[int]:
    held = path.read_bytes()
    return [int.from_bytes(held[i : i + 8], "little") for i in range(0, len(held), 16)]
