"""Every place that writes the event by hand agrees with its one declaration, `shapes`.

Adding a field to `audit.domain.shapes.EVENT` fails here until the parser's field list,
the domain classes and their documents, the fingerprint, the row mapping and the table
all have it (the OpenAPI schemas and the CSV columns are derived from the declaration).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import attrs
import orjson
import pytest

from audit.adapters.sql import schema
from audit.adapters.sql.rows import EVENT_COLUMNS, event_row, row_json
from audit.domain import rules
from audit.domain.errors import ValidationFailed
from audit.domain.events import Event, NewEvent, Party, Source
from audit.domain.shapes import EVENT, PARTY, SOURCE, Kind, Sent, Shape
from audit.domain.validation import parse_event

# A value for every field a client can send, none of them the default, and another value
# for each (the fingerprint must see every change).
SENT: dict[str, Any] = {
    "id": "evt-1",
    "action": "document.update",
    "actor": {"id": "u-1", "type": "user", "name": "Alice"},
    "targets": [{"id": "doc-1", "type": "document", "name": "Plan"}],
    "occurred_at": "2026-11-28T10:00:00.000001Z",
    "outcome": "failure",
    "source": {"ip": "203.0.113.5", "user_agent": "curl/8.5"},
    "description": "a description",
    "metadata": {"ticket": "OPS-7"},
}
OTHER: dict[str, Any] = {
    "id": "evt-2",
    "action": "document.delete",
    "actor": {"id": "u-2", "type": "user", "name": "Alice"},
    "targets": [],
    "occurred_at": "2026-11-28T10:00:00.000002Z",
    "outcome": "unknown",
    "source": {"ip": "203.0.113.5", "user_agent": "curl/8.6"},
    "description": "another",
    "metadata": {"ticket": "OPS-8"},
}


def stored(new: NewEvent) -> Event:
    received = datetime(2026, 11, 28, 10, 0, 1, tzinfo=UTC)
    return Event.placed(
        new,
        event_id=new.id or "generated",
        seq=7,
        tenant="acme",
        received_at=received,
        prev_hash="0" * 64,
        hash_="f" * 64,
    )


def test_the_samples_cover_every_field_a_client_sends() -> None:
    assert set(SENT) == EVENT.sent_names
    assert set(OTHER) == EVENT.sent_names


@pytest.mark.parametrize(
    ("shape", "fields"),
    [
        (EVENT, rules.EVENT_FIELDS),
        (PARTY, rules.PARTY_FIELDS),
        (SOURCE, rules.SOURCE_FIELDS),
    ],
)
def test_the_parser_takes_the_declared_fields(shape: Shape, fields: frozenset[str]) -> None:
    assert fields == shape.sent_names


def test_the_parser_requires_what_the_declaration_requires() -> None:
    required = {f.name for f in EVENT.fields if f.sent is Sent.REQUIRED}
    for name in EVENT.sent_names:
        without = {k: v for k, v in SENT.items() if k != name}
        if name in required:
            with pytest.raises(ValidationFailed):
                parse_event(without)
        else:
            parse_event(without)


def test_the_domain_classes_hold_the_declared_fields() -> None:
    assert {f.name for f in attrs.fields(NewEvent)} == EVENT.sent_names
    assert tuple(f.name for f in attrs.fields(Event)) == EVENT.names
    assert tuple(f.name for f in attrs.fields(Party)) == PARTY.names
    assert tuple(f.name for f in attrs.fields(Source)) == SOURCE.names


def test_the_returned_document_has_the_declared_keys_in_order() -> None:
    document = stored(parse_event(SENT)).to_document()
    assert tuple(document) == EVENT.names
    assert tuple(document["actor"]) == PARTY.names
    assert [tuple(t) for t in document["targets"]] == [PARTY.names]
    assert tuple(document["source"]) == SOURCE.names
    # What the client sent comes back as sent (times in the service's form).
    for name, value in SENT.items():
        if EVENT.field(name).kind is not Kind.TIME:
            assert document[name] == value, name


@pytest.mark.parametrize("name", sorted(EVENT.sent_names - {"id"}))
def test_the_fingerprint_covers_every_field_a_client_sends(name: str) -> None:
    # The id is the key the fingerprint is kept under, not part of it.
    changed = parse_event({**SENT, name: OTHER[name]})
    assert changed.fingerprint() != parse_event(SENT).fingerprint()


def columns(shape: Shape) -> tuple[str, ...]:
    """The table columns the declaration implies: an object's fields flattened, times
    in microseconds, lists and JSON objects as JSON text."""
    names: list[str] = []
    for field in shape.fields:
        if field.kind is Kind.OBJECT:
            assert field.shape is not None
            names += [f"{field.name}_{inner}" for inner in field.shape.names]
        elif field.kind is Kind.TIME:
            names.append(f"{field.name}_us")
        else:
            names.append(field.name)
    return tuple(names)


def test_the_rows_hold_the_declared_fields() -> None:
    assert columns(EVENT) == EVENT_COLUMNS
    assert set(EVENT_COLUMNS) <= set(schema.events.c.keys())
    event = stored(parse_event(SENT))
    row = event_row("acme", event, "fingerprint")
    written = orjson.loads(row_json([row[name] for name in EVENT_COLUMNS]))
    assert tuple(written) == EVENT.names
    assert written == event.to_document()
