"""Request bodies to JSON values, strictly: UTF-8, no NaN/Infinity, no repeated keys.

The standard library's parser, with hooks that refuse constants and repeated keys, is the
reference. orjson parses the same documents to the same values at a fraction of the cost,
except where it differs: it keeps the last of repeated keys, refuses lone surrogate escapes
(the reference reads them, and validation then names the field: a 422, not a 400), and
reads an integer beyond 64 bits as a float. So a body goes to orjson only when none of
that can be in it, and orjson's answer is kept only when no key was dropped; anything
else, errors included, is the reference's to decide. Tests hold the two to the same
results on hostile inputs.

A number with a fraction or an exponent becomes the nearest 64-bit float, as RFC 8785
reads it, and that float is what the log would keep. Where it is not the number sent
(9007199254740993.0, 1e-400, 0.30000000000000000001), the reference marks it
(InexactFloat) for validation to refuse. Only a number of 16 or more significant digits,
or one near the ends of the float's range, can be such a number: a decimal of at most 15
significant digits in the normal range is read and written back as itself. So a body
holding neither goes to orjson, and any other to the reference.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import orjson

from audit.domain.errors import MalformedJson

# Sixteen digits in a row, a point among them or not, may be an integer beyond 64 bits,
# which orjson reads as a float, or a number no float holds exactly (above); so may an
# exponent of -100 or below. Found once every digit and point is made a zero and every E
# an e (bytes methods, much faster than a regular expression). An escaped colon would
# upset the count of colons below.
_NUMBER_SHAPE = bytes.maketrans(b"123456789.E", b"0000000000e")
_LONG_NUMBER = b"0" * 16
_TINY_EXPONENT = b"e-000"
_ESCAPED_COLON = b"\\u003"  # \u003a, and its neighbours, which cost only a detour
_COLON = b":"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"repeated key {key!r}")
            seen.add(key)
    return result


class InexactFloat(float):
    """A number sent with a fraction or an exponent that no 64-bit float is: the float
    nearest to it, which validation refuses (the log would keep another number)."""

    __slots__ = ()


def _float(text: str) -> float:
    value = float(text)
    if math.isfinite(value) and Decimal(text) != Decimal(repr(value)):
        return InexactFloat(value)
    return value


def decode_json_reference(body: bytes) -> Any:
    """The reference: the standard library's parser, refusing what is not JSON here."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("the body is not UTF-8") from None
    try:
        return json.loads(
            text,
            object_pairs_hook=_no_duplicate_keys,
            parse_constant=_reject_constant,
            parse_float=_float,
        )
    except RecursionError:
        raise MalformedJson("the body is nested too deeply") from None
    except ValueError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None


def _fast(body: bytes) -> Any:
    """orjson's value, or None when the reference must decide."""
    if _ESCAPED_COLON in body:
        return None
    shape = body.translate(_NUMBER_SHAPE)
    if _LONG_NUMBER in shape or _TINY_EXPONENT in shape:
        return None
    try:
        value = orjson.loads(body)
        # Outside strings a colon only ends a key, and orjson writes a string's colons as
        # they are: fewer colons written back than read means a repeated key was dropped.
        if orjson.dumps(value).count(_COLON) != body.count(_COLON):
            return None
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):
        return None
    # Containers only: a bare scalar body is rare, and None must mean "ask the reference".
    return value if isinstance(value, dict | list) else None


def decode_json(body: bytes) -> Any:
    """Parse a request body strictly: UTF-8, no NaN/Infinity, no repeated keys
    (MalformedJson otherwise); lone surrogates and NUL characters are left to validation."""
    value = _fast(body)
    if value is None:
        return decode_json_reference(body)
    return value
