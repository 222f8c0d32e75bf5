"""Delivering one batch: what the service refuses goes to on_error, never its neighbours."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from audit.client.errors import AuditError, Unreachable
from audit.client.http import Transport
from audit.client.queue import Queued

logger = logging.getLogger("audit.client")

ErrorHandler = Callable[[list[dict[str, Any]], AuditError], None]


def log_error(events: list[dict[str, Any]], error: AuditError) -> None:
    """The default on_error: log the ids of the events not stored, and why."""
    ids = [str(e.get("id")) for e in events[:10]]
    more = f" and {len(events) - 10} more" if len(events) > 10 else ""
    logger.error("%d audit events not stored (%s): %s%s", len(events), error, ids, more)


@dataclass(frozen=True)
class ClientStats:
    """Counts of events since the client was made."""

    recorded: int  # handed to record()
    stored: int  # stored by this client
    duplicates: int  # already stored (a retry of a request whose answer was lost)
    failed: int  # handed to on_error


def batch_body(items: Sequence[Queued]) -> bytes:
    return b'{"events":[' + b",".join(item.json for item in items) + b"]}"


class BatchSender:
    """POSTs batches, and splits what the service refuses from what it will take.

    A 422 names its bad events by index: those go to on_error and the rest is sent
    again. A 409 (an id stored with other content) or 413 (the body or batch is over
    the service's limit) names no event, so the batch is halved until the refused
    events stand alone. Any other refusal, or no answer within `retry_for`, hands the
    whole batch to on_error.
    """

    def __init__(self, transport: Transport, on_error: ErrorHandler) -> None:
        self._transport = transport
        self._on_error = on_error
        self._lock = threading.Lock()
        self.stored = self.duplicates = self.failed = 0

    def stats(self, recorded: int) -> ClientStats:
        with self._lock:
            return ClientStats(recorded, self.stored, self.duplicates, self.failed)

    def deliver(self, items: list[Queued]) -> None:
        parts = [items]
        while parts:
            part = parts.pop()
            # Retried until `retry_for` seconds after its oldest event was recorded (at
            # least one attempt): a long outage costs each event that long, not each batch
            # in turn, so the queue behind it drains at once.
            left = min(item.at for item in part) + self._transport.retry_for - time.monotonic()
            try:
                reply = self._transport.request(
                    "POST", "/v1/events", body=batch_body(part), retry_for=max(left, 0.0)
                )
            except Unreachable as exc:
                self.fail(part, exc)
                continue
            if reply.status in (200, 201):
                self._count(reply.json())
                continue
            error = reply.error()
            if reply.status == 422:
                bad = {
                    d["index"]
                    for d in error.details
                    if isinstance(d.get("index"), int) and 0 <= d["index"] < len(part)
                }
                if bad and len(bad) < len(part):
                    self.fail([part[i] for i in sorted(bad)], error)
                    parts.append([item for i, item in enumerate(part) if i not in bad])
                    continue
            elif reply.status in (409, 413) and len(part) > 1:
                half = len(part) // 2
                parts += [part[half:], part[:half]]  # the first half is sent first
                continue
            self.fail(part, error)

    def fail(self, items: Sequence[Queued], error: AuditError) -> None:
        """Hand events to on_error; an on_error that raises is logged, never fatal."""
        with self._lock:
            self.failed += len(items)
        try:
            self._on_error([orjson.loads(item.json) for item in items], error)
        except Exception:
            logger.exception("the audit client's on_error raised")

    def _count(self, answer: Any) -> None:
        created = sum(1 for e in answer["events"] if e.get("status") == "created")
        with self._lock:
            self.stored += created
            self.duplicates += len(answer["events"]) - created
