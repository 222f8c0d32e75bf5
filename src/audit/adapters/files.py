"""Files the service makes hold events, token hashes or keys: readable by its user only."""

from __future__ import annotations

import os

OWNER_ONLY = 0o600


def create_owner_only(path: str | os.PathLike[str]) -> None:
    """Make `path` an empty file of mode 0600 if nothing is there; leave anything else be.

    For files that other code fills (SQLite makes a database in an empty file, and its
    `-wal` and `-shm` with the database's mode). A folder that is missing or cannot be
    written is left for that code to report in its own words.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, OWNER_ONLY)
    except OSError:
        return
    os.close(fd)
