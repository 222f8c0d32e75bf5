"""Request ids made for requests that bring none (access_log._RequestIds)."""

from __future__ import annotations

import os
import re

from audit.entrypoints.http.access_log import _new_request_id


def test_they_are_16_hex_digits_and_never_repeat() -> None:
    made = [_new_request_id() for _ in range(10_000)]
    assert len(set(made)) == len(made)
    assert all(re.fullmatch(r"[0-9a-f]{16}", one) for one in made)


def test_a_forked_worker_makes_ids_of_its_own() -> None:
    read, write = os.pipe()
    before = _new_request_id()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child reports through the pipe
        os.write(write, _new_request_id().encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    theirs = os.read(read, 64).decode()
    os.close(read)
    after = _new_request_id()
    # The parent counts on under its prefix; the child drew a prefix of its own.
    assert after[:8] == before[:8]
    assert theirs[:8] != before[:8]
