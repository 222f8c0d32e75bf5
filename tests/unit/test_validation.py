"""The rules of "The event a client sends": every field accepted and refused as API.md says."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.domain import rules
from audit.domain.common_event import quick_event
from audit.domain.errors import AuditError, MalformedJson, PayloadTooLarge, ValidationFailed
from audit.domain.events import Party, Source
from audit.domain.validation import _Parser, decode_json, parse_batch, parse_event

MAX_SAFE = 2**53 - 1


def event(**fields: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {"action": "document.update", "actor": {"id": "u-1"}}
    raw.update(fields)
    return raw


def without(key: str) -> dict[str, Any]:
    raw = event()
    del raw[key]
    return raw


def problem_fields(obj: Any) -> set[str]:
    """The dotted paths named by the ValidationFailed that `obj` must raise."""
    with pytest.raises(ValidationFailed) as info:
        parse_event(obj)
    assert all(p.index is None for p in info.value.problems)
    assert all(p.message for p in info.value.problems)
    return {p.field for p in info.value.problems}


# --- id and action -------------------------------------------------------------------------

GOOD_IDENTIFIERS = [
    "a",
    "A" * 128,
    "evt-7f3a",
    "Z.y_x:9-0",
    "0190d8c4-8a2b-7c3e-9f00-0123456789ab",
]
BAD_IDENTIFIERS = [
    "",
    "a" * 129,
    "has space",
    "slash/ed",
    "caf\u00e9",
    "tab\there",
    "star*",
    "a,b",
    7,
    ["a"],
    {"id": "a"},
    True,
]


@pytest.mark.parametrize("value", GOOD_IDENTIFIERS)
def test_an_id_of_1_to_128_allowed_characters_is_kept(value: str) -> None:
    assert parse_event(event(id=value)).id == value


@pytest.mark.parametrize("value", BAD_IDENTIFIERS)
def test_an_id_outside_the_pattern_is_refused(value: Any) -> None:
    assert problem_fields(event(id=value)) == {"id"}


@pytest.mark.parametrize("raw", [event(), event(id=None)])
def test_an_absent_or_null_id_is_left_to_the_service(raw: dict[str, Any]) -> None:
    assert parse_event(raw).id is None


@pytest.mark.parametrize("value", GOOD_IDENTIFIERS)
def test_an_action_of_1_to_128_allowed_characters_is_kept(value: str) -> None:
    assert parse_event(event(action=value)).action == value


@pytest.mark.parametrize("value", BAD_IDENTIFIERS)
def test_an_action_outside_the_pattern_is_refused(value: Any) -> None:
    assert problem_fields(event(action=value)) == {"action"}


@pytest.mark.parametrize("raw", [without("action"), event(action=None)])
def test_the_action_is_required(raw: dict[str, Any]) -> None:
    assert problem_fields(raw) == {"action"}


@pytest.mark.parametrize("key", ["id", "action"])
def test_a_trailing_newline_is_not_an_allowed_character(key: str) -> None:
    assert problem_fields(event(**{key: "document.update\n"})) == {key}


# --- actor and targets ---------------------------------------------------------------------


def test_an_actor_with_type_and_name_is_kept() -> None:
    raw = event(actor={"id": "u-1", "type": "user", "name": "Alice"})
    assert parse_event(raw).actor == Party(id="u-1", type="user", name="Alice")


def test_an_actor_id_is_any_text_of_1_to_256_characters() -> None:
    assert parse_event(event(actor={"id": "alice@example.com (admin)"})).actor.id == (
        "alice@example.com (admin)"
    )
    assert parse_event(event(actor={"id": "x" * 256})).actor.id == "x" * 256


@pytest.mark.parametrize(
    ("actor", "field"),
    [
        ({"id": "x" * 257}, "actor.id"),
        ({"id": ""}, "actor.id"),
        ({}, "actor.id"),
        ({"id": None}, "actor.id"),
        ({"id": 42}, "actor.id"),
        ({"type": "user"}, "actor.id"),
        ({"id": "u", "type": 1}, "actor.type"),
        ({"id": "u", "name": ["Alice"]}, "actor.name"),
        ({"id": "u", "email": "a@example.com"}, "actor.email"),
        ("u-1", "actor"),
        (["u-1"], "actor"),
        (7, "actor"),
    ],
)
def test_a_bad_actor_is_refused_at_its_path(actor: Any, field: str) -> None:
    assert problem_fields(event(actor=actor)) == {field}


@pytest.mark.parametrize("raw", [without("actor"), event(actor=None)])
def test_the_actor_is_required(raw: dict[str, Any]) -> None:
    assert problem_fields(raw) == {"actor"}


@pytest.mark.parametrize("raw", [event(), event(targets=None), event(targets=[])])
def test_no_targets_is_an_empty_tuple(raw: dict[str, Any]) -> None:
    assert parse_event(raw).targets == ()


def test_targets_are_kept_in_order() -> None:
    raw = event(targets=[{"id": "doc-9", "type": "document"}, {"id": "doc-1", "name": "One"}])
    assert parse_event(raw).targets == (
        Party(id="doc-9", type="document"),
        Party(id="doc-1", name="One"),
    )


def test_32_targets_are_accepted() -> None:
    raw = event(targets=[{"id": f"t-{i}"} for i in range(32)])
    assert len(parse_event(raw).targets) == 32


def test_33_targets_are_refused() -> None:
    raw = event(targets=[{"id": f"t-{i}"} for i in range(33)])
    assert problem_fields(raw) == {"targets"}


@pytest.mark.parametrize(
    ("targets", "fields"),
    [
        ({"id": "doc-9"}, {"targets"}),
        ("doc-9", {"targets"}),
        ([{"id": "a"}, "doc-9"], {"targets[1]"}),
        ([{"type": "document"}], {"targets[0].id"}),
        ([{"id": "x" * 257}], {"targets[0].id"}),
        ([{"id": "a"}, {"id": "b"}, {"id": "c", "owner": "u"}], {"targets[2].owner"}),
        ([{"id": "a", "name": 1}, {"id": ""}], {"targets[0].name", "targets[1].id"}),
    ],
)
def test_bad_targets_are_refused_at_their_paths(targets: Any, fields: set[str]) -> None:
    assert problem_fields(event(targets=targets)) == fields


# --- occurred_at -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-28T10:00:00Z", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28T12:00:00+02:00", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28T00:30:00-09:30", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28t10:00:00z", datetime(2026, 11, 28, 10, tzinfo=UTC)),
        ("2026-11-28T10:00:00.5Z", datetime(2026, 11, 28, 10, 0, 0, 500000, tzinfo=UTC)),
        ("2026-11-28T10:00:00.123456Z", datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-28T10:00:00.123456789Z", datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2024-02-29T23:59:59+00:00", datetime(2024, 2, 29, 23, 59, 59, tzinfo=UTC)),
        ("0999-01-01T00:00:00Z", datetime(999, 1, 1, tzinfo=UTC)),
    ],
)
def test_an_rfc3339_time_with_an_offset_is_an_instant(text: str, expected: datetime) -> None:
    assert parse_event(event(occurred_at=text)).occurred_at == expected


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T10:00:00",  # no offset: ambiguous
        "2026-11-28T10:00:00.123",
        "2026-11-28",
        "10:00:00Z",
        "2026-11-28T10:00:00+0200",
        "2026-11-28T10:00:00+02",
        "2026-11-28T10:00Z",
        "2026-11-28T10:00:00.Z",
        "2026-02-30T10:00:00Z",
        "2025-02-29T10:00:00Z",
        "2026-13-01T10:00:00Z",
        "2026-00-10T10:00:00Z",
        "2026-11-28T24:00:00Z",
        "2026-11-28T10:60:00Z",
        "2026-11-28T10:00:00+24:00",
        "0000-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
        "yesterday",
        "",
        "2026-11-28T10:00:00Z trailing",
        1764324000,
    ],
)
def test_a_time_that_is_not_rfc3339_with_an_offset_is_refused(text: Any) -> None:
    assert problem_fields(event(occurred_at=text)) == {"occurred_at"}


@pytest.mark.parametrize("raw", [event(), event(occurred_at=None)])
def test_an_absent_time_is_left_to_the_service(raw: dict[str, Any]) -> None:
    assert parse_event(raw).occurred_at is None


# --- outcome ---------------------------------------------------------------------------------


@pytest.mark.parametrize("outcome", ["success", "failure", "unknown"])
def test_each_outcome_is_accepted(outcome: str) -> None:
    assert parse_event(event(outcome=outcome)).outcome == outcome


@pytest.mark.parametrize("raw", [event(), event(outcome=None)])
def test_the_outcome_defaults_to_success(raw: dict[str, Any]) -> None:
    assert parse_event(raw).outcome == "success"


@pytest.mark.parametrize("outcome", ["SUCCESS", "ok", "failed", "", 1, True, ["success"]])
def test_any_other_outcome_is_refused(outcome: Any) -> None:
    assert problem_fields(event(outcome=outcome)) == {"outcome"}


# --- source ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [event(), event(source=None), event(source={})])
def test_no_source_is_a_source_of_nulls(raw: dict[str, Any]) -> None:
    assert parse_event(raw).source == Source(ip=None, user_agent=None)


@pytest.mark.parametrize(
    "ip",
    ["203.0.113.5", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::1", "::", "fe80::1:2:3:4"],
)
def test_an_ipv4_or_ipv6_address_is_kept(ip: str) -> None:
    assert parse_event(event(source={"ip": ip})).source.ip == ip


@pytest.mark.parametrize(
    "ip",
    [
        "256.0.0.1",
        "1.2.3",
        "1.2.3.4.5",
        "01.2.3.4",
        " 1.2.3.4",
        "1.2.3.4/32",
        "2001:db8::g",
        "2001:db8:::1",
        "1:2:3:4:5:6:7:8:9",
        "example.com",
        "localhost",
        "",
        16909060,
    ],
)
def test_anything_but_an_ip_address_is_refused(ip: Any) -> None:
    assert problem_fields(event(source={"ip": ip})) == {"source.ip"}


def test_a_user_agent_is_kept_up_to_1024_characters() -> None:
    raw = event(source={"ip": "203.0.113.5", "user_agent": "u" * 1024})
    assert parse_event(raw).source == Source(ip="203.0.113.5", user_agent="u" * 1024)


@pytest.mark.parametrize(
    ("source", "field"),
    [
        ({"user_agent": "u" * 1025}, "source.user_agent"),
        ({"user_agent": 8}, "source.user_agent"),
        ({"ip": "203.0.113.5", "port": 443}, "source.port"),
        ("203.0.113.5", "source"),
        (["203.0.113.5"], "source"),
    ],
)
def test_a_bad_source_is_refused_at_its_path(source: Any, field: str) -> None:
    assert problem_fields(event(source=source)) == {field}


# --- description -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["", "x", "x" * 1024, "\u00e9" * 1024, "\U0001f600" * 1024])
def test_a_description_of_at_most_1024_characters_is_kept(text: str) -> None:
    assert parse_event(event(description=text)).description == text


@pytest.mark.parametrize("text", ["x" * 1025, "\U0001f600" * 1025, 5, {"text": "x"}])
def test_a_longer_or_non_text_description_is_refused(text: Any) -> None:
    assert problem_fields(event(description=text)) == {"description"}


# --- metadata --------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [event(), event(metadata=None), event(metadata={})])
def test_no_metadata_is_an_empty_object(raw: dict[str, Any]) -> None:
    assert dict(parse_event(raw).metadata) == {}


def test_metadata_of_any_json_shape_is_kept() -> None:
    metadata = {"ticket": "OPS-7", "n": [1, 2.5, True, None, {"deep": {"er": "x"}}], "e": {}}
    assert parse_event(event(metadata=metadata)).metadata == metadata


@pytest.mark.parametrize("value", ["[]", '"text"', "1", "true"])
def test_metadata_that_is_not_an_object_is_refused(value: str) -> None:
    assert problem_fields(event(metadata=json.loads(value))) == {"metadata"}


def _metadata_of_size(size: int, filler: str = "x") -> dict[str, str]:
    # {"k":"..."} is 8 bytes around the value; `filler` may be several bytes in UTF-8.
    width = len(filler.encode("utf-8"))
    body = size - 8
    value = filler * (body // width) + "x" * (body % width)
    metadata = {"k": value}
    assert len(json.dumps(metadata, separators=(",", ":"), ensure_ascii=False).encode()) == size
    return metadata


@pytest.mark.parametrize("filler", ["x", "\u00e9", "\U0001f600"])
def test_metadata_of_exactly_16_kib_is_accepted(filler: str) -> None:
    metadata = _metadata_of_size(16 * 1024, filler)
    assert parse_event(event(metadata=metadata)).metadata == metadata


@pytest.mark.parametrize("filler", ["x", "\u00e9", "\U0001f600"])
def test_metadata_one_byte_over_16_kib_is_refused(filler: str) -> None:
    assert problem_fields(event(metadata=_metadata_of_size(16 * 1024 + 1, filler))) == {"metadata"}


@pytest.mark.parametrize("number", [MAX_SAFE, -MAX_SAFE, 0, -1, 1.5, -2.5e-300, 1e308])
def test_numbers_that_canonicalise_exactly_are_accepted(number: float) -> None:
    assert parse_event(event(metadata={"n": number})).metadata == {"n": number}


@pytest.mark.parametrize("number", [MAX_SAFE + 1, -MAX_SAFE - 1, 10**30, -(10**30)])
def test_integers_beyond_2_to_the_53_minus_1_are_refused(number: int) -> None:
    assert problem_fields(event(metadata={"n": number})) == {"metadata.n"}


def test_a_bad_number_deep_in_metadata_is_named_by_its_path() -> None:
    metadata = {"a": [0, {"b": MAX_SAFE + 1}]}
    assert problem_fields(event(metadata=metadata)) == {"metadata.a[1].b"}


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1E+999"])
def test_a_number_too_large_for_a_double_is_refused(literal: str) -> None:
    body = '{"action": "a", "actor": {"id": "u"}, "metadata": {"x": [' + literal + "]}}"
    assert problem_fields(decode_json(body.encode())) == {"metadata.x[0]"}


@pytest.mark.parametrize(
    ("literal", "kept"),
    [
        ("9007199254740993.0", "9007199254740992.0"),  # an integer beyond 2^53 as a float
        ("12345678901234567890.0", "1.2345678901234567e+19"),
        ("1e-400", "0.0"),  # below the smallest float
        ("4e-324", "5e-324"),
        ("0.30000000000000000001", "0.3"),
    ],
)
def test_a_number_no_float_holds_exactly_is_refused_not_rounded(literal: str, kept: str) -> None:
    body = '{"action": "a", "actor": {"id": "u"}, "metadata": {"x": {"y": ' + literal + "}}}"
    with pytest.raises(ValidationFailed) as refused:
        parse_event(decode_json(body.encode()))
    [problem] = refused.value.problems
    assert problem.field == "metadata.x.y"
    assert problem.message.endswith(f"would be kept as {kept}")


@pytest.mark.parametrize("literal", ["0.1", "6.022e23", "1e20", "-2.5e-300", "5e-324", "1.0"])
def test_a_float_that_is_the_number_sent_is_kept(literal: str) -> None:
    body = '{"action": "a", "actor": {"id": "u"}, "metadata": {"x": ' + literal + "}}"
    assert parse_event(decode_json(body.encode())).metadata == {"x": float(literal)}


def test_every_problem_in_metadata_is_named() -> None:
    metadata = {"a": MAX_SAFE + 1, "b": "nul\x00", "c": {"d": "\ud800"}}
    assert problem_fields(event(metadata=metadata)) == {"metadata.a", "metadata.b", "metadata.c.d"}


# --- unknown fields --------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["tenant", "acton", "seq", "hash", "received_at", "Action"])
def test_an_unknown_top_level_field_is_refused(key: str) -> None:
    assert problem_fields(event(**{key: "x"})) == {key}


def test_tenant_is_refused_even_when_otherwise_valid() -> None:
    assert problem_fields(event(tenant="acme", id="evt-1")) == {"tenant"}


def test_unknown_fields_are_named_wherever_they_are() -> None:
    raw = event(
        colour="red",
        actor={"id": "u", "role": "admin"},
        targets=[{"id": "t"}, {"id": "t2", "size": 3}],
        source={"ip": "203.0.113.5", "port": 443},
    )
    assert problem_fields(raw) == {"colour", "actor.role", "targets[1].size", "source.port"}


# --- NUL and lone surrogates -----------------------------------------------------------------


def _placed(bad: str) -> list[tuple[dict[str, Any], str]]:
    return [
        (event(id=f"a{bad}"), "id"),
        (event(action=f"a{bad}"), "action"),
        (event(actor={"id": f"u{bad}"}), "actor.id"),
        (event(actor={"id": "u", "type": f"user{bad}"}), "actor.type"),
        (event(actor={"id": "u", "name": f"Al{bad}ice"}), "actor.name"),
        (event(targets=[{"id": "d"}, {"id": f"d{bad}"}]), "targets[1].id"),
        (event(targets=[{"id": "d", "name": bad}]), "targets[0].name"),
        (event(occurred_at=f"2026-11-28T10:00:00Z{bad}"), "occurred_at"),
        (event(source={"ip": f"1.2.3.4{bad}"}), "source.ip"),
        (event(source={"user_agent": f"curl{bad}"}), "source.user_agent"),
        (event(description=f"text{bad}"), "description"),
        (event(metadata={"k": f"v{bad}"}), "metadata.k"),
        (event(metadata={"a": {"b": [1, f"v{bad}"]}}), "metadata.a.b[1]"),
        (event(metadata={f"k{bad}": 1}), "metadata"),
        (event(metadata={"outer": {f"k{bad}": 1}}), "metadata.outer"),
        (event(metadata={"list": [{f"{bad}": 1}]}), "metadata.list[0]"),
    ]


@pytest.mark.parametrize(
    ("raw", "field"),
    _placed("\x00") + _placed("\ud800") + _placed("\udfff"),
)
def test_nul_and_lone_surrogates_are_refused_anywhere(raw: dict[str, Any], field: str) -> None:
    assert problem_fields(raw) == {field}


def test_a_lone_surrogate_escaped_in_the_json_body_is_refused() -> None:
    body = rb'{"action": "a", "actor": {"id": "u", "name": "\ud83d"}, "metadata": {"\udc00": 1}}'
    assert problem_fields(decode_json(body)) == {"actor.name", "metadata"}


def test_an_escaped_surrogate_pair_is_one_character_and_accepted() -> None:
    body = rb'{"action": "a", "actor": {"id": "u", "name": "\ud83d\ude00"}}'
    assert parse_event(decode_json(body)).actor.name == "\U0001f600"


# --- every problem, named --------------------------------------------------------------------


def test_every_problem_of_an_event_is_named_with_its_path() -> None:
    raw = {
        "id": "bad id",
        "actor": {"name": 3},
        "targets": [{"id": "t", "extra": 1}],
        "occurred_at": "2026-11-28T10:00:00",
        "outcome": "maybe",
        "source": {"ip": "999.1.1.1", "user_agent": 1},
        "description": "d" * 1025,
        "metadata": [],
        "tenant": "other",
    }
    assert problem_fields(raw) == {
        "id",
        "action",
        "actor.id",
        "actor.name",
        "targets[0].extra",
        "occurred_at",
        "outcome",
        "source.ip",
        "source.user_agent",
        "description",
        "metadata",
        "tenant",
    }


@pytest.mark.parametrize("obj", [[], "event", 1, None])
def test_an_event_that_is_not_an_object_is_refused(obj: Any) -> None:
    with pytest.raises(ValidationFailed):
        parse_event(obj)


# --- batches ---------------------------------------------------------------------------------


def test_a_valid_batch_gives_its_events_in_order() -> None:
    events = parse_batch([event(id=f"e{i}") for i in range(5)])
    assert [e.id for e in events] == ["e0", "e1", "e2", "e3", "e4"]


def test_every_problem_of_a_batch_carries_its_index() -> None:
    items = [
        event(id="ok-0"),
        event(id="bad id"),
        event(),
        {"actor": {"id": "u"}, "outcome": "nope", "tenant": "t"},
    ]
    with pytest.raises(ValidationFailed) as info:
        parse_batch(items)
    assert {(p.index, p.field) for p in info.value.problems} == {
        (1, "id"),
        (3, "action"),
        (3, "outcome"),
        (3, "tenant"),
    }


def test_a_batch_item_that_is_not_an_object_carries_its_index() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_batch([event(), "not an event"])
    assert [p.index for p in info.value.problems] == [1]


@pytest.mark.parametrize("items", [[], None, {"action": "a"}, "events"])
def test_a_batch_must_be_a_non_empty_list(items: Any) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_batch(items)
    assert [p.field for p in info.value.problems] == ["events"]


def test_a_batch_of_1000_events_is_accepted() -> None:
    assert len(parse_batch([event()] * 1000)) == 1000


def test_a_batch_of_1001_events_is_too_large() -> None:
    with pytest.raises(PayloadTooLarge):
        parse_batch([event()] * 1001)


# --- decode_json -----------------------------------------------------------------------------


def test_a_utf8_json_body_is_decoded() -> None:
    body = '{"action": "a", "actor": {"id": "\u00e9"}, "metadata": {"n": [1, 2.5]}}'.encode()
    assert decode_json(body) == {
        "action": "a",
        "actor": {"id": "\u00e9"},
        "metadata": {"n": [1, 2.5]},
    }


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "caf\xe9"}',  # Latin-1
        '{"action": "a"}'.encode("utf-16"),
        b"\xff\xfe\xfd",
        b'{"a": "\xed\xa0\x80"}',  # a surrogate encoded as if UTF-8
    ],
)
def test_a_body_that_is_not_utf8_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedJson):
        decode_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"metadata": {"x": NaN}}',
        b'{"metadata": {"x": Infinity}}',
        b'{"metadata": {"x": [1, -Infinity]}}',
        b"NaN",
    ],
)
def test_nan_and_infinity_are_not_json(body: bytes) -> None:
    with pytest.raises(MalformedJson):
        decode_json(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"action": "a", "action": "b"}',
        b'{"action": "a", "actor": {"id": "u", "id": "v"}}',
        b'{"metadata": {"a": [{"k": 1, "k": 1}]}}',
        b'{"events": [{"action": "a"}, {"action": "b", "outcome": "x", "outcome": "y"}]}',
    ],
)
def test_a_repeated_key_at_any_depth_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedJson):
        decode_json(body)


@pytest.mark.parametrize("opener", ["[", '{"a":'])
def test_nesting_deeper_than_the_parser_takes_is_malformed(opener: str) -> None:
    with pytest.raises(MalformedJson):
        decode_json((opener * 100_000).encode())


@pytest.mark.parametrize("body", [b"", b"{", b"{'action': 'a'}", b'{"a": 1,}', b"[1] [2]"])
def test_text_that_is_not_json_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedJson):
        decode_json(body)


def test_deep_metadata_that_decodes_is_judged_not_crashed() -> None:
    depth = 600
    nested = "[" * depth + "]" * depth
    body = '{"action": "a", "actor": {"id": "u"}, "metadata": {"k": ' + nested + "}}"
    with contextlib.suppress(AuditError):
        parse_event(decode_json(body.encode()))


# --- the common case's shortcut ----------------------------------------------------------------
# parse_event and parse_batch try `common_event.quick_event` first: it must accept
# nothing the parser refuses, and give what the parser gives for what it accepts.

_ODD_VALUES: list[Any] = [
    None,
    "",
    "a",
    "x" * 64,
    "x" * 65,
    "x" * 129,
    "x" * 257,
    "x" * 1025,
    "caf\u00e9",
    "a\x00b",
    "\ud800",
    "a\nb",
    "has space",
    0,
    1.5,
    True,
    [],
    {},
    ["a"],
    {"id": "a"},
    "2026-11-28T10:00:00Z",
    "2026-11-28T10:00:00",
    "2026-13-28T10:00:00Z",
    "2026-02-30T10:00:00+01:00",
    "1.2.3.4",
    "1.2.3.04",
    "::1",
    "fe80::1%eth0",
    "success",
    "failure",
    "unknown",
    "Success",
]
_FIELDS = [*sorted(rules.EVENT_FIELDS), "tenant"]
_NESTED_KEYS = ["id", "type", "name", "extra", "ip", "user_agent"]


def _full_event() -> dict[str, Any]:
    return {
        "id": "evt-1",
        "action": "document.update",
        "actor": {"id": "u-1", "type": "user", "name": "Alice"},
        "targets": [{"id": "doc-1", "type": "document", "name": "Report"}, {"id": "doc-2"}],
        "occurred_at": "2026-11-28T10:00:00.5+02:00",
        "outcome": "failure",
        "source": {"ip": "203.0.113.9", "user_agent": "curl/8"},
        "description": "",
        "metadata": {"ticket": "OPS-1", "n": 3, "f": 1.0, "tags": ["a", None, True]},
    }


def _variants() -> list[Any]:
    found: list[Any] = [_full_event(), event(), [], "text"]
    for field in _FIELDS:
        for value in _ODD_VALUES:
            raw = _full_event()
            raw[field] = value
            found.append(raw)
        found.append({k: v for k, v in _full_event().items() if k != field})
    for where in ("actor", "target", "source"):
        for key in _NESTED_KEYS:
            for value in _ODD_VALUES:
                raw = _full_event()
                holder = raw["targets"][1] if where == "target" else raw[where]
                holder[key] = value
                found.append(raw)
    found.append(_full_event() | {"targets": [{"id": "t"}] * 33})
    found.append(_full_event() | {"metadata": {"big": MAX_SAFE + 1}})
    found.append(_full_event() | {"metadata": {"x": "y" * (16 * 1024)}})
    found.append(_full_event() | {"metadata": {"nan": float("nan")}})
    return found


@pytest.mark.parametrize("raw", _variants())
def test_the_shortcut_accepts_only_what_the_parser_accepts_and_gives_the_same(raw: Any) -> None:
    parser = _Parser(index=None)
    expected = parser.event(raw)
    quick = quick_event(raw)
    if quick is not None:
        assert not parser.problems
        assert quick == expected
        assert quick.metadata.canonical == expected.metadata.canonical  # type: ignore[union-attr]


def test_the_shortcut_takes_the_common_case() -> None:

    assert quick_event(_full_event()) is not None
    assert quick_event(event()) is not None
