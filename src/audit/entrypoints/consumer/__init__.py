"""The queue consumer: RabbitMQ messages into a tenant's log through the same use cases
as `POST /v1/events` (see amqp.py for the loop, messages.py for what a message means)."""

from __future__ import annotations

from audit.container import Container
from audit.domain import rules
from audit.domain.errors import InvalidParameter
from audit.domain.tokens import TENANT_RE
from audit.entrypoints.consumer.amqp import ConsumerOptions, QueueConsumer
from audit.entrypoints.consumer.messages import RecordMessages

__all__ = ["ConsumerOptions", "QueueConsumer", "consume"]


def consume(
    container: Container, tenant: str, options: ConsumerOptions, metrics_port: int | None = None
) -> None:
    """Consume until SIGTERM or SIGINT, then ack what is stored and return; with a
    `metrics_port`, serve the Prometheus metrics on 127.0.0.1 meanwhile."""
    if not TENANT_RE.fullmatch(tenant):
        raise InvalidParameter("tenant must be 1-64 characters of A-Z a-z 0-9 . _ -")
    max_bytes = int(container.config.max_body_bytes() or rules.MAX_BODY_BYTES)
    record = RecordMessages(container.record_groups(), tenant, max_bytes)
    consumer = QueueConsumer(record, tenant, options)
    consumer.stop_on_signals()
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr="127.0.0.1")
    consumer.run()
