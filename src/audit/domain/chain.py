"""The per-tenant hash chain: each event's hash covers its content and its predecessor's hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import attrs

from audit.domain.events import Event, UnsealedEvent, hashed_bytes
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
    return hashlib.sha256(bytes.fromhex(prev_hash) + hashed_bytes(event)).hexdigest()


def seal(head: ChainHead, events: Iterable[UnsealedEvent]) -> list[Event]:
    """Link events onto the chain after `head`, in order."""
    sealed = []
    prev = head.hash
    for event in events:
        current = chain_hash(prev, event)
        sealed.append(event.seal(prev, current))
        prev = current
    return sealed
