"""AuditClient: record events from a service, and have each stored exactly once."""

from __future__ import annotations

import atexit
import math
import threading
import time
from collections.abc import Iterator, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

import orjson

from audit.client.errors import AuditError, ClientClosed
from audit.client.http import Transport
from audit.client.queue import EventQueue, Queued
from audit.client.sending import BatchSender, ClientStats, ErrorHandler, log_error, logger
from audit.domain.ids import new_event_id
from audit.domain.rules import MAX_BATCH, MAX_BODY_BYTES, PAGE_LIMIT_MAX

FilterValue = str | int | datetime


def _json(event: Mapping[str, Any]) -> bytes:
    """The event's JSON; TypeError for a value JSON cannot hold. orjson writes NaN and
    the infinities as null, which would store another value than the one recorded: they
    are looked for when the text holds a null at all."""
    data = orjson.dumps(event)
    if b"null" in data:
        stack: list[Any] = [event]
        while stack:
            value = stack.pop()
            if isinstance(value, float) and not math.isfinite(value):
                raise TypeError(f"{value!r} is not JSON: the service stores numbers exactly")
            if isinstance(value, Mapping):
                stack.extend(value.values())
            elif isinstance(value, list | tuple):
                stack.extend(value)
    return data


class AuditClient:
    """A client of the audit log service's HTTP API, safe to share between threads.

    `record()` gives the event an id (a UUIDv7, when it has none), queues it and returns
    the id at once; a background thread sends the queue in batches. Because the id is
    made before the first attempt, a retry after a lost answer is a duplicate the service
    recognises, never a second event. Events the service refuses, or that cannot be
    stored within `retry_for` seconds, go to `on_error(events, error)` (default: logged).

    `block_for`: how long record() waits for room in a full queue (`max_queue` events)
    before it raises QueueFull. `timeout`: seconds to wait for one answer.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        flush_interval: float = 1.0,
        max_queue: int = 100_000,
        block_for: float = 5.0,
        retry_for: float = 300.0,
        on_error: ErrorHandler | None = None,
        timeout: float = 30.0,
        max_batch: int = MAX_BATCH,
        max_batch_bytes: int = MAX_BODY_BYTES,
    ) -> None:
        if not 1 <= max_batch <= MAX_BATCH:
            raise ValueError(f"max_batch must be from 1 to {MAX_BATCH}")
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be an http or https URL, not {base_url!r}")
        self.block_for = block_for
        self._stop = threading.Event()
        self._transport = Transport(
            base_url, token, timeout=timeout, retry_for=retry_for, stop=self._stop
        )
        self._queue = EventQueue(max_queue, max_batch, max_batch_bytes, flush_interval)
        self._sender = BatchSender(self._transport, on_error or log_error)
        self._close_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="audit-client-sender", daemon=True)
        self._thread.start()
        # A service that exits without close() still sends what it recorded.
        atexit.register(self.close)

    # ---------------------------------------------------------------- writing

    def record(self, event: Mapping[str, Any]) -> str:
        """Queue one event for sending and return its id; QueueFull if no room in time.

        The event is serialised now (a value JSON cannot hold raises TypeError here), so
        changing the mapping afterwards changes nothing that is sent.
        """
        event_id = event.get("id")
        if event_id is None:
            event_id = new_event_id()
        data = _json({**event, "id": event_id})
        self._queue.put(Queued(str(event_id), data, time.monotonic()), self.block_for)
        return str(event_id)

    def flush(self, timeout: float | None = None) -> bool:
        """Block until every event recorded so far is stored or handed to on_error.

        Returns False if `timeout` seconds passed first.
        """
        if self._closed:
            raise ClientClosed("the audit client is closed")
        return self._queue.flush(timeout)

    def send(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Store one event now, and return it as stored; AuditError if it is refused.

        Retried as record() is (an id is made first, so a retry is safe).
        """
        event_id = event.get("id")
        body = _json({**event, "id": new_event_id() if event_id is None else event_id})
        reply = self._transport.request("POST", "/v1/events", body=body)
        if reply.status not in (200, 201):
            raise reply.error()
        stored: dict[str, Any] = reply.json()
        return stored

    # ---------------------------------------------------------------- reading

    def events(
        self, *, page_size: int = PAGE_LIMIT_MAX, **filters: FilterValue
    ) -> Iterator[dict[str, Any]]:
        """Every event matching the filters of `GET /v1/events` (`actor_id`, `target_id`,
        `action`, `outcome`, `since`, `until`, `q`, `order`), page after page by cursor.

        Each event that matched when the first page was read comes exactly once.
        """
        if "limit" in filters or "cursor" in filters:
            raise TypeError("events() pages by itself: pass page_size, not limit or cursor")
        query = {
            k: v.isoformat() if isinstance(v, datetime) else str(v) for k, v in filters.items()
        }
        query["limit"] = str(page_size)
        while True:
            reply = self._transport.request("GET", "/v1/events", query=query)
            if reply.status != 200:
                raise reply.error()
            page = reply.json()
            yield from page["events"]
            if page["next_cursor"] is None:
                return
            # The filters go again with the cursor: the same ones are always accepted.
            query = {**query, "cursor": page["next_cursor"]}

    # ---------------------------------------------------------------- life

    @property
    def stats(self) -> ClientStats:
        """How many events were recorded, stored, found already stored, or failed."""
        return self._sender.stats(self._queue.put_count)

    @property
    def queued(self) -> int:
        """Events waiting in the queue (not counting a batch being sent)."""
        return len(self._queue)

    def close(self, timeout: float | None = None) -> None:
        """Send everything queued, then stop; what is still not stored after `timeout`
        seconds (None: as long as retry_for allows) goes to on_error. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        atexit.unregister(self.close)
        self._queue.close()
        self._queue.flush(timeout)
        self._stop.set()  # cuts short a retry still waiting
        left = self._queue.stop()
        self._thread.join()
        if left:
            self._sender.fail(
                left, AuditError(None, "client_closed", "the client closed before sending these")
            )
        self._transport.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _run(self) -> None:
        while (batch := self._queue.take()) is not None:
            try:
                self._sender.deliver(batch.items)
            except Exception as exc:  # a bug here must not strand the queue or flush()
                logger.exception("the audit client's sender failed")
                self._sender.fail(batch.items, AuditError(None, "client_error", repr(exc)))
            finally:
                self._queue.done(batch)
