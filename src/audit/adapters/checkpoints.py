"""Where signed checkpoints go as they are made: a folder an operator ships elsewhere."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class FolderCheckpointSink:
    """Keeps the newest checkpoint of each tenant as `<folder>/<tenant>.checkpoint`.

    Each file is replaced atomically, so a shipper reading it never sees half a note.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder

    def publish(self, tenant: str, note: str) -> None:
        self._folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self._folder, prefix=f".{tenant}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(note)
            os.replace(temporary, self._folder / f"{tenant}.checkpoint")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class DiscardCheckpointSink:
    """No folder configured: checkpoints are only answered, not kept."""

    def publish(self, tenant: str, note: str) -> None:
        return None


def checkpoint_sink(folder: str | None) -> FolderCheckpointSink | DiscardCheckpointSink:
    return FolderCheckpointSink(Path(folder)) if folder else DiscardCheckpointSink()
