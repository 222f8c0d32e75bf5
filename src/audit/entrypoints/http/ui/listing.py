"""The event list's query string: the API's filters, read leniently for people typing.

Empty fields (a GET form sends every field) are absent; a time may be a bare date or a
time without offset, read as UTC. Everything else is the API's own parsing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import attrs

from audit.domain.errors import InvalidParameter
from audit.domain.query import (
    FILTER_PARAMETERS,
    EventFilter,
    PageRequest,
    parse_filter,
    read_cursor,
)

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_NO_OFFSET = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?")


def as_rfc3339(value: str) -> str:
    """A date or a time without offset, as RFC 3339 in UTC; anything else unchanged."""
    if _DATE.fullmatch(value):
        return f"{value}T00:00:00Z"
    if _NO_OFFSET.fullmatch(value):
        text = value.replace(" ", "T")
        return f"{text}:00Z" if len(text) == 16 else f"{text}Z"
    return value


@attrs.frozen
class Listing:
    """What the list shows: the filters as typed (for the form and links) and the page."""

    filters: dict[str, str]
    where: EventFilter
    limit: int
    cursor: str | None

    def page(self) -> PageRequest:
        if self.cursor is None:
            return PageRequest(limit=self.limit, order="desc")
        # The viewer's links carry the filters beside the cursor, so the URL reads (and
        # bookmarks) as what it shows; as in the API, they must be the cursor's.
        cursor = read_cursor(self.cursor)
        if cursor.order != "desc" or cursor.where != self.where:
            raise InvalidParameter("the filters changed since this page's link was made")
        return PageRequest(limit=self.limit, order="desc", after_seq=cursor.after_seq)


def filters_of(args: Mapping[str, str]) -> tuple[dict[str, str], EventFilter]:
    """The non-empty filters as typed, and the EventFilter they make."""
    typed = {name: args[name].strip() for name in FILTER_PARAMETERS if args.get(name, "").strip()}
    if any("\x00" in value for value in typed.values()):
        raise InvalidParameter("filters must not contain NUL characters")
    parsed = {name: as_rfc3339(v) if name in ("since", "until") else v for name, v in typed.items()}
    return typed, parse_filter(dict(parsed))


def listing(args: Mapping[str, str]) -> Listing:
    """The list page's request; InvalidParameter says what is wrong with it."""
    typed, where = filters_of(args)
    raw_limit = args.get("limit", "").strip()
    limit = DEFAULT_PAGE_SIZE
    if raw_limit:
        if not raw_limit.isdigit() or int(raw_limit) not in PAGE_SIZES:
            sizes = ", ".join(str(n) for n in PAGE_SIZES)
            raise InvalidParameter(f"events per page must be one of {sizes}")
        limit = int(raw_limit)
    cursor = args.get("cursor", "").strip() or None
    result = Listing(typed, where, limit, cursor)
    result.page()  # a bad cursor is a bad request now, not later
    return result
