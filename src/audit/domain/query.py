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
from audit.domain.time import format_time, parse_rfc3339

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
                times[name] = parse_rfc3339(values[name], round_up=True)
            except ValueError as exc:
                raise InvalidParameter(f"{name} {exc}") from None
    outcome = values.get("outcome")
    if outcome is not None and outcome not in OUTCOMES:
        raise InvalidParameter(f"outcome must be one of {', '.join(OUTCOMES)}")
    action: str | None = values.get("action")
    prefix = None
    if action is not None and "*" in action[:-1]:
        # No action holds a `*`: a filter with one elsewhere could never match.
        raise InvalidParameter("action may end in * (a prefix, as document.*), nowhere else")
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


# A cursor carries its listing's filters, so its length follows theirs; this bounds the
# work a forged one can ask for.
CURSOR_MAX_CHARS = 8192
_NOT_ISSUED = "cursor is not one this service issued"
# The largest seq a table can hold (a signed 64-bit integer on both engines).
_SEQ_MAX = 2**63 - 1


def filter_parameters(where: EventFilter) -> dict[str, str]:
    """The query parameters that parse_filter reads back as `where`."""
    values = {
        "actor_id": where.actor_id,
        "target_id": where.target_id,
        "action": where.action if where.action_prefix is None else where.action_prefix + "*",
        "outcome": where.outcome,
        "since": None if where.since is None else format_time(where.since),
        "until": None if where.until is None else format_time(where.until),
        "q": where.q,
    }
    return {name: value for name, value in values.items() if value is not None}


@attrs.frozen
class Cursor:
    """Where a listing stopped: after `after_seq`, in `order`, of the events matching `where`."""

    after_seq: int
    order: Order
    where: EventFilter = EventFilter()


def encode_cursor(seq: int, order: Order, where: EventFilter | None = None) -> str:
    data: dict[str, Any] = {"s": seq, "o": order}
    parameters = {} if where is None else filter_parameters(where)
    if parameters:
        data["f"] = parameters
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def read_cursor(cursor: str) -> Cursor:
    """The listing a cursor continues, or InvalidParameter if this service did not issue it.

    Not signed: a forged cursor asks for no more than query parameters could, and its
    filters go through the same checks.
    """
    if len(cursor) > CURSOR_MAX_CHARS:
        raise InvalidParameter(_NOT_ISSUED)
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        seq, order = data["s"], data["o"]
        parameters = data.get("f", {})
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError, binascii.Error):
        raise InvalidParameter(_NOT_ISSUED) from None
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= _SEQ_MAX:
        raise InvalidParameter(_NOT_ISSUED)
    if order not in ("asc", "desc"):
        raise InvalidParameter(_NOT_ISSUED)
    if not isinstance(parameters, dict) or not all(
        isinstance(value, str) and value and "\x00" not in value for value in parameters.values()
    ):
        raise InvalidParameter(_NOT_ISSUED)
    try:
        where = parse_filter(parameters)
    except InvalidParameter:
        raise InvalidParameter(_NOT_ISSUED) from None
    return Cursor(after_seq=seq, order=order, where=where)


def decode_cursor(cursor: str, order: Order) -> int:
    """The seq a cursor continues after; the cursor must come from a page of the same order."""
    read = read_cursor(cursor)
    if read.order != order:
        raise InvalidParameter("cursor was issued for the other order")
    return read.after_seq


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
