"""Explicit conversions between table rows and domain entities; each round-trips exactly."""

from __future__ import annotations

import operator
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import orjson

from audit.domain.events import Event, Party, Source
from audit.domain.query import search_text
from audit.domain.time import from_micros, to_micros
from audit.domain.tokens import Scope, Token


def _dump_metadata(metadata: Mapping[str, Any]) -> str:
    # Keys in the order sent; orjson writes the shortest text that reads back as the
    # same double, so every value round-trips exactly.
    return orjson.dumps(dict(metadata)).decode("utf-8")


def _dump_targets(targets: tuple[Party, ...]) -> str:
    return orjson.dumps([t.to_document() for t in targets]).decode("utf-8")


def _load_targets(text: str) -> tuple[Party, ...]:
    return tuple([Party(t["id"], t["type"], t["name"]) for t in orjson.loads(text)])


def event_row(tenant: str, event: Event, fingerprint: str) -> dict[str, Any]:
    """The `events` row of an event of `tenant`."""
    return {
        "tenant": tenant,
        "seq": event.seq,
        "id": event.id,
        "action": event.action,
        "actor_id": event.actor.id,
        "actor_type": event.actor.type,
        "actor_name": event.actor.name,
        "targets": _dump_targets(event.targets),
        "outcome": event.outcome,
        "occurred_at_us": to_micros(event.occurred_at),
        "received_at_us": to_micros(event.received_at),
        "source_ip": event.source.ip,
        "source_user_agent": event.source.user_agent,
        "description": event.description,
        "metadata": _dump_metadata(event.metadata),
        "search_text": search_text(event),
        "prev_hash": event.prev_hash,
        "hash": event.hash,
        "fingerprint": fingerprint,
    }


def event_target_rows(tenant: str, event: Event) -> list[dict[str, Any]]:
    """The `event_targets` rows of an event: one per distinct target id."""
    return [
        {"tenant": tenant, "target_id": target_id, "seq": event.seq}
        for target_id in dict.fromkeys(t.id for t in event.targets)
    ]


# The columns row_event reads, in one call: cheaper than a subscript per column.
_EVENT_FIELDS = operator.itemgetter(
    "id",
    "seq",
    "tenant",
    "action",
    "actor_id",
    "actor_type",
    "actor_name",
    "targets",
    "outcome",
    "occurred_at_us",
    "received_at_us",
    "source_ip",
    "source_user_agent",
    "description",
    "metadata",
    "prev_hash",
    "hash",
)


def row_event(row: Mapping[Any, Any]) -> Event:
    """The Event an `events` row holds."""
    (
        event_id,
        seq,
        tenant,
        action,
        actor_id,
        actor_type,
        actor_name,
        targets,
        outcome,
        occurred_at_us,
        received_at_us,
        source_ip,
        source_user_agent,
        description,
        metadata,
        prev_hash,
        hash_,
    ) = _EVENT_FIELDS(row)
    # Positional arguments, in the order of the classes' fields: this runs for every event
    # read, and keywords made it a sixth slower. tests/unit/test_rows.py checks the order
    # by round-tripping an event whose fields all differ.
    return Event(
        event_id,
        seq,
        tenant,
        action,
        Party(actor_id, actor_type, actor_name),
        _load_targets(targets),
        outcome,
        from_micros(occurred_at_us),
        from_micros(received_at_us),
        Source(source_ip, source_user_agent),
        description,
        orjson.loads(metadata),
        prev_hash,
        hash_,
    )


def _micros_or_none(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _time_or_none(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def token_row(token: Token) -> dict[str, Any]:
    """The `tokens` row of a token; scopes as sorted, space-separated names."""
    return {
        "id": token.id,
        "tenant": token.tenant,
        "name": token.name,
        "scopes": " ".join(sorted(token.scopes)),
        "secret_hash": token.secret_hash,
        "created_at_us": to_micros(token.created_at),
        "expires_at_us": _micros_or_none(token.expires_at),
        "revoked_at_us": _micros_or_none(token.revoked_at),
        "last_used_at_us": _micros_or_none(token.last_used_at),
    }


def row_token(row: Mapping[Any, Any]) -> Token:
    """The Token a `tokens` row holds."""
    return Token(
        id=row["id"],
        tenant=row["tenant"],
        name=row["name"],
        scopes=frozenset(Scope(name) for name in row["scopes"].split()),
        secret_hash=row["secret_hash"],
        created_at=from_micros(row["created_at_us"]),
        expires_at=_time_or_none(row["expires_at_us"]),
        revoked_at=_time_or_none(row["revoked_at_us"]),
        last_used_at=_time_or_none(row["last_used_at_us"]),
    )
