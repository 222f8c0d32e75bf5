"""Explicit conversions between table rows and domain entities; each round-trips exactly."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson

from audit.domain.errors import LogDamaged
from audit.domain.events import Event, Party, Source
from audit.domain.query import search_text
from audit.domain.time import format_micros, from_micros, to_micros
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


# The columns an Event is read from, in the order every select of them names them:
# row_event and row_json take the row's values by position, which is cheaper than by name
# (paging._EVENT_COLUMNS is built from this).
EVENT_COLUMNS = (
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


def row_event(row: Sequence[Any]) -> Event:
    """The Event an `events` row holds: its EVENT_COLUMNS, in that order."""
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
    ) = row
    # Positional arguments, in the order of the classes' fields: this runs for every event
    # read, and keywords made it a sixth slower. tests/unit/test_rows.py checks the order
    # by round-tripping an event whose fields all differ.
    try:
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
    except (ValueError, TypeError, KeyError, OverflowError):  # orjson's errors are ValueErrors
        raise LogDamaged(
            f"the stored event of seq {seq} cannot be read: its row was edited outside the service"
        ) from None


def row_json(row: Sequence[Any]) -> bytes:
    """row_event(row).to_json(), written from the row itself.

    targets and metadata go out as the JSON text they are stored as: event_row wrote it
    with orjson from the same values, and orjson reads back the same values and writes
    them as the same text (tests/unit/test_rows.py holds the two to the same bytes). So an
    export or a page builds no Event, Party, datetime or nested value per event.
    """
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
    ) = row
    # The keys of Event.to_document(), in its order.
    return orjson.dumps(
        {
            "id": event_id,
            "seq": seq,
            "tenant": tenant,
            "action": action,
            "actor": {"id": actor_id, "type": actor_type, "name": actor_name},
            "targets": orjson.Fragment(targets),
            "outcome": outcome,
            "occurred_at": format_micros(occurred_at_us),
            "received_at": format_micros(received_at_us),
            "source": {"ip": source_ip, "user_agent": source_user_agent},
            "description": description,
            "metadata": orjson.Fragment(metadata),
            "prev_hash": prev_hash,
            "hash": hash_,
        }
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
