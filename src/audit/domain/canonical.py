"""RFC 8785 (JSON Canonicalization Scheme) bytes, fast.

The `rfc8785` package is the reference but pure Python, and canonical JSON is on the
ingest path several times per event. orjson with sorted keys writes exactly the same
bytes for JSON holding no floats and no object key outside the Basic Multilingual Plane:
its string escapes are JCS's, its integers are plain decimals, and its key order (by code
point) differs from JCS's (by UTF-16 unit) only for keys with characters above U+FFFF.
Anything else goes to the reference. Tests hold the two to the same bytes.
"""

from __future__ import annotations

from typing import Any

import orjson
import rfc8785

_OPTIONS = orjson.OPT_SORT_KEYS


def _orjson_writes_jcs(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not key.isascii() and max(key) > "\uffff":
                    return False
                stack.append(child)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            return False
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item) > 2**53 - 1:
            return False  # the reference refuses it; let it say so
    return True


def canonical_json(value: Any, plain: bool | None = None) -> bytes:
    """The RFC 8785 canonical form of a JSON value, as UTF-8 bytes.

    `plain`: whether the value holds no float and no object key above U+FFFF, when the
    caller already knows (validation walks the value anyway); None: find out here.
    """
    if plain is None:
        plain = _orjson_writes_jcs(value)
    if plain:
        return orjson.dumps(value, option=_OPTIONS)
    return rfc8785.dumps(value)


def key_is_plain(key: str) -> bool:
    """Whether orjson orders this object key as RFC 8785 does (no character above U+FFFF)."""
    return key.isascii() or max(key) <= "\uffff"


def canonical_plain(record: dict[str, Any]) -> bytes:
    """canonical_json of a record known to be plain, whose free-form parts are already
    canonical and given as `orjson.Fragment`s of those bytes (written as they are)."""
    return orjson.dumps(record, option=_OPTIONS)


def canonical_record(record: dict[str, Any], free_form: str = "metadata") -> bytes:
    """canonical_json of a record whose only free-form field is `free_form`.

    Every other field must be plain: strings, safe integers, booleans, null, and lists or
    objects of those with ASCII keys (as an event's fixed fields are), so only the
    free-form one needs checking before orjson writes the whole.
    """
    if _orjson_writes_jcs(record[free_form]):
        return orjson.dumps(record, option=_OPTIONS)
    return rfc8785.dumps(record)
