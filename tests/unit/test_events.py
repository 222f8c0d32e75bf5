"""The event the service returns, and when two sends are the same content (Idempotency)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from audit.domain.events import Event, NewEvent, Party, Source
from audit.domain.validation import parse_event

TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
HEX64 = re.compile(r"^[0-9a-f]{64}$")

RecordOne = Callable[..., Event]


def test_a_minimal_event_is_returned_with_every_key_and_nulls(record_one: RecordOne) -> None:
    doc = record_one("acme", id="evt-1").to_document()
    assert doc == {
        "id": "evt-1",
        "seq": 1,
        "tenant": "acme",
        "action": "document.update",
        "actor": {"id": "u-1", "type": None, "name": None},
        "targets": [],
        "outcome": "success",
        "occurred_at": "2026-11-28T10:00:00.123456Z",
        "received_at": "2026-11-28T10:00:00.123456Z",
        "source": {"ip": None, "user_agent": None},
        "description": None,
        "metadata": {},
        "prev_hash": "0" * 64,
        "hash": doc["hash"],
    }
    assert HEX64.match(doc["hash"])


def test_a_full_event_is_returned_as_sent_with_times_in_utc(record_one: RecordOne) -> None:
    doc = record_one(
        "acme",
        id="evt-7f3a",
        action="document.update",
        actor={"id": "u-1", "type": "user", "name": "Alice"},
        targets=[{"id": "doc-9", "type": "document"}, {"id": "doc-10", "name": "Ten"}],
        outcome="failure",
        occurred_at="2026-11-28T12:00:00.5+02:00",
        source={"ip": "203.0.113.5", "user_agent": "curl/8.5"},
        description="changed the title",
        metadata={"ticket": "OPS-7", "n": [1, 2.5, None]},
    ).to_document()
    assert doc["actor"] == {"id": "u-1", "type": "user", "name": "Alice"}
    assert doc["targets"] == [
        {"id": "doc-9", "type": "document", "name": None},
        {"id": "doc-10", "type": None, "name": "Ten"},
    ]
    assert doc["outcome"] == "failure"
    assert doc["occurred_at"] == "2026-11-28T10:00:00.500000Z"
    assert doc["received_at"] == "2026-11-28T10:00:00.123456Z"
    assert doc["source"] == {"ip": "203.0.113.5", "user_agent": "curl/8.5"}
    assert doc["description"] == "changed the title"
    assert doc["metadata"] == {"ticket": "OPS-7", "n": [1, 2.5, None]}


def test_a_source_with_only_an_ip_has_every_key(record_one: RecordOne) -> None:
    doc = record_one(source={"ip": "2001:db8::1"}).to_document()
    assert doc["source"] == {"ip": "2001:db8::1", "user_agent": None}


def test_returned_times_have_six_digits_and_z_whatever_was_sent(record_one: RecordOne) -> None:
    for sent in ["2026-01-02T03:04:05Z", "0999-12-31T23:00:00-05:30", "2026-01-02T03:04:05.1Z"]:
        doc = record_one(occurred_at=sent).to_document()
        assert TIME.match(doc["occurred_at"]), doc["occurred_at"]
        assert TIME.match(doc["received_at"]), doc["received_at"]
    assert record_one(occurred_at="0999-12-31T23:00:00-05:30").occurred_at.year == 1000


# --- fingerprints: the content that idempotency compares -------------------------------------

BASE: dict[str, Any] = {"action": "document.update", "actor": {"id": "u-1"}}


def with_(**fields: Any) -> dict[str, Any]:
    return {**BASE, **fields}


SAME_CONTENT = [
    pytest.param(BASE, with_(outcome=None), id="outcome absent == null"),
    pytest.param(BASE, with_(outcome="success"), id="outcome absent == default"),
    pytest.param(BASE, with_(targets=None), id="targets absent == null"),
    pytest.param(BASE, with_(targets=[]), id="targets absent == []"),
    pytest.param(BASE, with_(source=None), id="source absent == null"),
    pytest.param(BASE, with_(source={}), id="source absent == {}"),
    pytest.param(BASE, with_(source={"ip": None, "user_agent": None}), id="source of nulls"),
    pytest.param(BASE, with_(description=None), id="description absent == null"),
    pytest.param(BASE, with_(metadata=None), id="metadata absent == null"),
    pytest.param(BASE, with_(metadata={}), id="metadata absent == {}"),
    pytest.param(BASE, with_(occurred_at=None), id="occurred_at absent == null"),
    pytest.param(BASE, with_(id="evt-1"), id="id is not content"),
    pytest.param(
        BASE, with_(actor={"id": "u-1", "type": None, "name": None}), id="actor keys null"
    ),
    pytest.param(
        with_(targets=[{"id": "d"}]),
        with_(targets=[{"id": "d", "type": None, "name": None}]),
        id="target keys null",
    ),
    pytest.param(
        with_(occurred_at="2026-11-28T12:00:00+02:00"),
        with_(occurred_at="2026-11-28T10:00:00Z"),
        id="times compared as instants",
    ),
    pytest.param(
        with_(occurred_at="2026-11-28T10:00:00.000Z"),
        with_(occurred_at="2026-11-28T04:30:00-05:30"),
        id="fraction and offset",
    ),
    pytest.param(
        with_(metadata={"a": 1, "b": {"c": 2, "d": 3}}),
        with_(metadata={"b": {"d": 3, "c": 2}, "a": 1}),
        id="metadata key order",
    ),
]


@pytest.mark.parametrize(("first", "second"), SAME_CONTENT)
def test_equivalent_sends_have_one_fingerprint(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    assert parse_event(first).fingerprint() == parse_event(second).fingerprint()


DIFFERENT_CONTENT = [
    with_(action="document.delete"),
    with_(actor={"id": "u-2"}),
    with_(actor={"id": "u-1", "type": "user"}),
    with_(actor={"id": "u-1", "name": "Alice"}),
    with_(targets=[{"id": "d"}]),
    with_(outcome="failure"),
    with_(outcome="unknown"),
    with_(occurred_at="2026-11-28T10:00:00Z"),
    with_(source={"ip": "203.0.113.5"}),
    with_(source={"user_agent": "curl/8.5"}),
    with_(description="x"),
    with_(description=""),
    with_(metadata={"a": 1}),
]


@pytest.mark.parametrize("other", DIFFERENT_CONTENT)
def test_a_change_of_content_changes_the_fingerprint(other: dict[str, Any]) -> None:
    assert parse_event(BASE).fingerprint() != parse_event(other).fingerprint()


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (with_(occurred_at="2026-11-28T10:00:00Z"), with_(occurred_at="2026-11-28T10:00:00+02:00")),
        (
            with_(occurred_at="2026-11-28T10:00:00Z"),
            with_(occurred_at="2026-11-28T10:00:00.000001Z"),
        ),
        (with_(targets=[{"id": "a"}, {"id": "b"}]), with_(targets=[{"id": "b"}, {"id": "a"}])),
        (with_(metadata={"a": [1, 2]}), with_(metadata={"a": [2, 1]})),
        (with_(metadata={"a": "1"}), with_(metadata={"a": 1})),
        (with_(metadata={"a": None}), with_(metadata={})),
    ],
)
def test_different_instants_and_values_are_different_content(
    first: dict[str, Any], second: dict[str, Any]
) -> None:
    assert parse_event(first).fingerprint() != parse_event(second).fingerprint()


def test_a_fingerprint_compares_times_as_instants_whatever_their_zone() -> None:
    at_plus_two = NewEvent(
        action="login",
        actor=Party(id="u-1"),
        occurred_at=datetime(2026, 11, 28, 12, tzinfo=timezone(timedelta(hours=2))),
    )
    in_utc = attrs.evolve(at_plus_two, occurred_at=datetime(2026, 11, 28, 10, tzinfo=UTC))
    later = attrs.evolve(at_plus_two, occurred_at=datetime(2026, 11, 28, 12, tzinfo=UTC))
    assert at_plus_two.fingerprint() == in_utc.fingerprint()
    assert at_plus_two.fingerprint() != later.fingerprint()


def test_a_fingerprint_treats_explicit_defaults_as_absent() -> None:
    bare = NewEvent(action="login", actor=Party(id="u-1"))
    explicit = NewEvent(
        action="login",
        actor=Party(id="u-1", type=None, name=None),
        id="evt-1",
        targets=(),
        occurred_at=None,
        outcome="success",
        source=Source(ip=None, user_agent=None),
        description=None,
        metadata={},
    )
    assert bare.fingerprint() == explicit.fingerprint()
