"""Query parameters, in one place: which each operation takes, their parsing, their docs.

The views parse with these and the OpenAPI document is built from them, so an accepted
parameter cannot go undocumented. Any other parameter, or one given twice, is a 400: a
mistyped filter must never return unfiltered results.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, cast

import attrs
from flask import request

from audit.domain import rules
from audit.domain.errors import InvalidParameter
from audit.domain.query import (
    FILTER_PARAMETERS,
    EventFilter,
    Order,
    PageRequest,
    parse_filter,
    read_cursor,
)
from audit.entrypoints.formats import EXPORT_FORMATS

ORDERS = ("desc", "asc")
DEFAULT_ORDER = "desc"
DEFAULT_FORMAT = "ndjson"
_LIMIT_RE = re.compile(r"[0-9]{1,9}")
# Tree sizes: ASCII decimal digits only (int() would take "+1", " 1" and other scripts'
# digits), at most 19 so they fit the 64-bit integers storage keeps.
_SIZE_RE = re.compile(r"[0-9]{1,19}")
_NAME_ECHO_MAX = 64


@attrs.frozen
class QueryParameter:
    """A query parameter as OpenAPI describes it."""

    name: str
    description: str
    schema: Mapping[str, Any]
    required: bool = False

    def document(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "in": "query",
            "required": self.required,
            "description": self.description,
            "schema": dict(self.schema),
        }


_TIME_SCHEMA = {"type": "string", "format": "date-time", "pattern": rules.RFC3339_PATTERN}

# What each filter of audit.domain.query means; parse_filter does the parsing.
_FILTER_DOCS: dict[str, tuple[str, Mapping[str, Any]]] = {
    "actor_id": ("Exact actor id.", {"type": "string", "minLength": 1}),
    "target_id": ("Events with any target of this id.", {"type": "string", "minLength": 1}),
    "action": (
        "Exact action, or a prefix ending in `*` (`document.*`).",
        {"type": "string", "minLength": 1},
    ),
    "outcome": ("Exact outcome.", {"type": "string", "enum": list(rules.OUTCOMES)}),
    "since": ("Events that occurred at or after this RFC 3339 time.", _TIME_SCHEMA),
    "until": ("Events that occurred before this RFC 3339 time.", _TIME_SCHEMA),
    "q": (
        "Case-insensitive text in the description, the metadata, or the actor's or targets' names.",
        {"type": "string", "minLength": 1},
    ),
}

FILTERS = tuple(QueryParameter(name, *_FILTER_DOCS[name]) for name in FILTER_PARAMETERS)

LIMIT = QueryParameter(
    "limit",
    "Events per page.",
    {
        "type": "integer",
        "minimum": 1,
        "maximum": rules.PAGE_LIMIT_MAX,
        "default": rules.PAGE_LIMIT_DEFAULT,
    },
)
ORDER = QueryParameter(
    "order",
    "`desc`: newest `seq` first; `asc`: oldest first.",
    {"type": "string", "enum": list(ORDERS), "default": DEFAULT_ORDER},
)
CURSOR = QueryParameter(
    "cursor",
    "The `next_cursor` of the previous page: alone (with `limit`) it continues that "
    "listing; filters or an `order` given beside it must be the cursor's.",
    {"type": "string", "minLength": 1},
)
FORMAT = QueryParameter(
    "format",
    "`ndjson`: one event per line, the exact record; `csv` (RFC 4180): a header row, "
    "nested fields as JSON, and a leading `'` on a cell a spreadsheet would run as a "
    "formula (one starting with `=`, `+`, `-`, `@`, tab or CR).",
    {"type": "string", "enum": list(EXPORT_FORMATS), "default": DEFAULT_FORMAT},
)

_TREE_SIZE = {"type": "integer", "minimum": 1}
SIZE = QueryParameter(
    "size",
    "The tree of the first `size` events (1 to the log's size); absent: the whole log.",
    _TREE_SIZE,
)
PROOF_SIZE = QueryParameter(
    "size",
    "Prove the event in the tree of the first `size` events, which must hold it; "
    "absent: the whole log.",
    _TREE_SIZE,
)
FIRST = QueryParameter(
    "first", "The size of the older tree (1 to `second`).", _TREE_SIZE, required=True
)
SECOND = QueryParameter(
    "second", "The size of the newer tree (`first` to the log's size).", _TREE_SIZE, required=True
)

LIST_PARAMETERS = (*FILTERS, LIMIT, ORDER, CURSOR)
EXPORT_PARAMETERS = (*FILTERS, FORMAT)
CHECKPOINT_PARAMETERS = (SIZE,)
PROOF_PARAMETERS = (PROOF_SIZE,)
CONSISTENCY_PARAMETERS = (FIRST, SECOND)
NO_PARAMETERS: tuple[QueryParameter, ...] = ()


def _shown(name: str) -> str:
    return repr(name if len(name) <= _NAME_ECHO_MAX else name[:_NAME_ECHO_MAX] + "...")


def query_arguments(allowed: Sequence[QueryParameter]) -> dict[str, str]:
    """The query string as single values, after refusing unknown and repeated parameters."""
    if not request.query_string:
        return {}  # most requests: nothing to parse
    names = [p.name for p in allowed]
    values: dict[str, str] = {}
    for name, given in request.args.lists():
        if name not in names:
            hint = f"; allowed: {', '.join(names)}" if names else "; this operation takes none"
            raise InvalidParameter(f"unknown query parameter {_shown(name)}{hint}")
        if len(given) > 1:
            raise InvalidParameter(f"query parameter {_shown(name)} is given more than once")
        value = given[0]
        if value == "":
            raise InvalidParameter(f"{name} must not be empty")
        if "\x00" in value:
            raise InvalidParameter(f"{name} must not contain NUL characters")
        values[name] = value
    return values


def event_filter(args: Mapping[str, str]) -> EventFilter:
    return parse_filter({name: args.get(name) for name in FILTER_PARAMETERS})


def listing(args: Mapping[str, str]) -> tuple[EventFilter, PageRequest]:
    """The filter and page a list request asks for.

    A cursor carries the filters and order of its listing: with only a cursor (and a
    limit) the listing goes on; a filter or order given beside it must be the cursor's.
    """
    limit = rules.PAGE_LIMIT_DEFAULT
    if LIMIT.name in args:
        raw = args[LIMIT.name]
        limit = int(raw) if _LIMIT_RE.fullmatch(raw) else 0
        if not 1 <= limit <= rules.PAGE_LIMIT_MAX:
            raise InvalidParameter(f"limit must be an integer from 1 to {rules.PAGE_LIMIT_MAX}")
    order = args.get(ORDER.name)
    if order is not None and order not in ORDERS:
        raise InvalidParameter(f"order must be one of {', '.join(ORDERS)}")
    if CURSOR.name not in args:
        return event_filter(args), PageRequest(
            limit=limit, order=cast(Order, order or DEFAULT_ORDER)
        )
    cursor = read_cursor(args[CURSOR.name])
    if order is not None and order != cursor.order:
        raise InvalidParameter(
            f"cursor was issued for order={cursor.order}: omit order, or give the cursor's"
        )
    if any(name in args for name in FILTER_PARAMETERS) and event_filter(args) != cursor.where:
        raise InvalidParameter(
            "the filters differ from the cursor's: omit them, or give exactly the cursor's"
        )
    return cursor.where, PageRequest(limit=limit, order=cursor.order, after_seq=cursor.after_seq)


def export_format(args: Mapping[str, str]) -> str:
    fmt = args.get(FORMAT.name, DEFAULT_FORMAT)
    if fmt not in EXPORT_FORMATS:
        raise InvalidParameter(f"format must be one of {', '.join(EXPORT_FORMATS)}")
    return fmt


def _tree_size(args: Mapping[str, str], name: str) -> int:
    raw = args[name]
    if not _SIZE_RE.fullmatch(raw):
        raise InvalidParameter(f"{name} must be a decimal integer (a tree size)")
    # Whether the log holds a tree of this size is the use case's to say.
    return int(raw)


def tree_size(args: Mapping[str, str]) -> int | None:
    """The `size` of a checkpoint or proof, or None for the whole log."""
    return _tree_size(args, SIZE.name) if SIZE.name in args else None


def consistency_sizes(args: Mapping[str, str]) -> tuple[int, int]:
    """`first` and `second`, both required."""
    missing = [p.name for p in CONSISTENCY_PARAMETERS if p.name not in args]
    if missing:
        raise InvalidParameter(f"{' and '.join(missing)} must be given (a tree size)")
    return _tree_size(args, FIRST.name), _tree_size(args, SECOND.name)
