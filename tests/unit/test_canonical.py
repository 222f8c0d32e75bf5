"""The fast canonicaliser writes the reference's bytes (rfc8785), on hostile inputs too."""

from __future__ import annotations

from typing import Any

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.domain.canonical import canonical_json
from audit.domain.chain import chain_hash
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

    from audit.domain.events import NewEvent, Party, Source, UnsealedEvent

    new = NewEvent(
        action="a.b",
        actor=Party(id="u", name=name or None),
        targets=(Party(id="t", type="doc", name=name),),
        source=Source(ip="::1", user_agent=description),
        description=description,
        metadata=metadata,
    )
    event = UnsealedEvent.place(
        new, event_id="e", seq=1, tenant="acme", received_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    prev = "ab" * 32
    assert chain_hash(prev, event) == event_hash(prev, unhashed_document(event))


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_a_record_with_one_free_form_field_gets_the_reference_bytes(value: Any) -> None:
    from audit.domain.canonical import canonical_record

    record = {"id": "e-é", "seq": 7, "tags": [{"name": "\U0001f600"}], "metadata": value}
    assert canonical_record(record) == rfc8785.dumps(record)
