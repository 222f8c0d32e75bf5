"""The hash chain, recomputed here as any client would: SHA-256 over RFC 8785 JSON."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import attrs
import pytest
import rfc8785

from audit.adapters.memory import InMemoryStore
from audit.application.recording import RecordEvents
from audit.domain.chain import GENESIS_HASH, ChainHead, chain_hash, seal
from audit.domain.events import Event, NewEvent, Party, Source, UnsealedEvent

ZEROS = "0" * 64


def expected_hash(prev_hash: str, document: dict[str, Any]) -> str:
    """hex(SHA-256(unhex(prev) || RFC8785(document less hash and prev_hash)))."""
    content = {k: v for k, v in document.items() if k not in ("hash", "prev_hash")}
    return hashlib.sha256(bytes.fromhex(prev_hash) + rfc8785.dumps(content)).hexdigest()


def test_the_first_hash_covers_the_document_as_returned(
    record_one: Callable[..., Event],
) -> None:
    event = record_one(
        "acme",
        id="evt-7f3a",
        actor={"id": "u-1", "type": "user", "name": "Al\u00efce \U0001f600"},
        targets=[{"id": "doc-9", "type": "document"}],
        occurred_at="2026-11-28T12:00:00+02:00",
        source={"ip": "203.0.113.5", "user_agent": "curl/8.5"},
        metadata={"ticket": "OPS-7", "ratio": 0.1, "big": 9007199254740991, "z": {"b": 1, "a": 2}},
    )
    # The document written out by hand, as a client holding the API's answer would see it.
    document = {
        "id": "evt-7f3a",
        "seq": 1,
        "tenant": "acme",
        "action": "document.update",
        "actor": {"id": "u-1", "type": "user", "name": "Al\u00efce \U0001f600"},
        "targets": [{"id": "doc-9", "type": "document", "name": None}],
        "outcome": "success",
        "occurred_at": "2026-11-28T10:00:00.000000Z",
        "received_at": "2026-11-28T10:00:00.123456Z",
        "source": {"ip": "203.0.113.5", "user_agent": "curl/8.5"},
        "description": None,
        "metadata": {
            "ticket": "OPS-7",
            "ratio": 0.1,
            "big": 9007199254740991,
            "z": {"b": 1, "a": 2},
        },
    }
    assert event.prev_hash == ZEROS
    assert event.hash == expected_hash(ZEROS, document)
    assert event.to_document() == {**document, "prev_hash": ZEROS, "hash": event.hash}


def test_each_event_links_to_its_predecessor_across_batches(
    record: RecordEvents, new_event: Callable[..., NewEvent], store: InMemoryStore
) -> None:
    record("acme", [new_event(description="one"), new_event(description="two")])
    record("acme", [new_event(description="three")])
    record("acme", [new_event(description="four"), new_event(description="five")])
    events = [r.event for r in record("acme", [new_event(description=f"{i}") for i in range(3)])]
    assert [e.seq for e in events] == [6, 7, 8]

    docs = [e.to_document() for e in store.logs["acme"]]
    assert [d["seq"] for d in docs] == list(range(1, 9))
    prev = ZEROS
    for doc in docs:
        assert doc["prev_hash"] == prev
        assert doc["hash"] == expected_hash(prev, doc)
        prev = doc["hash"]


def _unsealed(**changes: Any) -> UnsealedEvent:
    base = UnsealedEvent(
        id="evt-1",
        seq=1,
        tenant="acme",
        action="document.update",
        actor=Party(id="u-1"),
        targets=(),
        outcome="success",
        occurred_at=datetime(2026, 11, 28, 10, tzinfo=UTC),
        received_at=datetime(2026, 11, 28, 10, 0, 1, tzinfo=UTC),
        source=Source(),
        description=None,
        metadata={},
    )
    return attrs.evolve(base, **changes)


def test_chain_hash_is_sha256_of_the_previous_hash_and_the_canonical_document() -> None:
    prev = hashlib.sha256(b"anything").hexdigest()
    event = _unsealed(metadata={"\u00e9": 1e21, "a": [1.5, "x"]})
    document = {
        "id": "evt-1",
        "seq": 1,
        "tenant": "acme",
        "action": "document.update",
        "actor": {"id": "u-1", "type": None, "name": None},
        "targets": [],
        "outcome": "success",
        "occurred_at": "2026-11-28T10:00:00.000000Z",
        "received_at": "2026-11-28T10:00:01.000000Z",
        "source": {"ip": None, "user_agent": None},
        "description": None,
        "metadata": {"\u00e9": 1e21, "a": [1.5, "x"]},
    }
    assert chain_hash(prev, event) == expected_hash(prev, document)
    assert chain_hash(ZEROS, event) == expected_hash(ZEROS, document)


@pytest.mark.parametrize(
    "change",
    [
        {"id": "evt-2"},
        {"seq": 2},
        {"tenant": "other"},
        {"action": "document.delete"},
        {"actor": Party(id="u-1", name="Alice")},
        {"targets": (Party(id="doc-9"),)},
        {"outcome": "failure"},
        {"occurred_at": datetime(2026, 11, 28, 10, 0, 0, 1, tzinfo=UTC)},
        {"received_at": datetime(2026, 11, 28, 10, 0, 2, tzinfo=UTC)},
        {"source": Source(ip="203.0.113.5")},
        {"description": ""},
        {"metadata": {"k": None}},
    ],
)
def test_every_field_is_covered_by_the_hash(change: dict[str, Any]) -> None:
    assert chain_hash(ZEROS, _unsealed(**change)) != chain_hash(ZEROS, _unsealed())


def test_the_previous_hash_is_covered_by_the_hash() -> None:
    one = hashlib.sha256(b"1").hexdigest()
    assert chain_hash(one, _unsealed()) != chain_hash(ZEROS, _unsealed())


def test_the_genesis_hash_is_64_zeros_and_an_empty_head_is_seq_0() -> None:
    assert GENESIS_HASH == ZEROS
    assert ChainHead() == ChainHead(seq=0, hash=ZEROS)


def test_seal_links_events_onto_a_given_head_in_order() -> None:
    head = ChainHead(seq=41, hash=hashlib.sha256(b"head").hexdigest())
    received = datetime(2026, 11, 28, 10, 0, 1, tzinfo=UTC)
    occurred = datetime(2026, 11, 28, 9, tzinfo=UTC)
    news = [
        NewEvent(action="document.update", actor=Party(id="u-1"), description="one"),
        NewEvent(action="document.read", actor=Party(id="u-2"), occurred_at=occurred),
        NewEvent(action="document.update", actor=Party(id="u-1"), metadata={"n": 3}),
    ]
    sealed = seal(head, "acme", received, [(f"e{n}", new) for n, new in enumerate(news, 1)])
    assert [(e.id, e.seq, e.tenant) for e in sealed] == [
        ("e1", 42, "acme"),
        ("e2", 43, "acme"),
        ("e3", 44, "acme"),
    ]
    assert [e.occurred_at for e in sealed] == [received, occurred, received]
    assert {e.received_at for e in sealed} == {received}
    assert [e.description for e in sealed] == ["one", None, None]
    assert sealed[2].metadata == {"n": 3}
    prev = head.hash
    for event in sealed:
        assert event.prev_hash == prev
        assert event.hash == expected_hash(prev, event.to_document())
        assert event.hash == chain_hash(prev, event)
        prev = event.hash


def test_seal_of_nothing_is_nothing() -> None:
    assert seal(ChainHead(), "acme", datetime(2026, 1, 1, tzinfo=UTC), []) == []
