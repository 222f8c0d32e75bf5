"""`audit consume`: a RabbitMQ queue into a tenant's log, with pika's blocking connection.

The connection's thread receives and checks each message as it comes; whenever the
committer (committing.py) is idle it gets every message checked so far (up to half the
prefetch, or `max_events` events) as one group, committed in one transaction while the
next messages arrive, as the server's group commit does. When a group is durable this
thread dead-letters its invalid messages to `<queue>.dead` (publisher confirms), then acks
the whole group with one `multiple` ack. Nothing is acked before it is durable; a crash
before the ack redelivers, and ids make that a duplicate.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import FrameType
from typing import Any

import attrs
import orjson
import pika
import pika.exceptions
from prometheus_client import Counter

from audit.domain.errors import AuditError, InvalidParameter
from audit.entrypoints.consumer.committing import Backoff, Committer, Done, Group
from audit.entrypoints.consumer.messages import (
    Checked,
    QueueMessage,
    RecordMessages,
    Rejected,
    delivery_tag,
    event_count,
    prepared,
)
from audit.entrypoints.formats import error_document
from audit.entrypoints.http.metrics import count_ingested

# The HTTP API's families (events ingested, storage errors) count the consumer's work too;
# this one is the consumer's own.
MESSAGES = Counter(
    "audit_queue_messages_total",
    "Queue messages settled by audit consume, by outcome: stored (their events durable, "
    "or duplicates) or dead (sent to the dead-letter queue).",
    ("outcome",),
)

ERROR_HEADER = "x-audit-error"
DEAD_SUFFIX = ".dead"
# The message's headers and this one must fit in one AMQP frame (128 KiB by default), or
# the broker closes the connection and the message comes back, again and again: the error
# keeps its first problems, each text cut short, within a bound well under a frame (a
# field's name and a message may quote the message's own text back, of any length).
MAX_ERROR_DETAILS = 100
MAX_ERROR_HEADER_BYTES = 16 * 1024
_MAX_ERROR_TEXT = 256
# How long the connection's thread waits for a message before it looks at the committer.
POLL_SECONDS = 0.01


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
    max_events: int = 5000  # at most this many events in one group (one transaction)

    @property
    def dead_queue(self) -> str:
        return self.queue + DEAD_SUFFIX


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
        committer = Committer(self._record, self.log, self._stopping)
        pending: list[Checked] = []
        try:
            for method, properties, body in channel.consume(
                options.queue, inactivity_timeout=POLL_SECONDS
            ):
                # Once stopping, take no more: what is not acked goes back to the queue.
                if method is not None and not self._stopping.is_set():
                    message = QueueMessage(
                        body, properties.message_id or None, method.delivery_tag, properties
                    )
                    pending.append(self._record.check(message))
                for done in committer.finished():
                    if not self._acknowledge(channel, done):
                        return  # stopping while storage is down: ack nothing more
                if pending and committer.in_flight == 0:
                    group, pending = self._next_group(pending)
                    committer.submit(group)
                if self._stopping.is_set() and committer.in_flight == 0 and not pending:
                    break
        finally:
            committer.close()
        channel.cancel()

    def _next_group(self, pending: list[Checked]) -> tuple[Group, list[Checked]]:
        """The oldest messages checked, as many as one group holds (at least one); half
        the prefetch at most, so the broker can send the next ones during the commit."""
        limit = max(1, self._options.prefetch // 2)
        taken = events = 0
        while taken < min(limit, len(pending)):
            events += event_count(pending[taken])
            if taken and events > self._options.max_events:
                break
            taken += 1
        group = pending[:taken]
        return Group(prepared(group), delivery_tag(group[-1])), pending[taken:]

    def _acknowledge(self, channel: Any, done: Done) -> bool:
        """Dead-letter a committed group's refused messages, then ack the whole group.

        Counted and logged before the ack: a consumer killed between the two has its
        group delivered again, and logged again as duplicates, where one killed between
        the ack and the log line left a stored group that no line reported.
        """
        settled = done.settled
        if settled is None:
            return False
        for rejected in settled.rejected:
            self._dead_letter(channel, rejected)
        count_ingested(settled.created, settled.duplicate)
        dead = len(settled.rejected)
        if settled.messages > dead:
            MESSAGES.labels("stored").inc(settled.messages - dead)
        if dead:
            MESSAGES.labels("dead").inc(dead)
        self.log(
            event="settled",
            messages=settled.messages,
            created=settled.created,
            duplicate=settled.duplicate,
            dead=dead,
            duration_ms=round(done.seconds * 1e3, 3),
        )
        channel.basic_ack(delivery_tag=done.group.last_tag, multiple=True)
        return True

    def _dead_letter(self, channel: Any, rejected: Rejected) -> None:
        """Publish the message as it came, with the error, to the dead-letter queue and
        wait for the broker's confirm: only then may the original be acked."""
        message = rejected.message
        error = error_header(rejected.error)
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


def _cut(text: str) -> str:
    return text if len(text) <= _MAX_ERROR_TEXT else text[: _MAX_ERROR_TEXT - 1] + "\u2026"


def error_header(exc: AuditError) -> str:
    """The `x-audit-error` header: the error's JSON, at most MAX_ERROR_HEADER_BYTES. ASCII
    JSON: an error may quote back a lone surrogate, which UTF-8 cannot carry."""
    document = error_document(exc, MAX_ERROR_DETAILS)
    error = document["error"]
    error["message"] = _cut(error["message"])
    details = error.get("details")
    if details is not None:
        error["details"] = [
            {key: _cut(v) if isinstance(v, str) else v for key, v in d.items()} for d in details
        ]
    header = json.dumps(document, ensure_ascii=True)
    while len(header) > MAX_ERROR_HEADER_BYTES and error.get("details"):
        del error["details"][len(error["details"]) // 2 :]
        header = json.dumps(document, ensure_ascii=True)
    return header


class _QueueMissing(Exception):
    pass
