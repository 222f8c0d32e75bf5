"""SQLite: a flag in shared memory that tells a process when to read the revocation epoch.

Every authenticated request needs the revocation epoch (authentication.py). Read from
the database it is one more statement a request: 4 us in-process, but in a served
worker, where the sqlite3 driver lets go of the GIL at each step and eight threads take
it back in turn, a single-event POST cost about 90 us (8%) more CPU with it than
without (bench/README.md).

A SQLite database is on one host, so every process that can revoke a token or
authenticate one maps the same small file beside it, `<database>-revocations`: two
counters, `begun` and `ended`, of revocations. A revocation adds one to `begun` before
its transaction writes and one to `ended` after it has ended (committed or not). A reader
keeps the epoch it read from the database together with the `begun` it saw before the
read, and only when the two counters were equal (no revocation under way); while
`begun` stays the same no revocation can have committed since, so the kept epoch is
still the database's. Once `begun` moves, the next request reads the database again: a
request that starts after a revocation was acknowledged is refused, as before.

Readers map the file read-only and take no lock; writers add under an exclusive
`flock` of their own open file. A revoker that dies between its two additions leaves
`begun` ahead for good, and every request then reads the database, as it did before
this file existed: slower, never wrong. Where the file cannot be opened, readers read
the database every time; a revoker that cannot open a file that exists refuses to
revoke (a reader may be trusting it). Like SQLite's `-shm`, the file must not be removed
while a server runs: its workers would go on reading the one they mapped, and only the
30 s backstop of authentication.py would bound how late they see a revocation.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path

from sqlalchemy.engine import URL

from audit.domain.errors import StorageUnavailable

_COUNTER = struct.Struct("<Q")
_BEGUN, _ENDED = 0, _COUNTER.size
_SIZE = 2 * _COUNTER.size


class RevocationBeacon:
    """The two counters of one database's beacon file (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._map: mmap.mmap | None = None
        self._unreadable = False
        self._lock = threading.Lock()

    def readable(self) -> bool:
        """Whether the counters can be read here; False where the file cannot be had
        (tried once a process)."""
        if self._map is None:
            with self._lock:
                if self._map is None:
                    if self._unreadable:
                        return False
                    try:
                        fd = self._open()
                    except OSError:
                        self._unreadable = True
                        return False
                    try:
                        self._map = mmap.mmap(fd, _SIZE, mmap.MAP_SHARED, mmap.PROT_READ)
                    finally:
                        os.close(fd)  # the map holds the file
        return True

    def begun(self) -> int:
        """Revocations begun so far (call readable() first)."""
        assert self._map is not None
        return int(_COUNTER.unpack_from(self._map, _BEGUN)[0])

    def settled(self) -> int | None:
        """`begun` if every revocation begun has ended, else None (call readable() first).

        `ended` is read first: it never passes `begun`, and both only grow, so equal
        values mean that none was under way when `ended` was read, nor began until
        `begun` was."""
        assert self._map is not None
        ended = _COUNTER.unpack_from(self._map, _ENDED)[0]
        begun = _COUNTER.unpack_from(self._map, _BEGUN)[0]
        return int(begun) if begun == ended else None

    def begin(self) -> None:
        """Note a revocation about to be written; end() must follow once its
        transaction has ended, committed or rolled back."""
        self._add(_BEGUN)

    def end(self) -> None:
        self._add(_ENDED)

    def _add(self, offset: int) -> None:
        try:
            fd = self._open()
        except OSError as exc:
            if not self.path.exists():
                return  # no process can be trusting a file that is not there
            raise StorageUnavailable(
                f"cannot note the revocation in {self.path.name}: {exc.strerror}", 5, "unreachable"
            ) from None
        try:
            # Its own open file: flock excludes the other processes and threads.
            fcntl.flock(fd, fcntl.LOCK_EX)
            (value,) = _COUNTER.unpack(os.pread(fd, _COUNTER.size, offset))
            os.pwrite(fd, _COUNTER.pack(value + 1), offset)
        finally:
            os.close(fd)

    def _open(self) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < _SIZE:
                os.ftruncate(fd, _SIZE)  # zeros; never shrunk, so a map never loses its page
        except BaseException:
            os.close(fd)
            raise
        return fd


_beacons: dict[Path, RevocationBeacon] = {}
_beacons_lock = threading.Lock()


def revocation_beacon(url: URL) -> RevocationBeacon | None:
    """The beacon of a SQLite database file (one per file and process); None for any
    other database (PostgreSQL's servers need not share a host: they read the epoch), and
    for a SQLite `uri=true` URL, whose file this does not name."""
    if (
        url.get_backend_name() != "sqlite"
        or url.query.get("uri")
        or url.database in (None, "", ":memory:")
    ):
        return None
    # Beside the file itself, as SQLite puts its -wal and -shm: a process that names the
    # database through a symbolic link must find the same beacon.
    database = Path(os.path.realpath(url.database))
    with _beacons_lock:
        beacon = _beacons.get(database)
        if beacon is None:
            beacon = _beacons[database] = RevocationBeacon(
                database.with_name(database.name + "-revocations")
            )
    return beacon
