"""Path parameters: one segment, never a byte that storage or a log line cannot hold."""

from __future__ import annotations

from typing import Any

from werkzeug.routing import Map, UnicodeConverter


class SegmentConverter(UnicodeConverter):
    """werkzeug's default converter (one path segment), less the control characters.

    No event or token id can hold one, PostgreSQL cannot even be asked about a NUL, and a
    CR or LF echoed into a log forges lines: such a path matches no route, a 404.
    """

    def __init__(self, map: Map, *args: Any, **kwargs: Any) -> None:
        super().__init__(map, *args, **kwargs)
        self.regex = self.regex.replace("[^/]", "[^/\\x00-\\x1f\\x7f]", 1)
