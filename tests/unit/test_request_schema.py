"""The request schemas of /openapi.json and the parser say the same thing.

Events (and batches, and token requests) are generated from the document's own JSON
Schemas, checked valid by an OpenAPI 3.1 validator, and must be accepted by the parser;
then one value somewhere in them is replaced, and the schema and the parser must agree
on whether the result is valid. So the rules written twice for speed (the parser, and
the schemas generated from `audit.domain.shapes`) cannot drift apart unnoticed.

What JSON Schema cannot say, the document says in words and the generator keeps to:
metadata's size, depth and integer range, and times that leave years 1-9999 in UTC.
Lone surrogates are not generated: a JSON Schema string is Unicode text.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from audit.domain import rules
from audit.domain.errors import PayloadTooLarge, ValidationFailed
from audit.domain.validation import parse_batch, parse_event, parse_token_request
from audit.entrypoints.http.openapi.schemas import component_schemas

SCHEMAS = component_schemas()
ROOT_URI = "urn:test:components"
ROOT = {"components": {"schemas": SCHEMAS}}
REGISTRY: Registry[Any] = Registry().with_resource(
    ROOT_URI, Resource.from_contents(ROOT, default_specification=DRAFT202012)
)
# Batches and lists kept short: the rules of their items are what is under test.
MAX_GENERATED_ITEMS = 4
# No shrinking: with strings a thousand characters long it took minutes, and the first
# failing example already names the field the two disagree on.
SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)


def validator(name: str) -> Any:
    return OAS31Validator(
        {"$ref": f"{ROOT_URI}#/components/schemas/{name}"},
        registry=REGISTRY,
        format_checker=oas31_format_checker,
    )


def resolve(ref: str) -> dict[str, Any]:
    node: Any = ROOT
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    result: dict[str, Any] = node
    return result


# Unicode text, as JSON Schema means it: no lone surrogates.
_CHARACTERS = st.characters(codec="utf-8")
# Metadata's text: no NUL either (the event's description says so of every string).
_NO_NUL = st.characters(codec="utf-8", exclude_characters="\x00")
_SAFE_INTEGERS = st.integers(-rules.MAX_SAFE_INTEGER, rules.MAX_SAFE_INTEGER)
_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | _SAFE_INTEGERS
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(_NO_NUL, max_size=20)
)
# Any JSON, within metadata's stated limits (small, shallow, integers exactly hashable).
JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(_NO_NUL, max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)


@st.composite
def rfc3339(draw: st.DrawFn) -> str:
    """An RFC 3339 time with an offset, its instant within years 1-9999 in UTC."""
    instant = draw(st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30))).replace(tzinfo=UTC)
    minutes = draw(st.integers(-(24 * 60 - 1), 24 * 60 - 1))
    local = instant + timedelta(minutes=minutes)
    digits = draw(st.integers(0, 9))
    fraction = f".{local.microsecond:06d}{'0' * 3}"[: digits + 1] if digits else ""
    if minutes == 0 and draw(st.booleans()):
        offset = draw(st.sampled_from(["Z", "z"]))
    else:
        sign = "-" if minutes < 0 else "+"
        offset = f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"
    separator = draw(st.sampled_from(["T", "t"]))
    date = f"{local.year:04d}-{local.month:02d}-{local.day:02d}"
    return f"{date}{separator}{local:%H:%M:%S}{fraction}{offset}"


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid by `schema`, for the parts of JSON Schema the document uses."""
    if "$ref" in schema:
        return from_schema(resolve(schema["$ref"]))
    if "oneOf" in schema:
        return st.one_of([from_schema(s) for s in schema["oneOf"]])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of([from_schema({**schema, "type": k}) for k in kind])
    if "enum" in schema:
        return st.sampled_from([v for v in schema["enum"] if (v is None) == (kind == "null")])
    if kind == "null":
        return st.none()
    if kind == "integer":
        return st.integers(schema.get("minimum"), schema.get("maximum"))
    if kind == "array":
        most = min(schema.get("maxItems", MAX_GENERATED_ITEMS), MAX_GENERATED_ITEMS)
        least = schema.get("minItems", 0)
        return st.lists(from_schema(schema["items"]), min_size=least, max_size=most)
    if kind == "object":
        properties = schema.get("properties")
        if properties is None:
            return st.dictionaries(st.text(_NO_NUL, max_size=8), JSON_VALUES, max_size=4)
        required = set(schema.get("required", []))
        return st.fixed_dictionaries(
            {k: from_schema(v) for k, v in properties.items() if k in required},
            optional={k: from_schema(v) for k, v in properties.items() if k not in required},
        )
    assert kind == "string", schema
    return _strings(schema)


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if schema.get("format") == "date-time":
        return rfc3339()
    formats = {s.get("format") for s in schema.get("anyOf", [])}
    if formats == {"ipv4", "ipv6"}:
        return st.ip_addresses().map(str)
    least, most = schema.get("minLength", 0), schema.get("maxLength")
    pattern = schema.get("pattern")
    if pattern is None or pattern == "^[^\\u0000]*$":
        alphabet = _CHARACTERS
        if pattern:
            alphabet = _NO_NUL
        # Now and then a string at its longest, where an off-by-one would show.
        longest = st.nothing() if most is None else st.text(alphabet, min_size=most, max_size=most)
        return st.text(alphabet, min_size=least, max_size=most) | longest
    return st.from_regex(pattern, fullmatch=True).filter(
        lambda s: least <= len(s) and (most is None or len(s) <= most)
    )


