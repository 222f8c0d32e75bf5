"""Reading a tenant's log: GetEvent, QueryEvents, ExportEvents and VerifyChain."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import orjson
import pytest

from audit.adapters.memory import InMemoryStore
from audit.application import querying
from audit.application.querying import ExportEvents, GetEvent, QueryEvents, VerifyChain
from audit.application.recording import RecordEvents
from audit.domain.chain import ChainHead
from audit.domain.errors import InvalidParameter, NotFound, StaleCredentials
from audit.domain.events import Event, EventJson, NewEvent
from audit.domain.query import EventFilter, Order, PageRequest, decode_cursor
from audit.domain.time import parse_rfc3339

MakeEvent = Callable[..., NewEvent]


def ids_of(events: list[Event]) -> list[str]:
    return [e.id for e in events]


def json_ids(events: list[EventJson]) -> list[str]:
    return [orjson.loads(e.json)["id"] for e in events]


def read_all_pages(
    query: QueryEvents,
    tenant: str,
    where: EventFilter,
    order: Order,
    limit: int,
    between_pages: Callable[[], None] = lambda: None,
) -> list[Event]:
    """Follow next_cursor until it is None, as a client would."""
    events: list[Event] = []
    cursor: str | None = None
    for _ in range(10_000):
        after = None if cursor is None else decode_cursor(cursor, order)
        page = query(tenant, where, PageRequest(limit=limit, order=order, after_seq=after))
        assert len(page.events) <= limit
        events.extend(page.events)
        cursor = page.next_cursor
        if cursor is None:
            return events
        assert len(page.events) == limit
        between_pages()
    raise AssertionError("paging never ended")


@pytest.fixture
def sample(record: RecordEvents, new_event: MakeEvent) -> list[Event]:
    """Eight events of tenant acme, and one of globex, with varied fields."""
    sent = [
        new_event(
            id="e1",
            action="document.create",
            actor={"id": "u-1", "name": "Alice"},
            targets=[{"id": "doc-1", "name": "Budget"}],
            occurred_at="2026-11-28T09:00:00Z",
        ),
        new_event(
            id="e2",
            action="document.update",
            actor={"id": "u-2", "name": "Bob"},
            targets=[{"id": "doc-1"}, {"id": "doc-2", "name": "Roadmap"}],
            occurred_at="2026-11-28T10:00:00Z",
            description="Renamed the BUDGET file",
        ),
        new_event(
            id="e3",
            action="document.delete",
            actor={"id": "u-1"},
            targets=[{"id": "doc-2"}],
            outcome="failure",
            occurred_at="2026-11-28T12:00:00+01:00",
        ),
        new_event(
            id="e4",
            action="user.login",
            actor={"id": "u-3", "name": "Carol"},
            outcome="unknown",
            occurred_at="2026-11-28T11:00:00.000001Z",
            metadata={"mfa": {"method": "WebAuthn"}},
        ),
        new_event(
            id="e5",
            action="documents.archive",
            actor={"id": "u-2"},
            occurred_at="2026-11-28T12:00:00Z",
        ),
        new_event(
            id="e6",
            action="document",
            actor={"id": "u-10"},
            occurred_at="2026-11-28T08:00:00Z",
            metadata={"ticket": "OPS-7"},
        ),
        new_event(
            id="e7",
            action="user.logout",
            actor={"id": "u-1", "name": "alice"},
            targets=[{"id": "session-1", "name": "Laptop"}],
            occurred_at="2026-11-28T13:00:00Z",
        ),
        new_event(
            id="e8",
            action="document.update",
            actor={"id": "u-3"},
            targets=[{"id": "doc-1"}],
            occurred_at="2026-11-28T10:59:59.999999Z",
        ),
    ]
    record("globex", [new_event(id="g1", actor={"id": "u-1"}, description="budget")])
    return [r.event for r in record("acme", sent)]


# --- GetEvent --------------------------------------------------------------------------------


def test_get_returns_the_tenants_event(sample: list[Event], get_event: GetEvent) -> None:
    assert get_event("acme", "e3") == sample[2]


@pytest.mark.parametrize(("tenant", "event_id"), [("globex", "e1"), ("acme", "g1"), ("acme", "e9")])
def test_get_of_another_tenants_or_no_event_is_not_found(
    sample: list[Event], get_event: GetEvent, tenant: str, event_id: str
) -> None:
    with pytest.raises(NotFound):
        get_event(tenant, event_id)


# --- QueryEvents filters ---------------------------------------------------------------------


def t(text: str) -> datetime:
    return parse_rfc3339(text)


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (EventFilter(), ["e8", "e7", "e6", "e5", "e4", "e3", "e2", "e1"]),
        (EventFilter(actor_id="u-1"), ["e7", "e3", "e1"]),
        (EventFilter(actor_id="u-10"), ["e6"]),
        (EventFilter(target_id="doc-1"), ["e8", "e2", "e1"]),
        (EventFilter(target_id="doc-2"), ["e3", "e2"]),
        (EventFilter(target_id="Budget"), []),
        (EventFilter(action="document.update"), ["e8", "e2"]),
        (EventFilter(action="document"), ["e6"]),
        (EventFilter(action_prefix="document."), ["e8", "e3", "e2", "e1"]),
        (EventFilter(action_prefix="user."), ["e7", "e4"]),
        (EventFilter(outcome="success"), ["e8", "e7", "e6", "e5", "e2", "e1"]),
        (EventFilter(outcome="failure"), ["e3"]),
        (EventFilter(outcome="unknown"), ["e4"]),
        (EventFilter(since=t("2026-11-28T11:00:00Z")), ["e7", "e5", "e4", "e3"]),
        (EventFilter(since=t("2026-11-28T13:00:00+02:00")), ["e7", "e5", "e4", "e3"]),
        (EventFilter(until=t("2026-11-28T10:00:00Z")), ["e6", "e1"]),
        (
            EventFilter(since=t("2026-11-28T10:00:00Z"), until=t("2026-11-28T11:00:00.000001Z")),
            ["e8", "e3", "e2"],
        ),
        (EventFilter(q="budget"), ["e2", "e1"]),
        (EventFilter(q="ALICE"), ["e7", "e1"]),
        (EventFilter(q="roadmap"), ["e2"]),
        (EventFilter(q="laptop"), ["e7"]),
        (EventFilter(q="webauthn"), ["e4"]),
        (EventFilter(q="ops-7"), ["e6"]),
        (EventFilter(q="no such text"), []),
        (EventFilter(actor_id="u-1", action_prefix="document."), ["e3", "e1"]),
        (EventFilter(target_id="doc-1", outcome="success", q="bob"), ["e2"]),
    ],
)
def test_each_filter_selects_its_events_newest_first(
    sample: list[Event], query: QueryEvents, where: EventFilter, expected: list[str]
) -> None:
    page = query("acme", where, PageRequest(limit=50))
    assert ids_of(page.events) == expected
    assert page.next_cursor is None


def test_ascending_order_is_oldest_seq_first(sample: list[Event], query: QueryEvents) -> None:
    page = query("acme", EventFilter(), PageRequest(limit=50, order="asc"))
    assert [e.seq for e in page.events] == [1, 2, 3, 4, 5, 6, 7, 8]


def test_a_tenant_without_events_has_an_empty_page(query: QueryEvents) -> None:
    page = query("nobody", EventFilter(), PageRequest(limit=50))
    assert (page.events, page.next_cursor) == ([], None)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_page_holding_the_last_event_has_no_cursor(
    sample: list[Event], query: QueryEvents, order: Order
) -> None:
    assert query("acme", EventFilter(), PageRequest(limit=8, order=order)).next_cursor is None
    page = query("acme", EventFilter(), PageRequest(limit=7, order=order))
    assert len(page.events) == 7
    assert page.next_cursor is not None


# --- paging ----------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("limit", [1, 2, 3, 7, 8, 9])
def test_following_cursors_gives_every_event_once(
    record: RecordEvents, new_event: MakeEvent, query: QueryEvents, order: Order, limit: int
) -> None:
    record("acme", [new_event(id=f"e{i}") for i in range(1, 24)])
    events = read_all_pages(query, "acme", EventFilter(), order, limit)
    expected = list(range(1, 24)) if order == "asc" else list(range(23, 0, -1))
    assert [e.seq for e in events] == expected


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_following_cursors_of_a_filter_gives_every_match_once(
    record: RecordEvents, new_event: MakeEvent, query: QueryEvents, order: Order
) -> None:
    record(
        "acme",
        [new_event(outcome="failure" if i % 3 == 0 else "success") for i in range(1, 31)],
    )
    events = read_all_pages(query, "acme", EventFilter(outcome="failure"), order, 4)
    expected = [s for s in range(1, 31) if s % 3 == 0]
    assert sorted(e.seq for e in events) == expected
    assert len(events) == len(expected)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_while_events_are_written_misses_and_repeats_nothing(
    record: RecordEvents, new_event: MakeEvent, query: QueryEvents, order: Order
) -> None:
    record("acme", [new_event(description=f"old {i}") for i in range(20)])

    def write_more() -> None:
        record("acme", [new_event(description="new"), new_event(description="new")])

    events = read_all_pages(query, "acme", EventFilter(), order, 3, between_pages=write_more)
    seen = [e.seq for e in events]
    assert len(seen) == len(set(seen))
    assert set(range(1, 21)) <= set(seen)
    assert seen == sorted(seen, reverse=order == "desc")


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_page_as_json_is_the_same_page(
    sample: list[Event], query: QueryEvents, order: Order
) -> None:
    after = None
    for _ in range(len(sample)):
        request = PageRequest(limit=3, order=order, after_seq=after)
        page = query("acme", EventFilter(), request)
        as_json = query.json("acme", EventFilter(), request)
        assert as_json.events == [e.to_json() for e in page.events]
        assert as_json.next_cursor == page.next_cursor
        if page.next_cursor is None:
            return
        after = decode_cursor(page.next_cursor, order)
    raise AssertionError("paging never ended")


def test_a_page_on_an_unchecked_epoch_is_read_only_while_that_epoch_is_current(
    sample: list[Event], query: QueryEvents, store: InMemoryStore
) -> None:
    request = PageRequest(limit=3)
    page = query.json("acme", EventFilter(), request, epoch=store.revocation_epoch)
    assert page == query.json("acme", EventFilter(), request)
    store.revocation_epoch += 1  # a revocation committed since the caller was checked
    with pytest.raises(StaleCredentials):
        query.json("acme", EventFilter(), request, epoch=store.revocation_epoch - 1)
    assert query.json("acme", EventFilter(), request, epoch=store.revocation_epoch) == page


def test_a_cursor_of_the_other_order_is_refused(
    record: RecordEvents, new_event: MakeEvent, query: QueryEvents
) -> None:
    record("acme", [new_event() for _ in range(5)])
    page = query("acme", EventFilter(), PageRequest(limit=2, order="desc"))
    assert page.next_cursor is not None
    assert decode_cursor(page.next_cursor, "desc") == 4
    with pytest.raises(InvalidParameter):
        decode_cursor(page.next_cursor, "asc")
    with pytest.raises(InvalidParameter):
        decode_cursor("not-a-cursor", "desc")


# --- ExportEvents ----------------------------------------------------------------------------


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(querying, "EXPORT_CHUNK", 3)
    return 3


@pytest.mark.parametrize("count", [0, 1, 2, 3, 4, 9, 10, 11])
def test_export_gives_every_event_in_ascending_seq_across_chunks(
    record: RecordEvents,
    new_event: MakeEvent,
    export: ExportEvents,
    small_chunks: int,
    count: int,
) -> None:
    if count:
        record("acme", [new_event(id=f"e{i}") for i in range(1, count + 1)])
    record("globex", [new_event(id="g1")])
    exported = list(export("acme", EventFilter()))
    assert [e.seq for e in exported] == list(range(1, count + 1))
    assert json_ids(exported) == [f"e{i}" for i in range(1, count + 1)]


def test_export_applies_the_filter_across_chunks(
    record: RecordEvents, new_event: MakeEvent, export: ExportEvents, small_chunks: int
) -> None:
    record(
        "acme",
        [
            new_event(id=f"e{i}", action="user.login" if i % 4 == 0 else "document.read")
            for i in range(1, 26)
        ],
    )
    exported = list(export("acme", EventFilter(action_prefix="user.")))
    assert json_ids(exported) == [f"e{i}" for i in range(4, 26, 4)]


def test_export_equals_the_stored_events(
    sample: list[Event], export: ExportEvents, small_chunks: int
) -> None:
    assert list(export("acme", EventFilter())) == [EventJson(e.seq, e.to_json()) for e in sample]


# --- VerifyChain -----------------------------------------------------------------------------


@pytest.fixture
def five(record: RecordEvents, new_event: MakeEvent) -> list[Event]:
    record("globex", [new_event(id="g1")])
    return [r.event for r in record("acme", [new_event(id=f"e{i}") for i in range(1, 6)])]


def test_an_intact_chain_is_valid_with_its_head(five: list[Event], verify: VerifyChain) -> None:
    report = verify("acme")
    assert report.valid is True
    assert report.checked == 5
    assert report.head == ChainHead(seq=5, hash=five[-1].hash)
    assert report.first_invalid_seq is None


def test_an_intact_chain_is_valid_when_checked_in_chunks(
    record: RecordEvents, new_event: MakeEvent, verify: VerifyChain, small_chunks: int
) -> None:
    for _ in range(4):
        record("acme", [new_event() for _ in range(5)])
    report = verify("acme")
    assert (report.valid, report.checked, report.head and report.head.seq) == (True, 20, 20)


def test_an_empty_log_is_valid_with_no_head(verify: VerifyChain) -> None:
    report = verify("nobody")
    assert (report.valid, report.checked, report.head) == (True, 0, None)


def tamper(store: InMemoryStore, position: int, **changes: Any) -> None:
    log = list(store.logs["acme"])
    log[position] = attrs.evolve(log[position], **changes)
    store.logs["acme"] = log


@pytest.mark.parametrize(
    "change",
    [
        {"description": "nothing happened"},
        {"outcome": "failure"},
        {"metadata": {"added": True}},
        {"occurred_at": datetime(2020, 1, 1, tzinfo=UTC)},
        {"tenant": "globex"},
        {"id": "e33"},
    ],
)
@pytest.mark.parametrize("chunk", [1000, 2])
def test_an_edited_event_is_found_at_its_seq(
    five: list[Event],
    store: InMemoryStore,
    verify: VerifyChain,
    monkeypatch: pytest.MonkeyPatch,
    change: dict[str, Any],
    chunk: int,
) -> None:
    monkeypatch.setattr(querying, "EXPORT_CHUNK", chunk)
    tamper(store, 2, **change)
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq, report.checked) == (False, 3, 2)
    assert report.reason
    assert report.head is None


def test_an_edited_hash_is_found_at_its_seq(
    five: list[Event], store: InMemoryStore, verify: VerifyChain
) -> None:
    tamper(store, 3, hash="f" * 64)
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq) == (False, 4)


def test_an_edited_first_event_is_found_at_seq_1(
    five: list[Event], store: InMemoryStore, verify: VerifyChain
) -> None:
    tamper(store, 0, action="document.read")
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq, report.checked) == (False, 1, 0)


def test_an_event_rehashed_after_editing_breaks_the_next_link(
    five: list[Event], store: InMemoryStore, verify: VerifyChain
) -> None:
    from audit.domain.chain import chain_hash

    edited = attrs.evolve(store.logs["acme"][1], description="forged")
    tamper(store, 1, description="forged", hash=chain_hash(edited.prev_hash, edited))
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq, report.checked) == (False, 3, 2)


@pytest.mark.parametrize(("position", "seq"), [(0, 1), (2, 3), (3, 4)])
def test_a_deleted_event_is_found_at_its_seq(
    five: list[Event], store: InMemoryStore, verify: VerifyChain, position: int, seq: int
) -> None:
    log = list(store.logs["acme"])
    del log[position]
    store.logs["acme"] = log
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq) == (False, seq)
    assert report.checked == seq - 1


def test_two_swapped_events_are_found_at_the_first(
    five: list[Event], store: InMemoryStore, verify: VerifyChain
) -> None:
    log = list(store.logs["acme"])
    log[1], log[2] = log[2], log[1]
    store.logs["acme"] = log
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq, report.checked) == (False, 2, 1)


def test_two_events_swapped_and_renumbered_are_found_at_the_first(
    five: list[Event], store: InMemoryStore, verify: VerifyChain
) -> None:
    log = list(store.logs["acme"])
    log[1], log[2] = attrs.evolve(log[2], seq=2), attrs.evolve(log[1], seq=3)
    store.logs["acme"] = log
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq, report.checked) == (False, 2, 1)


def test_the_last_two_events_swapped_are_found(
    five: list[Event], store: InMemoryStore, verify: VerifyChain
) -> None:
    log = list(store.logs["acme"])
    log[3], log[4] = log[4], log[3]
    store.logs["acme"] = log
    report = verify("acme")
    assert (report.valid, report.first_invalid_seq) == (False, 4)


def test_tampering_with_one_tenant_leaves_the_others_valid(
    five: list[Event], store: InMemoryStore, verify: VerifyChain
) -> None:
    tamper(store, 0, description="forged")
    assert verify("acme").valid is False
    assert verify("globex").valid is True
