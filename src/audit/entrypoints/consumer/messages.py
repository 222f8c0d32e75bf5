"""Queue messages into a tenant's log: each message checked on its own, then a group of
them committed in one transaction, each message all or nothing on its own.

Knows no broker: the AMQP loop (amqp.py) hands it messages and acks what it settled.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attrs

from audit.application.recording import RecordEvents, Submission
from audit.domain.errors import AuditError, PayloadTooLarge
from audit.domain.events import NewEvent
from audit.domain.validation import BATCH_KEY, decode_json, is_batch, parse_batch, parse_event


@attrs.frozen
class QueueMessage:
    """One delivered message: its body, its `message_id`, and what the broker needs back."""

    body: bytes
    message_id: str | None = None
    delivery_tag: int = 0
    properties: Any = None  # the broker's properties, republished as they are when dead


@attrs.frozen
class Rejected:
    """A message that can never be stored as it is, and why (the error a POST would get)."""

    message: QueueMessage
    error: AuditError


@attrs.frozen
class Prepared:
    """A group of messages checked on their own: those to commit, and those refused."""

    accepted: list[tuple[QueueMessage, Submission]]
    rejected: list[Rejected]


@attrs.frozen
class Settled:
    """What became of a group once its transaction is durable."""

    messages: int
    created: int
    duplicate: int
    rejected: list[Rejected]


Checked = tuple[QueueMessage, Submission] | Rejected


def prepared(checked: Sequence[Checked]) -> Prepared:
    """A group of messages checked one by one (RecordMessages.check), in their order."""
    accepted = [c for c in checked if not isinstance(c, Rejected)]
    return Prepared(accepted, [c for c in checked if isinstance(c, Rejected)])


def delivery_tag(checked: Checked) -> int:
    message = checked.message if isinstance(checked, Rejected) else checked[0]
    return message.delivery_tag


def event_count(checked: Checked) -> int:
    """How many events a checked message holds (a rejected one costs a commit nothing)."""
    return 0 if isinstance(checked, Rejected) else len(checked[1].events)


def _with_id(item: Any, event_id: str | None) -> Any:
    """The event, given `event_id` when it has no id of its own."""
    if event_id is None or not isinstance(item, dict) or item.get("id") is not None:
        return item
    return {**item, "id": event_id}


def message_events(body: bytes, message_id: str | None, max_bytes: int) -> list[NewEvent]:
    """The events of a message body, parsed exactly as `POST /v1/events` parses a body.

    An event without an id takes the message's id (in a batch, `<message_id>:<index>`), so
    a redelivered message is a duplicate, not a second event. Raises the AuditError a POST
    of this body would answer.
    """
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"the message is larger than {max_bytes} bytes")
    document = decode_json(body)
    if not is_batch(document):
        return [parse_event(_with_id(document, message_id))]
    items = document[BATCH_KEY]
    if message_id is not None and isinstance(items, list):
        items = [_with_id(item, f"{message_id}:{i}") for i, item in enumerate(items)]
    return parse_batch(items)


class RecordMessages:
    """Record groups of queue messages into one tenant's log through RecordEvents.

    `prepare` checks each message on its own, so one bad message never costs its group;
    `commit` appends the rest in one transaction (one fsync), a message that conflicts
    with what is stored refused on its own. A storage failure raises from `commit` and
    then nothing of the group is stored: commit the same Prepared again later.
    """

    def __init__(self, record: RecordEvents, tenant: str, max_bytes: int) -> None:
        self._record = record
        self._tenant = tenant
        self._max_bytes = max_bytes

    def check(self, message: QueueMessage) -> Checked:
        """One message on its own: ready to commit, or Rejected with the reason."""
        try:
            events = message_events(message.body, message.message_id, self._max_bytes)
            return message, self._record.submit(self._tenant, events)
        except AuditError as exc:
            return Rejected(message, exc)

    def prepare(self, messages: Sequence[QueueMessage]) -> Prepared:
        return prepared([self.check(m) for m in messages])

    def commit(self, prepared: Prepared) -> Settled:
        outcomes = (
            self._record.commit_group([s for _, s in prepared.accepted])
            if prepared.accepted
            else []
        )
        created = duplicate = 0
        rejected = list(prepared.rejected)
        for (message, _), outcome in zip(prepared.accepted, outcomes, strict=True):
            if isinstance(outcome, AuditError):
                rejected.append(Rejected(message, outcome))
                continue
            fresh = sum(1 for r in outcome if r.created)
            created += fresh
            duplicate += len(outcome) - fresh
        messages = len(prepared.accepted) + len(prepared.rejected)
        return Settled(messages, created, duplicate, rejected)
