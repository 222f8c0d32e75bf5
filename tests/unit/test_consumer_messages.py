"""What a queue message means: parsed as POST /v1/events parses a body, grouped, each
message standing or falling alone (no broker here; tests/integration/test_consumer.py
has the real one)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from audit.adapters.memory import InMemoryUnitOfWorkFactory
from audit.application.querying import ExportEvents, VerifyChain
from audit.application.recording import RecordEvents
from audit.domain.errors import (
    AuditError,
    MalformedJson,
    Problem,
    StorageUnavailable,
    ValidationFailed,
)
from audit.domain.query import EventFilter
from audit.entrypoints.consumer.amqp import MAX_ERROR_HEADER_BYTES, error_header
from audit.entrypoints.consumer.committing import Backoff, Committer, Group
from audit.entrypoints.consumer.messages import QueueMessage, RecordMessages, message_events
from audit.entrypoints.formats import error_document


def body(document: Any) -> bytes:
    return json.dumps(document).encode()


def event(**fields: Any) -> dict[str, Any]:
    return {"action": "user.login", "actor": {"id": "u-1"}, **fields}


@pytest.fixture
def messages(record: RecordEvents) -> RecordMessages:
    return RecordMessages(record, "acme", max_bytes=64 * 1024)


def stored_ids(uow: InMemoryUnitOfWorkFactory) -> list[str]:
    return [json.loads(e.json)["id"] for e in ExportEvents(uow)("acme", EventFilter())]


def settle(messages: RecordMessages, *sent: QueueMessage) -> Any:
    return messages.commit(messages.prepare(sent))


def test_an_event_without_id_takes_the_message_id_and_a_batch_numbers_them() -> None:
    [single] = message_events(body(event()), "m-1", 1000)
    assert single.id == "m-1"
    batch = message_events(body({"events": [event(), event(id="own"), event()]}), "m-2", 1000)
    assert [e.id for e in batch] == ["m-2:0", "own", "m-2:2"]
    [anonymous] = message_events(body(event()), None, 1000)
    assert anonymous.id is None


def test_a_redelivered_message_is_a_duplicate(
    messages: RecordMessages, uow: InMemoryUnitOfWorkFactory
) -> None:
    first = settle(messages, QueueMessage(body(event()), "m-1"))
    again = settle(messages, QueueMessage(body(event()), "m-1"))
    assert (first.created, first.duplicate, again.created, again.duplicate) == (1, 0, 0, 1)
    assert stored_ids(uow) == ["m-1"]


def test_each_bad_message_is_refused_alone_and_the_rest_of_the_group_is_stored(
    messages: RecordMessages, uow: InMemoryUnitOfWorkFactory
) -> None:
    settle(messages, QueueMessage(body(event(id="taken")), None))
    group = [
        QueueMessage(body(event()), "ok-1", delivery_tag=1),
        QueueMessage(b"{not json", "bad-json", delivery_tag=2),
        QueueMessage(body({"action": "x"}), "bad-event", delivery_tag=3),
        QueueMessage(body({"events": [event(), {"actor": {"id": "u"}}]}), "bad-batch"),
        QueueMessage(body({"events": [event(id="a"), event(id="a", outcome="failure")]}), "rep"),
        QueueMessage(body(event(id="taken", outcome="failure")), "conflict"),
        QueueMessage(body({"events": [event()] * 1001}), "too-many"),
        QueueMessage(b"x" * (64 * 1024 + 1), "too-big"),
        QueueMessage(body({"events": [event(), event()], "extra": 1}), "extra"),
        QueueMessage(body({"events": [event(), event()]}), "ok-2", delivery_tag=9),
    ]
    settled = settle(messages, *group)
    assert (settled.messages, settled.created, settled.duplicate) == (10, 3, 0)
    codes = {r.message.message_id: r.error.code for r in settled.rejected}
    assert codes == {
        "bad-json": "malformed_json",
        "bad-event": "validation_error",
        "bad-batch": "validation_error",
        "rep": "validation_error",
        "conflict": "conflict",
        "too-many": "payload_too_large",
        "too-big": "payload_too_large",
        "extra": "validation_error",
    }
    assert stored_ids(uow) == ["taken", "ok-1", "ok-2:0", "ok-2:1"]
    assert VerifyChain(uow)("acme").valid
    bad_batch = next(r for r in settled.rejected if r.message.message_id == "bad-batch")
    details = error_document(bad_batch.error)["error"]["details"]
    assert details == [{"index": 1, "field": "action", "message": "is required"}]


def test_two_messages_of_a_group_with_one_id_and_different_content(
    messages: RecordMessages, uow: InMemoryUnitOfWorkFactory
) -> None:
    settled = settle(
        messages,
        QueueMessage(body(event(id="same")), "first"),
        QueueMessage(body(event(id="same")), "retry"),
        QueueMessage(body(event(id="same", outcome="failure")), "other"),
    )
    assert (settled.created, settled.duplicate) == (1, 1)
    assert [(r.message.message_id, r.error.code) for r in settled.rejected] == [
        ("other", "conflict")
    ]
    assert stored_ids(uow) == ["same"]


class FailingOnce(InMemoryUnitOfWorkFactory):
    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    def __call__(self, write: bool = False) -> Any:
        if write and self.failures:
            self.failures -= 1
            raise StorageUnavailable("disk full")
        return super().__call__(write)


def test_a_group_whose_commit_failed_is_committed_again_whole(clock: Any) -> None:
    storage = FailingOnce()
    messages = RecordMessages(RecordEvents(storage, clock), "acme", max_bytes=1000)
    prepared = messages.prepare([QueueMessage(body(event()), f"m-{i}") for i in range(3)])
    with pytest.raises(StorageUnavailable):
        messages.commit(prepared)
    assert stored_ids(storage) == []
    assert messages.commit(prepared).created == 3
    assert stored_ids(storage) == ["m-0", "m-1", "m-2"]


def test_backoff_grows_with_jitter_up_to_its_cap() -> None:
    backoff = Backoff(first=1.0, cap=8.0)
    delays = [backoff.next() for _ in range(8)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert all(4.0 <= d <= 8.0 for d in delays[4:])
    backoff.reset()
    assert backoff.next() <= 1.0


class AlwaysFailing(InMemoryUnitOfWorkFactory):
    def __call__(self, write: bool = False) -> Any:
        if write:
            raise StorageUnavailable("database locked")
        return super().__call__(write)


def test_the_committer_retries_a_failed_group_and_gives_up_only_when_stopping(
    clock: Any,
) -> None:
    logged: list[dict[str, Any]] = []
    stopping = threading.Event()
    storage = FailingOnce()
    messages = RecordMessages(RecordEvents(storage, clock), "acme", max_bytes=1000)
    committer = Committer(messages, lambda **f: logged.append(f), stopping)
    group = Group(messages.prepare([QueueMessage(body(event()), "m-1", delivery_tag=7)]), 7)
    committer.submit(group)
    [done] = committer.finished(wait=30)
    assert done.settled is not None
    assert done.settled.created == 1
    assert [f["event"] for f in logged] == ["storage_unavailable"]
    assert stored_ids(storage) == ["m-1"]
    committer.close()

    down = RecordMessages(RecordEvents(AlwaysFailing(), clock), "acme", max_bytes=1000)
    committer = Committer(down, lambda **f: None, stopping)
    committer.submit(Group(down.prepare([QueueMessage(body(event()), "m-2")]), 1))
    assert committer.finished(wait=0.3) == []  # still retrying: nothing to ack
    stopping.set()
    [done] = committer.finished(wait=30)
    assert done.settled is None
    committer.close()


@pytest.mark.parametrize(
    "error",
    [
        ValidationFailed([Problem(field="k" * 300_000, message="is not a field")]),
        ValidationFailed(
            [Problem(field="z" * 1000, message="m" * 1000, index=i) for i in range(1000)]
        ),
        MalformedJson("the body is not valid JSON: repeated key " + repr("k" * 300_000)),
    ],
    ids=["a huge field", "many long problems", "a huge message"],
)
def test_a_dead_letters_error_header_fits_well_within_a_frame(error: AuditError) -> None:
    header = error_header(error)
    assert len(header) <= MAX_ERROR_HEADER_BYTES
    document = json.loads(header)["error"]
    assert document["code"] == error.code
    assert document["message"].startswith(error.message[:100])
    if isinstance(error, ValidationFailed):
        assert 1 <= len(document["details"]) <= len(error.problems)
        first = document["details"][0]
        assert first["field"].startswith(error.problems[0].field[:100])
