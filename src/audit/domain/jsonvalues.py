"""Checks of JSON values that validation runs on every string and every metadata value,
kept cheap: the common case (ASCII text, plain metadata) decided without naming fields."""

from __future__ import annotations

import math
import re
from typing import Any

from audit.domain import rules
from audit.domain.canonical import key_is_plain


def string_problem(value: str) -> str | None:
    """Why a string cannot be stored (NUL, lone surrogates), or None."""
    if "\x00" in value:
        return "must not contain NUL characters"
    if value.isascii():
        return None
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates"
    return None


# The dotted quads ipaddress takes (no leading zeros), matched without building an address.
IPV4_RE = re.compile(
    r"(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
)
_SAFE = rules.MAX_SAFE_INTEGER


def quick_metadata(value: dict[str, Any]) -> bool | None:
    """Whether metadata made only of plain JSON types is valid and plain (no float, no key
    above U+FFFF), level by level and without naming fields; None when anything is wrong
    or unusual, for the walk that names every problem."""
    plain = True
    level: list[Any] = [value]
    depth = 0
    while level:
        below: list[Any] = []
        for item in level:
            kind = type(item)
            if kind is str:
                if "\x00" in item or not (item.isascii() or string_problem(item) is None):
                    return None
            elif kind is dict:
                if depth >= rules.METADATA_MAX_DEPTH:
                    return None
                for key in item:
                    if type(key) is not str or "\x00" in key:
                        return None
                    if not key.isascii():
                        if string_problem(key) is not None:
                            return None
                        plain = plain and key_is_plain(key)
                below.extend(item.values())
            elif kind is list:
                if depth >= rules.METADATA_MAX_DEPTH:
                    return None
                below.extend(item)
            elif kind is int:
                if not -_SAFE <= item <= _SAFE:
                    return None
            elif kind is float:
                plain = False
                if not math.isfinite(item):
                    return None
            elif item is not None and kind is not bool:
                return None
        level = below
        depth += 1
    return plain
