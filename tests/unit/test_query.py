"""Filters and cursors: the reference semantics every storage adapter must match."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from audit.domain.errors import InvalidParameter
from audit.domain.events import Event, Party, Source
from audit.domain.query import (
    EventFilter,
    decode_cursor,
    encode_cursor,
    matches,
    parse_filter,
    read_cursor,
)

T0 = datetime(2026, 11, 28, 10, tzinfo=UTC)


def stored(**fields: Any) -> Event:
    values: dict[str, Any] = {
        "id": "evt-1",
        "seq": 1,
        "tenant": "acme",
        "action": "document.update",
        "actor": Party(id="u-1", type="user", name="Alice Smith"),
        "targets": (Party(id="doc-9", name="Quarterly Report"), Party(id="doc-10")),
        "outcome": "success",
        "occurred_at": T0,
        "received_at": T0,
        "source": Source(ip="203.0.113.5", user_agent="curl/8.5"),
        "description": "Changed the Title",
        "metadata": {"ticket": "OPS-7", "nested": {"note": "Approved by Bob"}},
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }
    values.update(fields)
    return Event(**values)


EVENT = stored()


@pytest.mark.parametrize(
    "where",
    [
        EventFilter(),
        EventFilter(actor_id="u-1"),
        EventFilter(target_id="doc-9"),
        EventFilter(target_id="doc-10"),
        EventFilter(action="document.update"),
        EventFilter(action_prefix="document."),
        EventFilter(action_prefix="doc"),
        EventFilter(action_prefix=""),
        EventFilter(outcome="success"),
        EventFilter(since=T0),
        EventFilter(since=T0 - timedelta(microseconds=1)),
        EventFilter(until=T0 + timedelta(microseconds=1)),
        EventFilter(since=T0, until=T0 + timedelta(seconds=1)),
        EventFilter(since=datetime(2026, 11, 28, 12, tzinfo=timezone(timedelta(hours=2)))),
        EventFilter(q="title"),
        EventFilter(q="TITLE"),
        EventFilter(q="ops-7"),
        EventFilter(q="approved by bob"),
        EventFilter(q="alice"),
        EventFilter(q="SMITH"),
        EventFilter(q="quarterly"),
        EventFilter(actor_id="u-1", target_id="doc-9", action_prefix="document.", q="report"),
    ],
)
def test_a_matching_filter_keeps_the_event(where: EventFilter) -> None:
    assert matches(EVENT, where)


@pytest.mark.parametrize(
    "where",
    [
        EventFilter(actor_id="u-2"),
        EventFilter(actor_id="U-1"),
        EventFilter(actor_id="u-"),
        EventFilter(target_id="doc-1"),
        EventFilter(target_id="u-1"),
        EventFilter(action="document"),
        EventFilter(action="document.update.more"),
        EventFilter(action="Document.update"),
        EventFilter(action_prefix="document.update."),
        EventFilter(action_prefix="user."),
        EventFilter(outcome="failure"),
        EventFilter(outcome="unknown"),
        EventFilter(since=T0 + timedelta(microseconds=1)),
        EventFilter(until=T0),
        EventFilter(until=T0 - timedelta(seconds=1)),
        EventFilter(until=datetime(2026, 11, 28, 12, tzinfo=timezone(timedelta(hours=2)))),
        EventFilter(q="nowhere"),
        EventFilter(q="bob approved"),
        EventFilter(actor_id="u-1", outcome="failure"),
    ],
)
def test_a_filter_that_does_not_match_drops_the_event(where: EventFilter) -> None:
    assert not matches(EVENT, where)


def test_an_event_without_targets_fails_any_target_filter() -> None:
    assert not matches(stored(targets=()), EventFilter(target_id="doc-9"))


def test_q_finds_text_in_each_place_it_searches() -> None:
    bare = stored(
        actor=Party(id="u-1"),
        targets=(Party(id="doc-9"),),
        description=None,
        metadata={},
    )
    where = EventFilter(q="needle")
    assert not matches(bare, where)
    assert matches(stored(description="a NEEDLE here", metadata={}), where)
    assert matches(stored(description=None, metadata={"deep": ["x", {"y": "Needle"}]}), where)
    assert matches(stored(description=None, actor=Party(id="u", name="Mr Needle")), where)
    assert matches(
        stored(description=None, targets=(Party(id="a"), Party(id="b", name="needles"))), where
    )
    assert matches(
        stored(description="caf\u00c9 cr\u00e8me"), EventFilter(q="Caf\u00e9 CR\u00c8ME")
    )


@pytest.mark.parametrize("text", ["C:\\Users\\alice", 'say "hi"', "line one\nline two"])
def test_q_finds_metadata_text_that_json_would_escape(text: str) -> None:
    event = stored(description=None, metadata={"note": text})
    assert matches(event, EventFilter(q=text))


@pytest.mark.parametrize(("q", "metadata"), [("{}", {}), ('":"', {"k": "v"}), ('"', {"k": "v"})])
def test_q_does_not_match_the_json_syntax_around_metadata(q: str, metadata: dict[str, Any]) -> None:
    event = stored(actor=Party(id="u-1"), targets=(), description="plain", metadata=metadata)
    assert not matches(event, EventFilter(q=q))


# --- cursors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("order", ["asc", "desc"])
@pytest.mark.parametrize("seq", [0, 1, 42, 2**53 + 7])
def test_a_cursor_round_trips_in_its_own_order(order: Any, seq: int) -> None:
    cursor = encode_cursor(seq, order)
    assert cursor.isascii()
    assert not set(cursor) & set("=/+")  # URL-safe as it stands
    assert decode_cursor(cursor, order) == seq


@pytest.mark.parametrize(
    "parameters",
    [
        {},
        {"actor_id": "u-1", "q": 'caf\u00e9 "x"'},
        {"action": "document.*", "outcome": "failure", "target_id": "t"},
        {"action": "document.update", "since": "2026-01-01T01:00:00+01:00"},
        {"until": "2026-01-01T00:00:00.5Z"},
    ],
)
def test_a_cursor_carries_its_filter_and_order(parameters: dict[str, str]) -> None:
    where = parse_filter(dict(parameters))
    cursor = read_cursor(encode_cursor(7, "asc", where))
    assert (cursor.after_seq, cursor.order, cursor.where) == (7, "asc", where)


def test_a_cursor_of_one_order_is_refused_in_the_other() -> None:
    with pytest.raises(InvalidParameter):
        decode_cursor(encode_cursor(5, "asc"), "desc")
    with pytest.raises(InvalidParameter):
        decode_cursor(encode_cursor(5, "desc"), "asc")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_of(data: Any) -> str:
    return _b64(json.dumps(data).encode())


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "garbage",
        "!!!!",
        "\u00e9t\u00e9",
        "eyJz",  # a truncated cursor
        _b64(b"\xff\xfe not utf-8"),
        _cursor_of([]),
        _cursor_of("s"),
        _cursor_of(5),
        _cursor_of(None),
        _cursor_of({"s": 5}),
        _cursor_of({"o": "asc"}),
        _cursor_of({"s": "5", "o": "asc"}),
        _cursor_of({"s": 5.0, "o": "asc"}),
        _cursor_of({"s": True, "o": "asc"}),
        _cursor_of({"s": -1, "o": "asc"}),
        _cursor_of({"s": 2**63, "o": "asc"}),  # beyond what a table holds
        _cursor_of({"s": 10**30, "o": "desc"}),
        _cursor_of({"s": None, "o": "asc"}),
        _cursor_of({"s": 5, "o": "ASC"}),
        _cursor_of({"s": 5, "o": ["asc"]}),
        _cursor_of({"s": 5, "o": "asc", "f": None}),
        _cursor_of({"s": 5, "o": "asc", "f": {"actor_id": ""}}),
        _cursor_of({"s": 5, "o": "asc", "f": {"actor_id": "a\u0000"}}),
        _cursor_of({"s": 5, "o": "asc", "f": {"tenant": "other"}}),
        _cursor_of({"s": 5, "o": "asc", "f": {"until": "tomorrow"}}),
        "A" * 9000,
    ],
)
def test_a_cursor_this_service_did_not_issue_is_an_invalid_parameter(cursor: str) -> None:
    with pytest.raises(InvalidParameter):
        decode_cursor(cursor, "asc")


def test_a_deeply_nested_cursor_is_an_invalid_parameter() -> None:
    with pytest.raises(InvalidParameter):
        decode_cursor(_b64(b"[" * 100_000), "asc")


@pytest.mark.parametrize("action", ["a*b", "*doc", "**", "document.**"])
def test_an_action_with_a_star_before_its_end_is_an_invalid_parameter(action: str) -> None:
    with pytest.raises(InvalidParameter, match="nowhere else"):
        parse_filter({"action": action})


@pytest.mark.parametrize(
    ("bound", "kept"),
    [
        ({"since": "2026-11-28T10:00:00.0000005Z"}, False),  # T0 is before the bound
        ({"since": "2026-11-28T09:59:59.9999995Z"}, True),
        ({"until": "2026-11-28T10:00:00.0000005Z"}, True),  # T0 is before the bound
        ({"until": "2026-11-28T10:00:00.000000000Z"}, False),
    ],
)
def test_a_bound_finer_than_a_microsecond_keeps_its_side_of_each_time(
    bound: dict[str, str], kept: bool
) -> None:
    assert matches(EVENT, parse_filter(dict(bound))) is kept
