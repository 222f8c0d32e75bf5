"""`audit consume`: a RabbitMQ queue into a tenant's log, with pika's blocking connection.

One thread: take up to `prefetch` messages (or what came within `linger` seconds), record
them in one transaction (RecordMessages), dead-letter the invalid ones to `<queue>.dead`
(publisher confirms), then ack the whole group with one `multiple` ack. Nothing is acked
before it is durable; a crash before the ack redelivers, and ids make that a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import attrs
import orjson
import pika
import pika.exceptions

from audit.domain.errors import InvalidParameter, StorageUnavailable
from audit.entrypoints.consumer.messages import (
    Prepared,
    QueueMessage,
    RecordMessages,
    Rejected,
    Settled,
)
from audit.entrypoints.formats import error_document

ERROR_HEADER = "x-audit-error"
DEAD_SUFFIX = ".dead"
# An AMQP header must fit in one frame (128 KiB by default): the first problems suffice.
MAX_ERROR_DETAILS = 100
BACKOFF_FIRST = 0.5
BACKOFF_MAX = 30.0


def write_stderr(line: bytes) -> None:
    """One write(2) per line, as the HTTP access log writes its lines."""
    view = memoryview(line)
    while view:
        view = view[os.write(2, view) :]


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@attrs.frozen
class ConsumerOptions:
    """Where to read from and how much to take at once."""

    amqp_url: str
    queue: str
    prefetch: int = 1000
    linger: float = 0.05  # seconds a group waits for more messages before it is committed
    max_events: int = 5000  # a group is committed once its messages hold this many events

    @property
    def dead_queue(self) -> str:
        return self.queue + DEAD_SUFFIX


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


class QueueConsumer:
    """Consume until `stop()`: reconnects after the broker goes away, backs off while
    storage cannot take writes, and never acks a message before its events are durable."""

    def __init__(
        self,
        record: RecordMessages,
        tenant: str,
        options: ConsumerOptions,
        write: Callable[[bytes], None] = write_stderr,
    ) -> None:
        self._record = record
        self._tenant = tenant
        self._options = options
        self._write = write
        self._stopping = threading.Event()

    def stop(self) -> None:
        """Finish the group at hand, ack it, and return from run()."""
        self._stopping.set()

    def stop_on_signals(self) -> None:
        def handler(signum: int, frame: FrameType | None) -> None:
            self.stop()

        signal.signal(signal.SIGTERM, handler)
        signal.signal(signal.SIGINT, handler)

    def log(self, **fields: Any) -> None:
        record = {
            "time": _now(),
            "transport": "amqp",
            "queue": self._options.queue,
            "tenant": self._tenant,
            **fields,
            "pid": os.getpid(),
        }
        self._write(orjson.dumps(record) + b"\n")

    def connection_parameters(self) -> Any:
        """The broker URL's parameters, the connection named after this consumer (as
        `rabbitmqctl list_connections name` shows it)."""
        try:
            parameters = pika.URLParameters(self._options.amqp_url)
        except ValueError as exc:
            raise InvalidParameter(f"the AMQP URL is not valid: {exc}") from None
        parameters.client_properties = {
            "connection_name": f"audit consume {self._options.queue} pid {os.getpid()}"
        }
        return parameters

    def run(self) -> None:
        parameters = self.connection_parameters()
        backoff = Backoff()
        while not self._stopping.is_set():
            try:
                connection = pika.BlockingConnection(parameters)
            except pika.exceptions.AMQPError as exc:
                self._pause(backoff.next(), "broker_unreachable", exc)
                continue
            try:
                self.log(event="connected")
                backoff.reset()
                self._consume(connection)
            except pika.exceptions.AMQPError as exc:
                # Unacked messages go back to the queue with the connection; ids make
                # any that were stored but not acked duplicates when they come again.
                self._pause(backoff.next(), "connection_lost", exc)
            finally:
                if connection.is_open:
                    with contextlib.suppress(pika.exceptions.AMQPError):
                        connection.close()

    def _pause(self, delay: float, event: str, exc: BaseException) -> None:
        self.log(event=event, error=f"{type(exc).__name__}: {exc}"[:300], retry_in=round(delay, 2))
        self._stopping.wait(delay)

    def _declare(self, channel: Any) -> None:
        """Declare the dead-letter queue; the queue itself too, unless it exists (its
        owner may have declared it with arguments of their own)."""
        options = self._options
        channel.queue_declare(queue=options.dead_queue, durable=True)
        try:
            channel.queue_declare(queue=options.queue, passive=True)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != 404:
                raise
            raise _QueueMissing() from None

    def _open_channel(self, connection: Any) -> Any:
        channel = connection.channel()
        try:
            self._declare(channel)
        except _QueueMissing:
            channel = connection.channel()
            channel.queue_declare(queue=self._options.queue, durable=True)
            channel.queue_declare(queue=self._options.dead_queue, durable=True)
        channel.confirm_delivery()
        channel.basic_qos(prefetch_count=self._options.prefetch)
        return channel

    def _consume(self, connection: Any) -> None:
        options = self._options
        channel = self._open_channel(connection)
        group: list[QueueMessage] = []
        started = 0.0
        wait = options.linger
        for method, properties, body in channel.consume(options.queue, inactivity_timeout=wait):
            if method is not None:
                if not group:
                    started = time.monotonic()
                group.append(
                    QueueMessage(
                        body=body,
                        message_id=properties.message_id,
                        delivery_tag=method.delivery_tag,
                        properties=properties,
                    )
                )
            full = len(group) >= options.prefetch
            due = bool(group) and (method is None or time.monotonic() - started >= options.linger)
            if full or due or (group and self._stopping.is_set()):
                self._settle(connection, channel, group)
                group = []
            if self._stopping.is_set():
                break
        channel.cancel()

    def _settle(self, connection: Any, channel: Any, group: list[QueueMessage]) -> None:
        started = time.perf_counter()
        prepared = self._record.prepare(group)
        settled = self._commit(connection, prepared)
        if settled is None:
            return  # stopping while storage is down: nothing acked, all redelivered later
        for rejected in settled.rejected:
            self._dead_letter(channel, rejected)
        channel.basic_ack(delivery_tag=group[-1].delivery_tag, multiple=True)
        self.log(
            event="settled",
            messages=settled.messages,
            created=settled.created,
            duplicate=settled.duplicate,
            dead=len(settled.rejected),
            duration_ms=round((time.perf_counter() - started) * 1e3, 3),
        )

    def _commit(self, connection: Any, prepared: Prepared) -> Settled | None:
        """Commit, retrying with backoff while storage is unavailable; None when asked to
        stop meanwhile. The group's messages stay unacked (and so on the broker) until
        then: the prefetch limit is reached, and no more are taken."""
        backoff = Backoff()
        while True:
            try:
                return self._record.commit(prepared)
            except Exception as exc:  # storage or a bug: never ack, never drop, try again
                delay = backoff.next()
                unavailable = isinstance(exc, StorageUnavailable)
                self.log(
                    event="storage_unavailable" if unavailable else "commit_failed",
                    error=f"{type(exc).__name__}: {exc}"[:300],
                    retry_in=round(delay, 2),
                )
                if self._stopping.is_set():
                    return None
                # Sleeps in the connection, so heartbeats keep it open meanwhile.
                deadline = time.monotonic() + delay
                while not self._stopping.is_set() and time.monotonic() < deadline:
                    connection.sleep(min(0.25, max(0.0, deadline - time.monotonic())))
                if self._stopping.is_set():
                    return None

    def _dead_letter(self, channel: Any, rejected: Rejected) -> None:
        """Publish the message as it came, with the error, to the dead-letter queue and
        wait for the broker's confirm: only then may the original be acked."""
        message = rejected.message
        # ASCII JSON: an error may quote back a lone surrogate, which UTF-8 cannot carry.
        error = json.dumps(error_document(rejected.error, MAX_ERROR_DETAILS), ensure_ascii=True)
        original = message.properties or pika.BasicProperties()
        properties = pika.BasicProperties(
            content_type=original.content_type,
            content_encoding=original.content_encoding,
            headers={**(original.headers or {}), ERROR_HEADER: error},
            delivery_mode=pika.DeliveryMode.Persistent,
            priority=original.priority,
            correlation_id=original.correlation_id,
            reply_to=original.reply_to,
            message_id=original.message_id,
            timestamp=original.timestamp,
            type=original.type,
            app_id=original.app_id,
        )
        channel.basic_publish(
            exchange="",
            routing_key=self._options.dead_queue,
            body=message.body,
            properties=properties,
            mandatory=True,
        )


class _QueueMissing(Exception):
    pass