def accepted(parse: Any, instance: Any) -> bool:
    try:
        parse(instance)
    except (ValidationFailed, PayloadTooLarge):
        return False
    return True


@SETTINGS
@given(from_schema(SCHEMAS["NewEvent"]))
def test_an_event_valid_by_the_schema_is_accepted(event: dict[str, Any]) -> None:
    validator("NewEvent").validate(event)
    parse_event(event)


@settings(SETTINGS, max_examples=30)
@given(from_schema(SCHEMAS["Batch"]))
def test_a_batch_valid_by_the_schema_is_accepted(batch: dict[str, Any]) -> None:
    validator("Batch").validate(batch)
    parse_batch(batch["events"])


@SETTINGS
@given(from_schema(SCHEMAS["NewToken"]).filter(lambda t: t.get("expires_at") is None or t))
def test_a_token_request_valid_by_the_schema_is_accepted(body: dict[str, Any]) -> None:
    validator("NewToken").validate(body)
    parse_token_request(body)


# Replacements: any JSON, and strings around every length limit of the rules.
_LIMITS = sorted(
    {
        n + d
        for n in (
            rules.ID_MAX,
            rules.PARTY_ID_MAX,
            rules.PARTY_TYPE_MAX,
            rules.DESCRIPTION_MAX,
            rules.USER_AGENT_MAX,
            rules.IP_MAX,
        )
        for d in (0, 1)
    }
)
REPLACEMENTS = (
    JSON_VALUES
    | st.builds(lambda n, c: c * n, st.sampled_from([0, *_LIMITS]), st.sampled_from("a-.é\x00"))
    | st.lists(st.just({"id": "t"}), min_size=rules.MAX_TARGETS, max_size=rules.MAX_TARGETS + 1)
    | rfc3339()
    | st.sampled_from(["2026-02-30T00:00:00Z", "2026-01-01T00:00:00", "::1", "1.2.3.256"])
)


def _places(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key and index in a JSON value, as paths from its root."""
    found = [path]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _places(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _places(value, (*path, i))
    return found


@st.composite
def changed_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one value replaced, one key added, or one key dropped."""
    event = draw(from_schema(SCHEMAS["NewEvent"]))
    path = draw(st.sampled_from([p for p in _places(event) if p]))
    *parents, last = path
    node: Any = event
    for part in parents:
        node = node[part]
    action = draw(st.sampled_from(["replace", "add", "drop"]))
    # Inside metadata the schema says its limits (no NUL, size) only in words: a value put
    # there keeps to them, as JSON_VALUES do, or the two could not be held to agree.
    replacements = JSON_VALUES if path[0] == "metadata" and parents else REPLACEMENTS
    if action == "drop" and isinstance(node, dict):
        del node[last]
    elif action == "add" and isinstance(node, dict):
        key = draw(st.sampled_from(["tenant", "extra", "ID", "id", "type", "ip"]))
        node[key] = draw(replacements)
    else:
        node[last] = draw(replacements)
    return event


def inside_metadata(event: dict[str, Any]) -> bool:
    return isinstance(event.get("metadata"), dict) and bool(event["metadata"])


@SETTINGS
@given(changed_events())
def test_the_schema_and_the_parser_agree_on_changed_events(event: dict[str, Any]) -> None:
    schema_says = validator("NewEvent").is_valid(event)
    parser_says = accepted(parse_event, event)
    assert schema_says == parser_says, (
        f"schema says {'valid' if schema_says else 'invalid'}, parser "
        f"{'accepts' if parser_says else 'refuses'}: {event!r}"[:2000]
    )


def nested(depth: int) -> Any:
    value: Any = 0
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "metadata",
    [
        {"n": rules.MAX_SAFE_INTEGER + 1},
        {"s": "x" * rules.METADATA_MAX_BYTES},
        {"deep": nested(rules.METADATA_MAX_DEPTH + 1)},
    ],
    ids=["integer", "bytes", "depth"],
)
def test_the_metadata_limits_the_schema_states_in_words_are_enforced(
    metadata: dict[str, Any],
) -> None:
    described = SCHEMAS["NewEvent"]["properties"]["metadata"]["description"]
    assert str(rules.METADATA_MAX_BYTES) in described
    assert str(rules.METADATA_MAX_DEPTH) in described
    assert str(rules.MAX_SAFE_INTEGER) in described
    event = {"action": "a", "actor": {"id": "u"}, "metadata": metadata}
    assert validator("NewEvent").is_valid(event)
    assert not accepted(parse_event, event)
