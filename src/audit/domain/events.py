"""Audit events: what a client sends (NewEvent) and what the log holds (Event)."""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping
from datetime import datetime
from typing import Any, NamedTuple

import attrs
import orjson

from audit.domain.canonical import canonical_json, canonical_plain
from audit.domain.time import format_time

# Hashing an event writes its times two or three times (fingerprint, chain), and a group
# shares one received_at.
_time_text = functools.lru_cache(maxsize=4096)(format_time)


@attrs.frozen
class Party:
    """Who acted, or what was acted on: an actor or a target."""

    id: str
    type: str | None = None
    name: str | None = None

    def to_document(self) -> dict[str, Any]:
        return {"id": self.id, "type": self.type, "name": self.name}


@attrs.frozen
class Source:
    """Where the action came from."""

    ip: str | None = None
    user_agent: str | None = None

    def to_document(self) -> dict[str, Any]:
        return {"ip": self.ip, "user_agent": self.user_agent}


@attrs.frozen
class NewEvent:
    """A validated event as a client sent it, before the log gives it a place."""

    action: str
    actor: Party
    id: str | None = None
    targets: tuple[Party, ...] = ()
    occurred_at: datetime | None = None
    outcome: str = "success"
    source: Source = Source()
    description: str | None = None
    metadata: Mapping[str, Any] = attrs.field(factory=dict)

    def fingerprint(self) -> str:
        """A digest of the client's content, for idempotent retries.

        Absent and default values are already normalised by validation, and times are
        instants, so two sends of the same event give the same fingerprint.
        """
        content = {
            "action": self.action,
            "actor": self.actor.to_document(),
            "targets": [t.to_document() for t in self.targets],
            "occurred_at": None if self.occurred_at is None else _time_text(self.occurred_at),
            "outcome": self.outcome,
            "source": self.source.to_document(),
            "description": self.description,
            "metadata": orjson.Fragment(canonical_metadata(self)),
        }
        return hashlib.sha256(canonical_plain(content)).hexdigest()


class CanonicalMetadata(dict[str, Any]):
    """Metadata that knows its RFC 8785 bytes: validation makes them once, and the
    fingerprint and the chain hash share them. Never changed once made, like the event."""

    __slots__ = ("canonical",)

    def __init__(self, value: dict[str, Any], canonical: bytes) -> None:
        super().__init__(value)
        self.canonical = canonical


def canonical_metadata(event: NewEvent | UnsealedEvent) -> bytes:
    """The RFC 8785 bytes of an event's metadata (made here unless validation made them)."""
    metadata = event.metadata
    if isinstance(metadata, CanonicalMetadata):
        return metadata.canonical
    return canonical_json(dict(metadata))


@attrs.frozen
class UnsealedEvent:
    """An event with its place in the log but not its hashes: what the chain hash covers."""

    id: str
    seq: int
    tenant: str
    action: str
    actor: Party
    targets: tuple[Party, ...]
    outcome: str
    occurred_at: datetime
    received_at: datetime
    source: Source
    description: str | None
    metadata: Mapping[str, Any]


@attrs.frozen
class Event(UnsealedEvent):
    """An event in its tenant's log, linked into its chain: never changed once stored."""

    prev_hash: str
    hash: str

    @classmethod
    def placed(
        cls,
        new: NewEvent,
        *,
        event_id: str,
        seq: int,
        tenant: str,
        received_at: datetime,
        prev_hash: str,
        hash_: str,
    ) -> Event:
        """The event the log makes of `new` at `seq`, received at `received_at`, with its
        chain hashes (see `chain.seal`)."""
        return cls(
            id=event_id,
            seq=seq,
            tenant=tenant,
            action=new.action,
            actor=new.actor,
            targets=new.targets,
            outcome=new.outcome,
            occurred_at=new.occurred_at or received_at,
            received_at=received_at,
            source=new.source,
            description=new.description,
            metadata=new.metadata,
            prev_hash=prev_hash,
            hash=hash_,
        )

    def to_document(self) -> dict[str, Any]:
        """The event exactly as the API returns it."""
        doc = unhashed_document(self)
        doc["prev_hash"] = self.prev_hash
        doc["hash"] = self.hash
        return doc

    def to_json(self) -> bytes:
        """to_document() as compact UTF-8 JSON text, its keys in order: what the API sends."""
        return orjson.dumps(self.to_document())


class EventJson(NamedTuple):
    """An event as reads send it: its seq, and its Event.to_json() text.

    What a page or an export needs and no more; storage may write the text straight from
    what it holds, without building the Event.
    """

    seq: int
    json: bytes


def unhashed_document(event: UnsealedEvent) -> dict[str, Any]:
    """The returned shape less `hash` and `prev_hash`: what the chain hash covers."""
    return _event_document(event, dict(event.metadata))


def hashed_bytes(event: UnsealedEvent) -> bytes:
    """The RFC 8785 bytes of unhashed_document(event), the metadata's made only once."""
    return canonical_plain(_event_document(event, orjson.Fragment(canonical_metadata(event))))


def placed_bytes(
    new: NewEvent, event_id: str, seq: int, tenant: str, received_at: datetime
) -> bytes:
    """hashed_bytes of the event that Event.placed would make, without making it first."""
    return canonical_plain(
        _document(
            new,
            event_id,
            seq,
            tenant,
            new.occurred_at or received_at,
            received_at,
            orjson.Fragment(canonical_metadata(new)),
        )
    )


def _event_document(event: UnsealedEvent, metadata: Any) -> dict[str, Any]:
    return _document(
        event, event.id, event.seq, event.tenant, event.occurred_at, event.received_at, metadata
    )


def _document(
    content: NewEvent | UnsealedEvent,
    event_id: str,
    seq: int,
    tenant: str,
    occurred_at: datetime,
    received_at: datetime,
    metadata: Any,
) -> dict[str, Any]:
    return {
        "id": event_id,
        "seq": seq,
        "tenant": tenant,
        "action": content.action,
        "actor": content.actor.to_document(),
        "targets": [t.to_document() for t in content.targets],
        "outcome": content.outcome,
        "occurred_at": _time_text(occurred_at),
        "received_at": _time_text(received_at),
        "source": content.source.to_document(),
        "description": content.description,
        "metadata": metadata,
    }
