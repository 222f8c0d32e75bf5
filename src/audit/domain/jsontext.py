"""Request bodies to JSON values, strictly: UTF-8, no NaN/Infinity, no repeated keys.

The standard library's parser, with hooks that refuse constants and repeated keys, is the
reference. orjson parses the same documents to the same values at a fraction of the cost,
except where it differs: it keeps the last of repeated keys, refuses lone surrogate escapes
(the reference reads them, and validation then names the field: a 422, not a 400), and
reads an integer beyond 64 bits as a float. So a body goes to orjson only when none of
that can be in it, and orjson's answer is kept only when no key was dropped; anything
else, errors included, is the reference's to decide. Tests hold the two to the same
results on hostile inputs.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from audit.domain.errors import MalformedJson

# Nineteen digits in a row may be an integer beyond 64 bits, which orjson reads as a float
# (eighteen never are): found as a run of zeros once every digit is made a zero (bytes
# methods, much faster than a regular expression). An escaped colon would upset the
# count of colons below.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_NUMBER = b"0" * 19
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


def decode_json_reference(body: bytes) -> Any:
    """The reference: the standard library's parser, refusing what is not JSON here."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise MalformedJson("the body is not UTF-8") from None
    try:
        return json.loads(
            text, object_pairs_hook=_no_duplicate_keys, parse_constant=_reject_constant
        )
    except RecursionError:
        raise MalformedJson("the body is nested too deeply") from None
    except ValueError as exc:
        raise MalformedJson(f"the body is not valid JSON: {exc}") from None


def _fast(body: bytes) -> Any:
    """orjson's value, or None when the reference must decide."""
    if _ESCAPED_COLON in body or _LONG_NUMBER in body.translate(_DIGITS_AS_ZERO):
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
