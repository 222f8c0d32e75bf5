"""The common case of an event, decided without naming fields: validation.py's
shortcut (about a sixth less time validating the bench's events, bench/README.md).

Each check accepts only what validation's parser accepts; anything else, valid or not,
is the parser's, which names every problem (tests/unit/test_validation.py holds the two
to the same results).
"""

from __future__ import annotations

from typing import Any, TypeGuard

import orjson

from audit.domain import rules
from audit.domain.canonical import canonical_json
from audit.domain.events import CanonicalMetadata, NewEvent, Party, Source
from audit.domain.jsonvalues import IPV4_RE, quick_metadata
from audit.domain.time import parse_rfc3339

EMPTY_METADATA = b"{}"


def canonical_copy(value: dict[str, Any], plain: bool) -> CanonicalMetadata | None:
    """Valid metadata's RFC 8785 bytes and a fresh copy in canonical key order (the log
    never shares the caller's objects), or None when the bytes are over the limit."""
    canonical = canonical_json(value, plain)
    if len(canonical) > rules.METADATA_MAX_BYTES:
        return None
    # Numbers stay of the types sent: RFC 8785 writes a whole float as an integer, which
    # would read back as one.
    copy = canonical if plain else orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return CanonicalMetadata(orjson.loads(copy), canonical)


def _plain_text(value: Any, max_len: int, min_len: int = 1) -> TypeGuard[str]:
    """ASCII text without NUL, of min_len to max_len characters."""
    return (
        value.__class__ is str
        and min_len <= len(value) <= max_len
        and value.isascii()
        and "\x00" not in value
    )


def _quick_party(value: Any) -> Party | None:
    if value.__class__ is not dict or not value.keys() <= rules.PARTY_FIELDS:
        return None
    pid = value.get("id")
    kind = value.get("type")
    name = value.get("name")
    if (
        _plain_text(pid, rules.PARTY_ID_MAX)
        and (kind is None or _plain_text(kind, rules.PARTY_TYPE_MAX))
        and (name is None or _plain_text(name, rules.PARTY_NAME_MAX))
    ):
        return Party(id=pid, type=kind, name=name)
    return None


def _quick_source(value: Any) -> Source | None:
    if value is None:
        return Source()
    if value.__class__ is not dict or not value.keys() <= rules.SOURCE_FIELDS:
        return None
    ip = value.get("ip")
    agent = value.get("user_agent")
    if (ip is None or (_plain_text(ip, rules.IP_MAX) and IPV4_RE.fullmatch(ip))) and (
        agent is None or _plain_text(agent, rules.USER_AGENT_MAX, 0)
    ):
        return Source(ip=ip, user_agent=agent)
    return None


def quick_event(obj: Any) -> NewEvent | None:
    """The event, if it is of the common case; None sends it to the parser."""
    if obj.__class__ is not dict or not obj.keys() <= rules.EVENT_FIELDS:
        return None
    get = obj.get
    event_id = get("id")
    action = get("action")
    if event_id is not None and not (event_id.__class__ is str and rules.ID_RE.fullmatch(event_id)):
        return None
    if not (action.__class__ is str and rules.ID_RE.fullmatch(action)):
        return None
    actor = _quick_party(get("actor"))
    if actor is None:
        return None
    targets: tuple[Party, ...] = ()
    raw_targets = get("targets")
    if raw_targets is not None:
        if raw_targets.__class__ is not list or len(raw_targets) > rules.MAX_TARGETS:
            return None
        parties = [_quick_party(item) for item in raw_targets]
        if None in parties:
            return None
        targets = tuple(parties)  # type: ignore[arg-type]
    occurred_at = get("occurred_at")
    if occurred_at is not None:
        if not _plain_text(occurred_at, rules.TIME_MAX):
            return None
        try:
            occurred_at = parse_rfc3339(occurred_at)
        except ValueError:
            return None
    outcome = get("outcome")
    if outcome is None:
        outcome = rules.DEFAULT_OUTCOME
    elif outcome.__class__ is not str or outcome not in rules.OUTCOMES:
        return None
    source = _quick_source(get("source"))
    description = get("description")
    if source is None or not (
        description is None or _plain_text(description, rules.DESCRIPTION_MAX, 0)
    ):
        return None
    raw_metadata = get("metadata")
    if raw_metadata is None:
        metadata: CanonicalMetadata | None = CanonicalMetadata({}, EMPTY_METADATA)
    elif raw_metadata.__class__ is dict and (plain := quick_metadata(raw_metadata)) is not None:
        metadata = canonical_copy(raw_metadata, plain)
    else:
        return None
    if metadata is None:
        return None
    return NewEvent(
        id=event_id,
        action=action,
        actor=actor,
        targets=targets,
        occurred_at=occurred_at,
        outcome=outcome,
        source=source,
        description=description,
        metadata=metadata,
    )
