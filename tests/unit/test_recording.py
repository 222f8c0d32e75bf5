"""RecordEvents: appending to a tenant's log, once each, all or nothing."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from audit.adapters.clock import FixedClock
from audit.adapters.memory import InMemoryStore, InMemoryUnitOfWorkFactory
from audit.application.querying import GetEvent, VerifyChain
from audit.application.recording import RecordEvents
from audit.domain import chain, ids, tree
from audit.domain.errors import Conflict, NotFound, ValidationFailed
from audit.domain.events import NewEvent
from audit.domain.validation import decode_json, parse_event

MakeEvent = Callable[..., NewEvent]
NOW = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)


def seqs(store: InMemoryStore, tenant: str = "acme") -> list[int]:
    return [e.seq for e in store.logs.get(tenant, [])]


def test_one_event_is_stored_at_seq_1_with_the_clocks_time(
    record: RecordEvents, new_event: MakeEvent, get_event: GetEvent
) -> None:
    [result] = record("acme", [new_event(id="evt-1", description="hello")])
    assert result.created is True
    assert result.event.id == "evt-1"
    assert result.event.seq == 1
    assert result.event.tenant == "acme"
    assert result.event.received_at == NOW
    assert result.event.occurred_at == NOW  # absent: the time it was received
    assert get_event("acme", "evt-1") == result.event


def test_a_sent_time_is_kept_and_received_at_comes_from_the_clock(
    record: RecordEvents, new_event: MakeEvent, clock: FixedClock
) -> None:
    clock.advance(timedelta(hours=3, microseconds=7))
    [result] = record("acme", [new_event(occurred_at="2020-01-01T00:00:00+01:00")])
    assert result.event.occurred_at == datetime(2019, 12, 31, 23, tzinfo=UTC)
    assert result.event.received_at == NOW + timedelta(hours=3, microseconds=7)


def test_a_batch_gets_consecutive_seqs_in_the_order_sent(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore
) -> None:
    first = record("acme", [new_event(id=f"a{i}") for i in range(3)])
    second = record("acme", [new_event(id=f"b{i}") for i in range(4)])
    assert [(r.event.id, r.event.seq) for r in first + second] == [
        ("a0", 1),
        ("a1", 2),
        ("a2", 3),
        ("b0", 4),
        ("b1", 5),
        ("b2", 6),
        ("b3", 7),
    ]
    assert all(r.created for r in first + second)
    assert seqs(store) == [1, 2, 3, 4, 5, 6, 7]


def test_a_batch_shares_one_received_at(
    record: RecordEvents, new_event: MakeEvent, clock: FixedClock
) -> None:
    first = record("acme", [new_event(), new_event()])
    clock.advance(timedelta(seconds=1))
    second = record("acme", [new_event()])
    assert {r.event.received_at for r in first} == {NOW}
    assert second[0].event.received_at == NOW + timedelta(seconds=1)


# --- generated ids ---------------------------------------------------------------------------


def test_generated_ids_are_unique_uuidv7_strings(
    record: RecordEvents, new_event: MakeEvent
) -> None:
    before = datetime.now(UTC)
    results = record("acme", [new_event() for _ in range(500)])
    after = datetime.now(UTC)
    id_list = [r.event.id for r in results]
    assert len(set(id_list)) == 500
    for event_id in id_list:
        parsed = uuid.UUID(event_id)
        assert str(parsed) == event_id  # the canonical lower-case 8-4-4-4-12 form
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122
        millis = parsed.int >> 80
        stamp = datetime.fromtimestamp(millis / 1000, UTC)
        assert before - timedelta(milliseconds=1) <= stamp <= after


class SteppingTime:
    """Stands in for the `time` module of audit.domain.ids: each call a given millisecond."""

    def __init__(self, millis: Iterator[int]) -> None:
        self._millis = millis

    def time_ns(self) -> int:
        return next(self._millis) * 1_000_000


def test_ids_made_in_later_milliseconds_sort_later(
    record: RecordEvents, new_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ids, "_last", (0, 0))
    monkeypatch.setattr(ids, "time", SteppingTime(iter(range(1_764_324_000_000, 10**13))))
    results = [record("acme", [new_event()])[0] for _ in range(50)]
    results += record("acme", [new_event() for _ in range(50)])
    in_seq_order = [r.event.id for r in results]
    assert in_seq_order == sorted(in_seq_order)
    assert [uuid.UUID(i).int >> 80 for i in in_seq_order[:2]] == [
        1_764_324_000_000,
        1_764_324_000_001,
    ]


def test_ids_made_within_one_millisecond_still_sort_in_seq_order(
    record: RecordEvents, new_event: MakeEvent, monkeypatch: pytest.MonkeyPatch
) -> None:
    same_milli = SimpleNamespace(time_ns=lambda: 1_764_324_000_000 * 1_000_000)
    monkeypatch.setattr(ids, "_last", (0, 0))
    monkeypatch.setattr(ids, "time", same_milli)
    in_seq_order = [r.event.id for r in record("acme", [new_event() for _ in range(200)])]
    assert in_seq_order == sorted(in_seq_order)


# --- idempotency -----------------------------------------------------------------------------


def test_a_retry_returns_the_stored_event_and_stores_nothing(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore, clock: FixedClock
) -> None:
    [first] = record("acme", [new_event(id="evt-1", metadata={"k": "v"})])
    clock.advance(timedelta(minutes=5))
    [again] = record("acme", [new_event(id="evt-1", metadata={"k": "v"})])
    assert again.created is False
    assert again.event == first.event  # same seq, received_at and hashes
    assert seqs(store) == [1]


def test_a_retry_in_another_spelling_is_a_duplicate(
    record: RecordEvents, store: InMemoryStore
) -> None:
    sent = parse_event(
        {
            "id": "evt-1",
            "action": "login",
            "actor": {"id": "u-1"},
            "occurred_at": "2026-11-28T12:00:00+02:00",
        }
    )
    respelled = parse_event(
        {
            "id": "evt-1",
            "action": "login",
            "actor": {"id": "u-1", "type": None, "name": None},
            "targets": [],
            "occurred_at": "2026-11-28T10:00:00.000000Z",
            "outcome": "success",
            "source": {"ip": None},
            "description": None,
            "metadata": {},
        }
    )
    [first] = record("acme", [sent])
    [again] = record("acme", [respelled])
    assert (again.created, again.event) == (False, first.event)
    assert seqs(store) == [1]


def test_a_retry_without_an_id_is_a_new_event(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore
) -> None:
    record("acme", [new_event()])
    [again] = record("acme", [new_event()])
    assert again.created is True
    assert seqs(store) == [1, 2]


def test_ids_are_kept_forever(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore
) -> None:
    [first] = record("acme", [new_event(id="evt-1")])
    for _ in range(20):
        record("acme", [new_event() for _ in range(10)])
    [again] = record("acme", [new_event(id="evt-1")])
    assert (again.created, again.event) == (False, first.event)
    assert len(seqs(store)) == 201


def test_a_batch_mixing_new_and_stored_events_stores_only_the_new_ones(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore
) -> None:
    [stored] = record("acme", [new_event(id="old")])
    results = record("acme", [new_event(id="new-1"), new_event(id="old"), new_event(id="new-2")])
    assert [(r.event.id, r.event.seq, r.created) for r in results] == [
        ("new-1", 2, True),
        ("old", 1, False),
        ("new-2", 3, True),
    ]
    assert results[1].event == stored.event
    assert seqs(store) == [1, 2, 3]


def test_a_stored_id_with_other_content_is_a_conflict_and_stores_nothing(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore, verify: VerifyChain
) -> None:
    [stored] = record("acme", [new_event(id="evt-1", outcome="success")])
    with pytest.raises(Conflict, match="evt-1"):
        record(
            "acme",
            [new_event(id="fresh-1"), new_event(id="evt-1", outcome="failure"), new_event()],
        )
    assert store.logs["acme"] == [stored.event]
    assert ("acme", "fresh-1") not in store.by_id
    # The log goes on from where it was.
    [after] = record("acme", [new_event(id="fresh-1")])
    assert after.event.seq == 2
    assert after.event.prev_hash == stored.event.hash
    assert verify("acme").valid


def test_a_single_conflicting_send_stores_nothing(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore
) -> None:
    record("acme", [new_event(id="evt-1", metadata={"v": 1})])
    with pytest.raises(Conflict):
        record("acme", [new_event(id="evt-1", metadata={"v": 2})])
    assert seqs(store) == [1]
    assert store.logs["acme"][0].metadata == {"v": 1}


def test_the_same_id_twice_in_a_batch_is_one_event_and_a_duplicate(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore
) -> None:
    results = record(
        "acme",
        [
            new_event(id="a"),
            new_event(id="dup", outcome=None),
            new_event(id="dup", outcome="success"),
        ],
    )
    assert [(r.event.id, r.event.seq, r.created) for r in results] == [
        ("a", 1, True),
        ("dup", 2, True),
        ("dup", 2, False),
    ]
    assert results[2].event == results[1].event
    assert seqs(store) == [1, 2]


def test_the_same_id_with_other_content_in_a_batch_is_invalid_at_its_index(
    record: RecordEvents, new_event: MakeEvent, store: InMemoryStore
) -> None:
    batch = [
        new_event(id="a"),
        new_event(id="x", description="first"),
        new_event(id="b"),
        new_event(id="x", description="second"),
    ]
    with pytest.raises(ValidationFailed) as info:
        record("acme", batch)
    assert [(p.index, p.field) for p in info.value.problems] == [(3, "id")]
    assert store.logs == {}
    assert store.by_id == {}


def test_a_batch_is_all_or_nothing_when_it_fails_midway(
    record: RecordEvents,
    new_event: MakeEvent,
    store: InMemoryStore,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    record("acme", [new_event(id="before")])
    calls = []
    real_placed_bytes = chain.placed_bytes

    def fail_on_the_second_event(new: NewEvent, event_id: str, *placement: Any) -> bytes:
        calls.append(event_id)
        if len(calls) == 2:
            raise RuntimeError("failed midway")
        return real_placed_bytes(new, event_id, *placement)

    monkeypatch.setattr(chain, "placed_bytes", fail_on_the_second_event)
    with pytest.raises(RuntimeError, match="midway"):
        record("acme", [new_event(id="lost-1"), new_event(id="lost-2"), new_event(id="lost-3")])
    assert calls == ["lost-1", "lost-2"]
    assert [e.id for e in store.logs["acme"]] == ["before"]
    assert set(store.by_id) == {("acme", "before")}


# --- tenants ---------------------------------------------------------------------------------


def test_tenants_have_separate_logs_seqs_and_chains(
    record: RecordEvents, new_event: MakeEvent, get_event: GetEvent
) -> None:
    a = record("acme", [new_event(id="evt-1"), new_event(id="evt-2")])
    b = record("globex", [new_event(id="evt-1", outcome="failure")])
    assert [r.event.seq for r in a] == [1, 2]
    assert b[0].created is True
    assert b[0].event.seq == 1
    assert b[0].event.tenant == "globex"
    assert b[0].event.prev_hash == "0" * 64
    assert get_event("acme", "evt-1").outcome == "success"
    assert get_event("globex", "evt-1").outcome == "failure"
    with pytest.raises(NotFound):
        get_event("globex", "evt-2")


# --- a stored event never changes ------------------------------------------------------------


def test_changing_the_request_after_recording_does_not_change_the_log(
    record: RecordEvents, get_event: GetEvent, verify: VerifyChain
) -> None:
    body = decode_json(
        b'{"id": "evt-1", "action": "a", "actor": {"id": "u"}, "metadata": {"k": 1}}'
    )
    record("acme", [parse_event(body)])
    body["metadata"]["k"] = 2
    assert get_event("acme", "evt-1").metadata == {"k": 1}
    assert verify("acme").valid


# --- the Merkle tree's frontier ----------------------------------------------------------------


def stored_subtrees(store: InMemoryStore, tenant: str = "acme") -> dict[tuple[int, int], bytes]:
    return {(lv, ix): h for (t, lv, ix), h in store.subtrees.items() if t == tenant}


def subtrees_from_scratch(
    store: InMemoryStore, tenant: str = "acme"
) -> dict[tuple[int, int], bytes]:
    hashes = [e.hash for e in store.logs[tenant]]
    return {(lv, ix): h for lv, ix, h in tree.grow(0, chain.GENESIS_HASH, {}, hashes)}


class CountingReads:
    """A unit of work factory that counts the frontier reads of the units it makes."""

    def __init__(self, uow: InMemoryUnitOfWorkFactory) -> None:
        self._uow = uow
        self.reads = 0

    def __call__(self, write: bool = False) -> Any:
        unit = self._uow(write)
        read = unit.events.subtree_hashes

        def counted(*args: Any) -> Any:
            self.reads += 1
            return read(*args)

        unit.events.subtree_hashes = counted  # type: ignore[method-assign]
        return unit


def test_a_recorder_reads_the_frontier_back_only_after_another_writer_appended(
    uow: InMemoryUnitOfWorkFactory, clock: FixedClock, new_event: MakeEvent, store: InMemoryStore
) -> None:
    counting = CountingReads(uow)
    first, second = RecordEvents(counting, clock), RecordEvents(uow, clock)  # type: ignore[arg-type]
    first("acme", [new_event()])
    first("acme", [new_event(), new_event()])
    first("acme", [new_event()])
    assert counting.reads == 1  # the first append: no frontier kept yet
    second("acme", [new_event() for _ in range(3)])  # the head moved under `first`
    first("acme", [new_event()])
    assert counting.reads == 2
    first("globex", [new_event()])
    assert counting.reads == 3
    assert stored_subtrees(store) == subtrees_from_scratch(store)


def test_interleaved_recorders_keep_the_tree_exact(
    uow: InMemoryUnitOfWorkFactory, clock: FixedClock, new_event: MakeEvent, store: InMemoryStore
) -> None:
    recorders = [RecordEvents(uow, clock), RecordEvents(uow, clock)]
    for n in range(40):
        recorders[n * 7 % 3 % 2]("acme", [new_event() for _ in range(n % 5 + 1)])
        assert stored_subtrees(store) == subtrees_from_scratch(store)
