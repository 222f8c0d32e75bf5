"""decode_json (orjson where it can) gives what the reference parser gives, on any input:
the same value, of the same types, or MalformedJson for both."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.domain import jsontext
from audit.domain.errors import MalformedJson
from audit.domain.jsontext import InexactFloat, decode_json, decode_json_reference


def _typed(value: Any) -> Any:
    """The value with each InexactFloat marked, which repr alone would not show."""
    if isinstance(value, dict):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_typed(item) for item in value]
    if isinstance(value, InexactFloat):
        return ("inexact", float(value))
    return value


def _outcome(decode: Any, body: bytes) -> str:
    try:
        # repr tells int from float, -0.0 from 0.0, and keeps key order.
        return "value " + repr(_typed(decode(body)))
    except MalformedJson:
        return "malformed"


def assert_same(body: bytes) -> None:
    assert _outcome(decode_json, body) == _outcome(decode_json_reference, body), body


HOSTILE = [
    b'{"a": 1, "a": 2}',
    b'{"a": {"b": 1, "b": 1}}',
    b'{"a": 1, "\\u0061": 2}',  # the same key, escaped
    b'{"a\\u003a": 1, "a:": 2}',  # an escaped colon in a repeated key
    b'{"k": "x:y", "k": "\\u003a"}',
    b'{"a": "\\ud800"}',  # lone surrogates: the reference reads them (validation says 422)
    b'{"a": "\\udc00x"}',
    b'{"a": "\\ud83d\\ude00"}',  # a proper pair
    b'{"a": "\\u0000"}',
    b'{"a": "\xed\xa0\x80"}',
    b'{"a": "caf\xe9"}',
    b'{"a": NaN}',
    b'{"a": -Infinity}',
    b'{"a": 1e400}',
    b'{"a": -1e400}',
    b'{"a": 1.5e-400}',
    b'{"a": -0.0}',
    b'{"a": 9007199254740993}',
    b'{"a": 9223372036854775807}',
    b'{"a": 9223372036854775808}',
    b'{"a": -9223372036854775809}',
    b'{"a": 18446744073709551615}',
    b'{"a": 18446744073709551616}',
    b'{"a": -18446744073709551617}',
    b'{"a": 123456789012345678901234567890}',
    b'{"a": 1E2, "b": 1e-2, "c": 0.1, "d": 2.2250738585072014e-308}',
    b'{"a": 9007199254740993.0}',  # floats that are not the number sent
    b'{"a": 9.007199254740993e15}',
    b'{"a": 0.30000000000000000001}',
    b'{"a": 1e-400}',
    b'{"a": 4E-324}',
    b'{"a": 123456789.0123456789}',
    b'{"a": 1e20, "b": 6.022e23, "c": 1.5e-300, "d": 5e-324}',  # floats that are
    b'{"a": 01}',
    b'{"a": 1.}',
    b'{"a": .5}',
    b'{"a": +1}',
    b'{"a": 1,}',
    b"[1, 2,]",
    b'{"a" 1}',
    b'{"a": "\t"}',  # a raw control character in a string
    b'{"a": "\\x41"}',
    b'\xef\xbb\xbf{"a": 1}',
    b' \t\r\n{"a": 1} \n',
    b'{"a": 1}\x0c',
    b'{"a": 1} x',
    b'{"a": 1}{"b": 2}',
    b'"text"',
    b"1",
    b"null",
    b"",
    b"[" * 2000 + b"]" * 2000,
    b'{"a":' * 2000 + b"1" + b"}" * 2000,
    b"[" * 1023 + b"]" * 1023,
    b'{"a": "\\u2028\\u2029", "b": "\xe2\x80\xa8"}',
    b'{"\\ud800": 1}',
    b'{"a": [1, 2, {"b": [true, false, null]}]}',
]


@pytest.mark.parametrize("body", HOSTILE)
def test_hostile_bodies_decode_as_the_reference_decodes_them(body: bytes) -> None:
    assert_same(body)


def test_the_fast_path_takes_an_ordinary_batch() -> None:
    body = json.dumps(
        {
            "events": [
                {"action": "a.b", "actor": {"id": f"u:{i}"}, "metadata": {"n": i}} for i in range(3)
            ]
        }
    ).encode()
    assert jsontext._fast(body) is not None
    assert_same(body)


def test_a_repeated_key_is_refused_even_where_orjson_would_keep_the_last() -> None:
    for body in (b'{"a": 1, "a": 2}', b'{"e": [{"k": "1:2", "k": "1:2"}]}'):
        with pytest.raises(MalformedJson):
            decode_json(body)


_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values, st.booleans())
def test_any_json_decodes_as_the_reference_decodes_it(value: Any, ascii_only: bool) -> None:
    assert_same(json.dumps({"v": value}, ensure_ascii=ascii_only).encode())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_values, st.data())
def test_damaged_json_is_judged_as_the_reference_judges_it(value: Any, data: Any) -> None:
    body = bytearray(json.dumps({"v": value, "w": [value]}).encode())
    for _ in range(data.draw(st.integers(min_value=1, max_value=3))):
        at = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
        action = data.draw(st.sampled_from(["replace", "insert", "delete"]))
        byte = data.draw(st.sampled_from([*list(b'{}[]",:\\ 0123456789.eE-+tfnul'), 0, 255]))
        if action == "replace":
            body[at] = byte
        elif action == "insert":
            body.insert(at, byte)
        elif len(body) > 1:
            del body[at]
    assert_same(bytes(body))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=1, max_size=30), st.booleans())
def test_numbers_of_any_length_decode_as_the_reference_decodes_them(
    digits: str, negative: bool
) -> None:
    number = ("-" if negative else "") + digits
    assert_same(b'{"n": ' + number.encode() + b"}")
    assert_same(b'{"n": ' + number.encode() + b".5e3}")


def test_a_float_that_is_not_the_number_sent_is_marked() -> None:
    value = decode_json(b'{"a": 9007199254740993.0, "b": 1e-400, "c": 0.1, "d": 1e20}')
    assert {key: isinstance(item, InexactFloat) for key, item in value.items()} == {
        "a": True,
        "b": True,
        "c": False,
        "d": False,
    }
    assert value["b"] == 0.0


@settings(max_examples=400, deadline=None)
@given(
    st.text(alphabet="0123456789", min_size=1, max_size=22),
    st.text(alphabet="0123456789", max_size=22),
    st.none() | st.integers(min_value=-420, max_value=420),
    st.sampled_from(["e", "E"]),
)
def test_floats_of_any_digits_and_exponent_decode_as_the_reference_decodes_them(
    whole: str, fraction: str, exponent: int | None, e: str
) -> None:
    """Whether orjson may read a number (a float exactly the number sent) or the reference
    must mark it: same value, same mark, either way."""
    number = whole.lstrip("0") or "0"
    if fraction:
        number += "." + fraction
    if exponent is not None:
        number += f"{e}{exponent}"
    assert_same(b'{"n": ' + number.encode() + b"}")
