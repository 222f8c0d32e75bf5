"""The fast canonicaliser writes the reference's bytes (rfc8785), on hostile inputs too."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.domain.canonical import canonical_json
from audit.domain.chain import ChainHead, chain_hash, seal
from audit.domain.errors import ValidationFailed
from audit.domain.events import unhashed_document
from audit.verify.events import event_hash

# Any Unicode scalar value: surrogates cannot be stored (validation refuses them).
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
SAFE = 2**53 - 1
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-SAFE, SAFE)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(text, inner, max_size=5),
    max_leaves=30,
)


@settings(max_examples=600, deadline=None)
@given(json_values)
def test_same_bytes_as_the_reference(value: Any) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)


def test_the_cases_where_orjson_alone_would_differ() -> None:
    cases: list[Any] = [
        {"\U0001f600": 1, "\uffff": 2, "\ue000": 3, "a": 4},  # UTF-16 order of keys
        [1.0, -0.0, 1e21, 1e-7, 5e-324, 1.2345678901234568e20, 0.1, 123.456],
        {"nested": [{"x": 2.5}]},
        '\x00\x1f\x7f\u2028\u2029\\"/',
        [SAFE, -SAFE, 0, True, False, None],
    ]
    for value in cases:
        assert canonical_json(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(metadata=st.dictionaries(text, json_values, max_size=4), name=text, description=text)
def test_the_ingest_hash_is_the_auditors_hash(
    metadata: dict[str, Any], name: str, description: str
) -> None:
    from datetime import UTC, datetime

    from audit.domain.events import NewEvent, Party, Source

    new = NewEvent(
        action="a.b",
        actor=Party(id="u", name=name or None),
        targets=(Party(id="t", type="doc", name=name),),
        source=Source(ip="::1", user_agent=description),
        description=description,
        metadata=metadata,
    )
    prev = "ab" * 32
    [event] = seal(ChainHead(0, prev), "acme", datetime(2026, 1, 1, tzinfo=UTC), [("e", new)])
    assert event.hash == event_hash(prev, unhashed_document(event))
    assert chain_hash(prev, event) == event.hash


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_record_with_one_free_form_field_gets_the_reference_bytes(value: Any) -> None:
    from audit.domain.canonical import canonical_record

    record = {"id": "e-é", "seq": 7, "tags": [{"name": "\U0001f600"}], "metadata": value}
    assert canonical_record(record) == rfc8785.dumps(record)


@settings(max_examples=300, deadline=None)
@given(metadata=st.dictionaries(text, json_values, max_size=4), name=text)
def test_validation_canonicalises_once_and_the_hashes_are_the_references(
    metadata: dict[str, Any], name: str
) -> None:
    """The metadata bytes validation makes, shared by the fingerprint and the chain hash,
    give the hashes that the reference canonicaliser gives over the whole record."""
    import hashlib
    import json
    from datetime import UTC, datetime

    from audit.domain.events import (
        CanonicalMetadata,
        canonical_metadata,
        hashed_bytes,
    )
    from audit.domain.time import format_time
    from audit.domain.validation import decode_json, parse_event

    body = {
        "action": "a.b",
        "actor": {"id": "u", "name": name or None},
        "targets": [{"id": "t", "name": name or None}],
        "occurred_at": "2026-01-01T10:00:00+02:00",
        "description": name,
        "metadata": metadata,
    }
    try:
        new = parse_event(decode_json(json.dumps(body).encode()))
    except ValidationFailed:
        assert "\\u0000" in json.dumps(body)  # NUL is refused (422), not hashed
        return
    assert isinstance(new.metadata, CanonicalMetadata)
    assert canonical_metadata(new) == rfc8785.dumps(metadata)
    content = {
        "action": new.action,
        "actor": new.actor.to_document(),
        "targets": [t.to_document() for t in new.targets],
        "occurred_at": format_time(new.occurred_at) if new.occurred_at else None,
        "outcome": new.outcome,
        "source": new.source.to_document(),
        "description": new.description,
        "metadata": metadata,
    }
    assert new.fingerprint() == hashlib.sha256(rfc8785.dumps(content)).hexdigest()
    prev = "cd" * 32
    [event] = seal(ChainHead(2, prev), "acme", datetime(2026, 1, 1, tzinfo=UTC), [("e", new)])
    assert event.seq == 3
    assert hashed_bytes(event) == rfc8785.dumps(unhashed_document(event))
    assert event.hash == event_hash(prev, unhashed_document(event))


def test_a_whole_float_beyond_2_53_stays_a_float_and_hashes_as_the_reference() -> None:
    """RFC 8785 writes 2^53 as a float without a fraction; stored as an integer it would be
    one the reference refuses to hash."""
    from datetime import UTC, datetime

    from audit.domain.validation import parse_event

    for number in (9007199254740992.0, -1e20, 1e21, 0.5):
        new = parse_event({"action": "a", "actor": {"id": "u"}, "metadata": {"x": [number]}})
        [stored] = new.metadata["x"]
        assert type(stored) is float
        assert stored == number
        prev = "00" * 32
        [event] = seal(ChainHead(0, prev), "t", datetime(2026, 1, 1, tzinfo=UTC), [("e", new)])
        assert event.hash == event_hash(prev, unhashed_document(event))
