"""The consumer's committer: one thread that commits groups of messages in order, so the
connection's thread goes on receiving and checking the next messages meanwhile.

Knows no broker. A group whose commit fails (storage unavailable, or anything else) is
retried whole with backoff, never dropped; the committer gives up on it only when the
consumer stops or loses its connection, and then nothing of it is acked.
"""

from __future__ import annotations

import queue
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import attrs

from audit.domain.errors import StorageUnavailable
from audit.entrypoints.consumer.messages import Prepared, RecordMessages, Settled
from audit.entrypoints.http.metrics import count_storage_error

BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0
_CHECK_EVERY = 0.25  # seconds between looks at the stop flags while backing off


class Backoff:
    """Exponential backoff with full jitter, so consumers do not retry in step."""

    def __init__(self, first: float = BACKOFF_FIRST, cap: float = BACKOFF_MAX) -> None:
        self._first = first
        self._cap = cap
        self._attempt = 0

    def next(self) -> float:
        ceiling = min(self._cap, self._first * 2**self._attempt)
        self._attempt = min(self._attempt + 1, 16)
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self._attempt = 0


@attrs.frozen
class Group:
    """Messages handed to the committer: their checked contents and the delivery tag that
    acks them all (the last one's, with `multiple`)."""

    prepared: Prepared
    last_tag: int


@attrs.frozen
class Done:
    """A group committed (`settled`), or given up on (`settled` None: ack nothing)."""

    group: Group
    settled: Settled | None
    seconds: float


class Committer:
    """Commits the groups submitted, one at a time, in the order submitted."""

    def __init__(
        self, record: RecordMessages, log: Callable[..., None], stopping: threading.Event
    ) -> None:
        self._record = record
        self._log = log
        self._stopping = stopping
        self._abort = threading.Event()
        self._todo: queue.SimpleQueue[Group | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self.in_flight = 0  # submitted and not yet collected; touched by the caller only
        self._thread = threading.Thread(target=self._run, name="audit-commit", daemon=True)
        self._thread.start()

    def submit(self, group: Group) -> None:
        self.in_flight += 1
        self._todo.put(group)

    def finished(self, wait: float = 0.0) -> list[Done]:
        """The groups done since the last call, in order; waits up to `wait` for one."""
        found: list[Done] = []
        try:
            found.append(self._done.get(timeout=wait) if wait > 0 else self._done.get_nowait())
            while True:
                found.append(self._done.get_nowait())
        except queue.Empty:
            pass
        self.in_flight -= len(found)
        return found

    def close(self) -> None:
        """Give up retrying, finish the commit under way (if any), and end the thread."""
        self._abort.set()
        self._todo.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (group := self._todo.get()) is not None:
            started = time.perf_counter()
            settled = self._commit(group.prepared)
            self._done.put(Done(group, settled, time.perf_counter() - started))

    def _giving_up(self) -> bool:
        return self._abort.is_set() or self._stopping.is_set()

    def _commit(self, prepared: Prepared) -> Settled | None:
        backoff = Backoff()
        while True:
            try:
                return self._record.commit(prepared)
            except Exception as exc:  # storage or a bug: never ack, never drop, try again
                if isinstance(exc, StorageUnavailable):
                    count_storage_error(exc)
                delay = backoff.next()
                fields: dict[str, Any] = {
                    "event": "storage_unavailable"
                    if isinstance(exc, StorageUnavailable)
                    else "commit_failed",
                    "error": f"{type(exc).__name__}: {exc}"[:300],
                    "retry_in": round(delay, 2),
                }
                self._log(**fields)
                deadline = time.monotonic() + delay
                while not self._giving_up() and time.monotonic() < deadline:
                    self._abort.wait(min(_CHECK_EVERY, max(0.0, deadline - time.monotonic())))
                if self._giving_up():
                    return None
