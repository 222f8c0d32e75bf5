"""Rows and entities convert both ways exactly: row_event(event_row(e)) is e.

row_event passes the fields positionally (it runs for every event read), so these events
have a different value in every field: a field out of order cannot go unnoticed.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.adapters.sql.rows import EVENT_COLUMNS, event_row, row_event, row_json
from audit.domain.events import Event, Party, Source

EVERY_FIELD_DIFFERENT = Event(
    id="evt-id",
    seq=42,
    tenant="tenant-x",
    action="document.update",
    actor=Party(id="actor-id", type="actor-type", name="actor-name"),
    targets=(
        Party(id="t-1", type="t-type", name="t-name"),
        Party(id="t-2"),
        Party(id="t-1", name="the same id again"),
    ),
    outcome="failure",
    occurred_at=datetime(2026, 11, 28, 10, 0, 0, 1, tzinfo=UTC),
    received_at=datetime(2026, 11, 28, 10, 0, 1, 2, tzinfo=UTC),
    source=Source(ip="203.0.113.7", user_agent="agent/1.0"),
    description="a description",
    metadata={"ticket": "OPS-1", "attempt": 2, "tags": ["a", "b"], "none": None},
    prev_hash="a" * 64,
    hash="b" * 64,
)


def _selected(event: Event) -> tuple[Any, ...]:
    """The event's row as a select of its EVENT_COLUMNS reads it."""
    row = event_row(event.tenant, event, "fingerprint")
    return tuple(row[name] for name in EVENT_COLUMNS)


def _round_trip(event: Event) -> Event:
    return row_event(_selected(event))


@pytest.mark.parametrize(
    "event",
    [
        EVERY_FIELD_DIFFERENT,
        attrs.evolve(
            EVERY_FIELD_DIFFERENT,
            actor=Party(id="only-an-id"),
            targets=(),
            source=Source(),
            description=None,
            metadata={},
        ),
        attrs.evolve(EVERY_FIELD_DIFFERENT, occurred_at=datetime(1, 1, 1, tzinfo=UTC)),
    ],
    ids=["every-field", "nulls-and-empties", "year-1"],
)
def test_an_event_survives_its_row(event: Event) -> None:
    assert row_json(_selected(event)) == event.to_json()
    back = _round_trip(event)
    assert back == event
    assert back.to_document() == event.to_document()
    for field in attrs.fields(Event):
        assert type(getattr(back, field.name)) is type(getattr(event, field.name)), field.name


words = st.text(st.characters(exclude_categories=["Cs"]), max_size=8)
maybe = st.none() | words
parties = st.builds(Party, id=words, type=maybe, name=maybe)
times = st.datetimes(timezones=st.just(UTC))
# What validation lets into metadata: JSON with integers that hash exactly.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53 - 1), 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | words,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(words, inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=200, deadline=None)
@given(
    st.builds(
        Event,
        id=words,
        seq=st.integers(1, 2**62),
        tenant=words,
        action=words,
        actor=parties,
        targets=st.lists(parties, max_size=3).map(tuple),
        outcome=words,
        occurred_at=times,
        received_at=times,
        source=st.builds(Source, ip=maybe, user_agent=maybe),
        description=maybe,
        metadata=st.dictionaries(words, json_values),
        prev_hash=words,
        hash=words,
    )
)
def test_any_event_survives_its_row(event: Event) -> None:
    assert _round_trip(event) == event
    # The text a page or an export sends, written from the row, is the Event's own.
    assert row_json(_selected(event)) == event.to_json()
