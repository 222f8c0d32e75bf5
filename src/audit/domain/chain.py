"""The per-tenant hash chain: each event's hash covers its content and its predecessor's hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime

import attrs

from audit.domain.events import Event, NewEvent, UnsealedEvent, hashed_bytes, placed_bytes
from audit.verify.events import GENESIS as GENESIS_HASH

__all__ = ["GENESIS_HASH", "ChainHead", "chain_hash", "seal"]


@attrs.frozen
class ChainHead:
    """The last event of a tenant's log: `seq` 0 and the genesis hash when it is empty."""

    seq: int = 0
    hash: str = GENESIS_HASH


def chain_hash(prev_hash: str, event: UnsealedEvent) -> str:
    """hex(SHA-256(unhex(prev_hash) || JCS(event less its hashes))).

    The same bytes as the auditors' `audit.verify.event_hash`, by the faster canonicaliser.
    """
    return _link(prev_hash, hashed_bytes(event))


def _link(prev_hash: str, content: bytes) -> str:
    return hashlib.sha256(bytes.fromhex(prev_hash) + content).hexdigest()


def seal(
    head: ChainHead, tenant: str, received_at: datetime, events: Iterable[tuple[str, NewEvent]]
) -> list[Event]:
    """Append events, each given as (its id, its content), after `head` in order: each gets
    the next seq and links onto the one before. Each event is made once, with its hashes
    (an unsealed copy first cost about a microsecond an event, bench/README.md)."""
    sealed = []
    prev = head.hash
    seq = head.seq
    for event_id, new in events:
        seq += 1
        current = _link(prev, placed_bytes(new, event_id, seq, tenant, received_at))
        sealed.append(
            Event.placed(
                new,
                event_id=event_id,
                seq=seq,
                tenant=tenant,
                received_at=received_at,
                prev_hash=prev,
                hash_=current,
            )
        )
        prev = current
    return sealed
