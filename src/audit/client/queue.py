"""The client's bounded queue of serialised events, and what flush() waits for."""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from audit.client.errors import ClientClosed, QueueFull

BATCH_FRAME = len(b'{"events":[]}')


@dataclass(frozen=True, slots=True)
class Queued:
    """One recorded event: its id and its JSON, made once when it was recorded."""

    id: str
    json: bytes
    at: float  # time.monotonic() when queued


@dataclass(frozen=True)
class Batch:
    number: int
    items: list[Queued]


class EventQueue:
    """A FIFO of events for the sender threads, bounded in events.

    Events leave in batches of at most `max_batch` events and `max_bytes` of body, as soon
    as a batch is full, the oldest event has waited `linger` seconds, or a flush or close
    asks for them. Every event has a place in the order of put(); flush() waits until
    every event up to its place has left the queue and its batch is done, so it holds
    with several senders too.
    """

    def __init__(self, max_events: int, max_batch: int, max_bytes: int, linger: float) -> None:
        self._max_events = max_events
        self._max_batch = max_batch
        self._max_bytes = max_bytes
        self._linger = linger
        self._changed = threading.Condition()
        self._items: deque[Queued] = deque()
        self._bytes = 0
        self._put = 0  # events ever put
        self._taken = 0  # events ever taken, so the head of the queue has place _taken
        self._in_flight: dict[int, int] = {}  # batch number -> place of its first event
        self._batches = 0
        self._flush_upto = 0
        self._closed = False
        self._stopped = False

    def put(self, item: Queued, block_for: float) -> None:
        """Queue one event; wait up to `block_for` seconds for room, then QueueFull."""
        with self._changed:
            if self._closed:
                raise ClientClosed("the audit client is closed")
            if len(self._items) >= self._max_events:
                deadline = time.monotonic() + block_for
                while len(self._items) >= self._max_events and not self._closed:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise QueueFull(
                            f"{len(self._items)} events queued; no room after {block_for:g}s"
                        )
                    self._changed.wait(left)
                if self._closed:
                    raise ClientClosed("the audit client is closed")
            self._items.append(item)
            self._bytes += len(item.json) + 1
            self._put += 1
            # The first event starts the sender's linger clock; a full batch ends it.
            if len(self._items) == 1 or self._ready(time.monotonic()):
                self._changed.notify_all()

    def take(self) -> Batch | None:
        """The next batch, when one is due; None once the queue is stopped, or closed and
        empty."""
        with self._changed:
            while True:
                if self._stopped:
                    return None
                now = time.monotonic()
                if self._items and self._ready(now):
                    break
                if self._closed and not self._items:
                    return None
                wait = self._items[0].at + self._linger - now if self._items else None
                self._changed.wait(wait)
            items: list[Queued] = []
            size = BATCH_FRAME
            while self._items and len(items) < self._max_batch:
                item = self._items[0]
                if items and size + len(item.json) + 1 > self._max_bytes:
                    break
                items.append(self._items.popleft())
                size += len(item.json) + 1
                self._bytes -= len(item.json) + 1
            self._batches += 1
            batch = Batch(self._batches, items)
            self._in_flight[batch.number] = self._taken
            self._taken += len(items)
            self._changed.notify_all()  # room for put(), and maybe another batch is due
            return batch

    def done(self, batch: Batch) -> None:
        """The batch is stored or handed to on_error."""
        with self._changed:
            del self._in_flight[batch.number]
            self._changed.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event put so far is done; False if `timeout` passed first."""
        with self._changed:
            target = self._put
            self._flush_upto = max(self._flush_upto, target)
            self._changed.notify_all()
            return self._changed.wait_for(lambda: self._unfinished() >= target, timeout)

    def close(self) -> None:
        """No more put(); what is queued leaves at once."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def stop(self) -> list[Queued]:
        """take() answers None from now on; returns the events still queued."""
        with self._changed:
            self._stopped = self._closed = True
            left = list(self._items)
            self._items.clear()
            self._bytes = 0
            self._taken += len(left)
            self._changed.notify_all()
            return left

    @property
    def put_count(self) -> int:
        return self._put

    def __len__(self) -> int:
        with self._changed:
            return len(self._items)

    def _unfinished(self) -> int:
        """The place of the first event not done yet (or the next place, when all are)."""
        return min(self._in_flight.values(), default=self._taken)

    def _ready(self, now: float) -> bool:
        return (
            len(self._items) >= self._max_batch
            or self._bytes + BATCH_FRAME >= self._max_bytes
            or self._flush_upto > self._taken
            or self._closed
            or now - self._items[0].at >= self._linger
        )
