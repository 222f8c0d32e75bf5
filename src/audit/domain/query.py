"""What a reader asks for: filters over a tenant's events, and keyset pages."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal

import attrs

from audit.domain.errors import InvalidParameter
from audit.domain.events import Event
from audit.domain.rules import OUTCOMES
from audit.domain.time import parse_rfc3339

FILTER_PARAMETERS = ("actor_id", "target_id", "action", "outcome", "since", "until", "q")

Order = Literal["asc", "desc"]


@attrs.frozen
class EventFilter:
    """Filters combined with AND. `action_prefix` comes from an action ending in `*`."""

    actor_id: str | None = None
    target_id: str | None = None
    action: str | None = None
    action_prefix: str | None = None
    outcome: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    q: str | None = None


def parse_filter(params: dict[str, str | None]) -> EventFilter:
    """Build a filter from text parameters (query string or command line), strictly.

    Keys must be among FILTER_PARAMETERS; the caller rejects any other.
    """
    values: dict[str, str] = {k: v for k, v in params.items() if v is not None}
    for name, value in values.items():
        if name not in FILTER_PARAMETERS:
            raise InvalidParameter(f"unknown parameter {name!r}")
        if value == "":
            raise InvalidParameter(f"{name} must not be empty")
    times = {}
    for name in ("since", "until"):
        if name in values:
            try:
                times[name] = parse_rfc3339(values[name])
            except ValueError as exc:
                raise InvalidParameter(f"{name} {exc}") from None
    outcome = values.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidParameter(f"outcome must be one of {', '.join(OUTCOMES)}")
    action: str | None = values.get("action")
    prefix = None
    if action is not None and action.endswith("*"):
        prefix = action[:-1]
        action = None
    return EventFilter(
        actor_id=values.get("actor_id"),
        target_id=values.get("target_id"),
        action=action,
        action_prefix=prefix,
        outcome=outcome,
        since=times.get("since"),
        until=times.get("until"),
        q=values.get("q"),
    )


@attrs.frozen
class PageRequest:
    limit: int = attrs.field(validator=attrs.validators.ge(1))
    order: Order = "desc"
    after_seq: int | None = None
    through_seq: int | None = None


def encode_cursor(seq: int, order: Order) -> str:
    raw = json.dumps({"s": seq, "o": order}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, order: Order) -> int:
    """The seq a cursor continues after; the cursor must come from a page of the same order."""
    if len(cursor) > 200:
        raise InvalidParameter("cursor is not one this service issued")
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        seq, cursor_order = data["s"], data["o"]
    except (ValueError, KeyError, TypeError, RecursionError, binascii.Error):
        raise InvalidParameter("cursor is not one this service issued") from None
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise InvalidParameter("cursor is not one this service issued")
    if cursor_order != order:
        raise InvalidParameter("cursor was issued for the other order")
    return seq


def _metadata_words(metadata: Mapping[str, Any]) -> list[str]:
    """The keys and scalar values of metadata as text, without JSON's quotes and escapes."""
    words: list[str] = []
    stack: list[Any] = [metadata]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                words.append(key)
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            words.append(value)
        elif value is not None and not isinstance(value, bool):
            words.append(str(value))
    return words


def search_text(event: Event) -> str:
    """What `q` searches, lower-cased: description, metadata as JSON, actor and target names."""
    parts = [event.description or "", event.actor.name or ""]
    parts.extend(_metadata_words(event.metadata))
    parts.extend(t.name or "" for t in event.targets)
    return "\n".join(parts).lower()


def matches(event: Event, where: EventFilter) -> bool:
    """Whether an event passes a filter: the reference semantics every adapter must match."""
    if where.actor_id is not None and event.actor.id != where.actor_id:
        return False
    if where.target_id is not None and all(t.id != where.target_id for t in event.targets):
        return False
    if where.action is not None and event.action != where.action:
        return False
    if where.action_prefix is not None and not event.action.startswith(where.action_prefix):
        return False
    if where.outcome is not None and event.outcome != where.outcome:
        return False
    if where.since is not None and event.occurred_at < where.since:
        return False
    if where.until is not None and event.occurred_at >= where.until:
        return False
    return where.q is None or where.q.lower() in search_text(event)
