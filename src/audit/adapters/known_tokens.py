"""Tokens that some process of one server accepted lately, in a small memory-mapped file
every worker of `audit serve` maps, so that an address held off for failed
authentications (application/authentication.py) is spared its tokens in use by every
worker, not only by the one that accepted them.

The file holds no token and no stored hash: each entry is an 8-byte fingerprint (BLAKE2b
of the token's SHA-256, personalised for this file) and the time, in Unix seconds, until
which it counts as known (0: an empty slot). It has `SLOTS` entries of 16 bytes in
buckets of `BUCKET` slots; a fingerprint lives in the bucket its value picks. Noting one
refreshes its slot, or takes the bucket's empty or most outdated one. Writers serialise
on an exclusive `flock` of their own open file (and a lock between their threads);
readers take no lock.

Nothing here has to be exact, because an entry grants nothing: a fingerprint found only
lets a request past the throttle, to authentication, which still checks the token's
hash, expiry and revocation (so a revoked token's entry is harmless). A torn read, a
lost entry or one pushed out of a full bucket costs at most a 429 to a throttled
address's valid token until its next acceptance, as before this file existed. Where the
file cannot be had, that is how every request is answered: the failure is logged once
a process.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import mmap
import os
import struct
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from audit.application.ports import KnownTokens

logger = logging.getLogger(__name__)

BUCKET = 8
SLOTS = 8192  # 128 KiB
_ENTRY = struct.Struct("<QQ")  # fingerprint, known until (Unix seconds)
_BUCKET = struct.Struct("<" + "QQ" * BUCKET)
_SIZE = SLOTS * _ENTRY.size
_PERSON = b"audit-known-tok"


def fingerprint(secret_hash: str) -> int:
    """The 8 bytes of `secret_hash` (hex SHA-256 of a token) that the file holds."""
    digest = hashlib.blake2b(bytes.fromhex(secret_hash), digest_size=8, person=_PERSON)
    return int.from_bytes(digest.digest(), "little")


class SharedKnownTokens:
    """The file of tokens accepted lately by one server's processes (see the module's
    docstring); each process opens it on first use, creating it (mode 0600) if need be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._fd = -1
        self._pid = 0  # the process that opened _fd: a forked child opens its own
        self._unusable = False
        self._lock = threading.Lock()

    def note(self, secret_hash: str, until: datetime) -> None:
        """Note that the token of `secret_hash` was accepted: known until `until`."""
        key = fingerprint(secret_hash)
        stamp = max(1, int(until.timestamp()))
        with self._lock:
            if not self._usable():
                return
            assert self._map is not None
            start = _bucket_of(key)
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except OSError:
                return  # a hint lost (see the module's docstring)
            try:
                values = _BUCKET.unpack_from(self._map, start)
                slot = _slot_for(values, key)
                offset = start + slot * _ENTRY.size
                if values[2 * slot] == key and values[2 * slot + 1] >= stamp:
                    return  # noted already, for as long
                _ENTRY.pack_into(self._map, offset, key, stamp)
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def knows(self, secret_hash: str, at: datetime) -> bool:
        """Whether the token of `secret_hash` was noted as known until after `at`."""
        if self._map is None and not self._usable():
            return False
        assert self._map is not None
        key = fingerprint(secret_hash)
        values = _BUCKET.unpack_from(self._map, _bucket_of(key))
        now = at.timestamp()
        return any(values[i] == key and values[i + 1] > now for i in range(0, 2 * BUCKET, 2))

    def _usable(self) -> bool:
        if self._map is not None and self._pid == os.getpid():
            return True
        with _opening:
            if self._map is not None and self._pid == os.getpid():
                return True
            if self._unusable:
                return False
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                try:
                    if os.fstat(fd).st_size < _SIZE:
                        os.ftruncate(fd, _SIZE)  # zeros: empty slots; never shrunk
                    mapped = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED)
                except BaseException:
                    os.close(fd)
                    raise
            except (OSError, ValueError) as exc:
                self._unusable = True
                logger.warning(
                    "cannot share the tokens in use between workers through %s (%s): a "
                    "throttled address's token passes only on a worker that accepted it",
                    self.path,
                    exc,
                )
                return False
            if self._fd >= 0:
                os.close(self._fd)  # a forked parent's: its flock would not exclude it
            # A parent's map is left to the collector: a reader may still be using it.
            self._map, self._fd, self._pid = mapped, fd, os.getpid()
        return True


_opening = threading.Lock()


def _bucket_of(key: int) -> int:
    return (key % (SLOTS // BUCKET)) * _BUCKET.size


def _slot_for(values: tuple[int, ...], key: int) -> int:
    """The slot of a bucket's `values` for `key`: its own, else the most outdated."""
    oldest = 0
    for slot in range(BUCKET):
        if values[2 * slot] == key:
            return slot
        if values[2 * slot + 1] < values[2 * oldest + 1]:
            oldest = slot
    return oldest


def shared_known_tokens(path: str | None) -> SharedKnownTokens | None:
    """The file at `path` (set by `audit serve`), or None: each process on its own."""
    return None if path is None else SharedKnownTokens(Path(path))


if TYPE_CHECKING:
    # `mypy --strict src` checks that the adapter fits the port Authenticate asks for.
    def _fits_the_port(path: Path) -> KnownTokens:
        return SharedKnownTokens(path)
