"""Turning untrusted JSON into NewEvents: every problem named, nothing guessed.

Transport-neutral: the HTTP entrypoint and any future consumer call the same functions.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from audit.domain import rules
from audit.domain.canonical import key_is_plain
from audit.domain.common_event import EMPTY_METADATA, canonical_copy, quick_event
from audit.domain.errors import PayloadTooLarge, Problem, ValidationFailed
from audit.domain.events import CanonicalMetadata, NewEvent, Party, Source
from audit.domain.jsontext import InexactFloat, decode_json
from audit.domain.jsonvalues import IPV4_RE, quick_metadata, string_problem
from audit.domain.time import parse_rfc3339
from audit.domain.tokens import TOKEN_NAME_MAX, TOKEN_NAME_RE, Scope

__all__ = ["decode_json", "parse_batch", "parse_event", "parse_token_request", "string_problem"]


class _Parser:
    def __init__(self, index: int | None) -> None:
        self.index = index
        self.problems: list[Problem] = []

    def problem(self, field: str, message: str) -> None:
        self.problems.append(Problem(field=field, message=message, index=self.index))

    def unknown_fields(self, obj: Mapping[str, Any], allowed: frozenset[str], prefix: str) -> None:
        if obj.keys() <= allowed:
            return
        for key in obj:
            if key not in allowed:
                self.problem(f"{prefix}{key}", "unknown field")

    def string(
        self,
        obj: Mapping[str, Any],
        key: str,
        field: str,
        *,
        required: bool = False,
        max_len: int,
        min_len: int = 1,
    ) -> str | None:
        value = obj.get(key)
        if (
            value.__class__ is str
            and min_len <= len(value) <= max_len
            and value.isascii()
            and "\x00" not in value
        ):
            return value  # the common case, decided before anything else is looked at
        if value is None:
            if required:
                self.problem(field, "is required")
            return None
        if not isinstance(value, str):
            self.problem(field, "must be a string")
            return None
        bad = string_problem(value)
        if bad:
            self.problem(field, bad)
            return None
        if not min_len <= len(value) <= max_len:
            self.problem(field, f"must be {min_len} to {max_len} characters long")
            return None
        return value

    def identifier(self, obj: Mapping[str, Any], key: str, *, required: bool) -> str | None:
        value = self.string(obj, key, key, required=required, max_len=rules.ID_MAX)
        if value is not None and not rules.ID_RE.fullmatch(value):
            self.problem(key, "may contain only A-Z a-z 0-9 . _ : -")
            return None
        return value

    def party(self, value: Any, field: str) -> Party | None:
        if not isinstance(value, dict):
            self.problem(field, "must be an object")
            return None
        self.unknown_fields(value, rules.PARTY_FIELDS, f"{field}.")
        before = len(self.problems)
        pid = self.string(value, "id", f"{field}.id", required=True, max_len=rules.PARTY_ID_MAX)
        ptype = self.string(value, "type", f"{field}.type", max_len=rules.PARTY_TYPE_MAX)
        name = self.string(value, "name", f"{field}.name", max_len=rules.PARTY_NAME_MAX)
        if len(self.problems) != before or pid is None:
            return None
        return Party(id=pid, type=ptype, name=name)

    def targets(self, value: Any) -> tuple[Party, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem("targets", "must be a list")
            return ()
        if len(value) > rules.MAX_TARGETS:
            self.problem("targets", f"must hold at most {rules.MAX_TARGETS} targets")
            return ()
        parsed = [self.party(item, f"targets[{i}]") for i, item in enumerate(value)]
        return tuple(p for p in parsed if p is not None)

    def source(self, value: Any) -> Source:
        if value is None:
            return Source()
        if not isinstance(value, dict):
            self.problem("source", "must be an object")
            return Source()
        self.unknown_fields(value, rules.SOURCE_FIELDS, "source.")
        ip = self.string(value, "ip", "source.ip", max_len=rules.IP_MAX)
        if ip is not None and not IPV4_RE.fullmatch(ip):
            try:
                ipaddress.ip_address(ip)
            except ValueError:
                self.problem("source.ip", "must be an IPv4 or IPv6 address")
                ip = None
        agent = self.string(
            value, "user_agent", "source.user_agent", max_len=rules.USER_AGENT_MAX, min_len=0
        )
        return Source(ip=ip, user_agent=agent)

    def metadata(self, value: Any) -> CanonicalMetadata:
        """Check metadata without recursion, naming every bad value; return a canonical
        copy and its RFC 8785 bytes, made here once for the fingerprint and the chain."""
        if value is None:
            return CanonicalMetadata({}, EMPTY_METADATA)
        if not isinstance(value, dict):
            self.problem("metadata", "must be an object")
            return CanonicalMetadata({}, EMPTY_METADATA)
        quick = quick_metadata(value)
        if quick is not None:
            return self._canonical_metadata(value, quick)
        before = len(self.problems)
        plain = True  # no float, no key above U+FFFF: orjson writes RFC 8785's bytes
        stack: list[tuple[Any, str, int]] = [(value, "metadata", 0)]
        while stack:
            item, field, depth = stack.pop()
            if isinstance(item, str):
                bad = string_problem(item)
                if bad:
                    self.problem(field, bad)
            elif isinstance(item, bool) or item is None:
                pass
            elif isinstance(item, int):
                if abs(item) > rules.MAX_SAFE_INTEGER:
                    self.problem(field, "integers must be within ±(2^53−1) to hash exactly")
            elif isinstance(item, float):
                plain = False
                if not math.isfinite(item):
                    self.problem(field, "numbers must be finite")
                elif isinstance(item, InexactFloat):
                    self.problem(
                        field,
                        "numbers must be ones a 64-bit float writes back as sent: this one"
                        f" would be kept as {float(item)!r}",
                    )

            elif depth >= rules.METADATA_MAX_DEPTH:
                self.problem(field, f"must be nested at most {rules.METADATA_MAX_DEPTH} deep")
            elif isinstance(item, list):
                stack.extend((v, f"{field}[{i}]", depth + 1) for i, v in enumerate(item))
            elif isinstance(item, dict):
                for key, v in item.items():
                    bad = string_problem(key)
                    if bad:
                        self.problem(field, f"keys {bad}")
                    else:
                        plain = plain and key_is_plain(key)
                        stack.append((v, f"{field}.{key}", depth + 1))
        if len(self.problems) != before:
            return CanonicalMetadata({}, EMPTY_METADATA)
        return self._canonical_metadata(value, plain)

    def _canonical_metadata(self, value: dict[str, Any], plain: bool) -> CanonicalMetadata:
        metadata = canonical_copy(value, plain)
        if metadata is None:
            self.problem("metadata", f"must be at most {rules.METADATA_MAX_BYTES} bytes as JSON")
            return CanonicalMetadata({}, EMPTY_METADATA)
        return metadata

    def event(self, obj: Any) -> NewEvent | None:
        if not isinstance(obj, dict):
            self.problem("", "an event must be a JSON object")
            return None
        self.unknown_fields(obj, rules.EVENT_FIELDS, "")
        event_id = self.identifier(obj, "id", required=False)
        action = self.identifier(obj, "action", required=True)
        actor = None
        if obj.get("actor") is None:
            self.problem("actor", "is required")
        else:
            actor = self.party(obj["actor"], "actor")
        targets = self.targets(obj.get("targets"))
        occurred_at = None
        raw_time = self.string(obj, "occurred_at", "occurred_at", max_len=rules.TIME_MAX)
        if raw_time is not None:
            try:
                occurred_at = parse_rfc3339(raw_time)
            except ValueError as exc:
                self.problem("occurred_at", str(exc))
        outcome = obj.get("outcome")
        if outcome is None:
            outcome = rules.DEFAULT_OUTCOME
        elif outcome not in rules.OUTCOMES:
            self.problem("outcome", f"must be one of {', '.join(rules.OUTCOMES)}")
        source = self.source(obj.get("source"))
        description = self.string(
            obj, "description", "description", max_len=rules.DESCRIPTION_MAX, min_len=0
        )
        metadata = self.metadata(obj.get("metadata"))
        if self.problems or action is None or actor is None:
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


BATCH_KEY = "events"


def is_batch(body: Any) -> bool:
    """Whether a request body is a batch: `{"events": [...]}` and nothing else beside it."""
    if not isinstance(body, dict) or BATCH_KEY not in body:
        return False
    extra = sorted(key for key in body if key != BATCH_KEY)
    if extra:
        raise ValidationFailed(
            [
                Problem(field=key, message="unknown field: a batch holds only events")
                for key in extra
            ],
            "the batch is invalid",
        )
    return True


def parse_event(obj: Any) -> NewEvent:
    """Validate one event; raise ValidationFailed naming every problem."""
    event = quick_event(obj)
    if event is not None:
        return event
    parser = _Parser(index=None)
    event = parser.event(obj)
    if event is None:
        raise ValidationFailed(parser.problems)
    return event


def parse_batch(items: Any) -> list[NewEvent]:
    """Validate a batch (a list of 1 to MAX_BATCH events); problems carry their index."""
    if not isinstance(items, list) or not items:
        raise ValidationFailed(
            [Problem(field="events", message="must be a non-empty list of events")]
        )
    if len(items) > rules.MAX_BATCH:
        raise PayloadTooLarge(f"a batch holds at most {rules.MAX_BATCH} events")
    problems: list[Problem] = []
    events: list[NewEvent] = []
    for index, item in enumerate(items):
        event = quick_event(item)
        if event is None:
            parser = _Parser(index=index)
            event = parser.event(item)
            problems.extend(parser.problems)
        if event is not None:
            events.append(event)
    if problems:
        raise ValidationFailed(problems, f"{len(problems)} problem(s) in the batch")
    return events


TOKEN_FIELDS = ("name", "scopes", "expires_at")
_SCOPE_NAMES = tuple(str(scope) for scope in Scope)


def parse_token_request(body: Any) -> tuple[str, frozenset[Scope], datetime | None]:
    """Validate `{"name", "scopes", "expires_at"?}`, naming every problem."""
    invalid = "the token request is invalid"
    if not isinstance(body, dict):
        raise ValidationFailed([Problem(field="", message="must be a JSON object")], invalid)
    problems = [Problem(field=k, message="unknown field") for k in body if k not in TOKEN_FIELDS]

    name = ""
    raw_name = body.get("name")
    if raw_name is None:
        problems.append(Problem(field="name", message="is required"))
    elif not isinstance(raw_name, str):
        problems.append(Problem(field="name", message="must be a string"))
    elif bad := string_problem(raw_name):
        problems.append(Problem(field="name", message=bad))
    elif not 1 <= len(raw_name) <= TOKEN_NAME_MAX:
        problems.append(
            Problem(field="name", message=f"must be 1 to {TOKEN_NAME_MAX} characters long")
        )
    elif not TOKEN_NAME_RE.fullmatch(raw_name):
        problems.append(
            Problem(field="name", message="must not hold control characters or line breaks")
        )
    else:
        name = raw_name

    scopes: set[Scope] = set()
    raw_scopes = body.get("scopes")
    if not isinstance(raw_scopes, list) or not raw_scopes:
        problems.append(Problem(field="scopes", message="must be a non-empty list of scopes"))
    else:
        for i, item in enumerate(raw_scopes):
            if isinstance(item, str) and item in _SCOPE_NAMES:
                scopes.add(Scope(item))
            else:
                problems.append(
                    Problem(
                        field=f"scopes[{i}]", message=f"must be one of {', '.join(_SCOPE_NAMES)}"
                    )
                )

    expires_at = None
    raw_expiry = body.get("expires_at")
    if raw_expiry is not None:
        if not isinstance(raw_expiry, str):
            problems.append(Problem(field="expires_at", message="must be a string"))
        else:
            try:
                expires_at = parse_rfc3339(raw_expiry)
            except ValueError as exc:
                problems.append(Problem(field="expires_at", message=str(exc)))

    if problems:
        raise ValidationFailed(problems, invalid)
    return name, frozenset(scopes), expires_at
