"""Paths and query strings: never a byte that storage or a log line cannot hold."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.routing import Map, UnicodeConverter

from audit.domain.errors import InvalidParameter


class SegmentConverter(UnicodeConverter):
    """werkzeug's default converter (one path segment), less the control characters.

    No event or token id can hold one, PostgreSQL cannot even be asked about a NUL, and a
    CR or LF echoed into a log forges lines: such a path matches no route, a 404.
    """

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00-\\x1f\\x7f]", 1)


def refuse_nul_in_query() -> None:
    """Before every request: a query parameter (name or value) holding a NUL is a 400.

    PostgreSQL cannot even be asked about a NUL; refusing it here covers every route,
    whichever way the view reads its parameters.
    """
    query = request.query_string
    if request.url_rule is None or (b"%00" not in query and b"\x00" not in query):
        return  # no route matched: that 404 comes first
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            raise InvalidParameter("query parameters must not contain NUL characters")
