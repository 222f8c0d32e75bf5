"""JSON responses, serialised once, in the order the documents are built; export downloads."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Mapping
from typing import Any

from flask import Response

from audit.domain.events import EventJson
from audit.entrypoints.formats import EXPORT_FORMATS, json_bytes

JSON = "application/json"


def json_response(
    document: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    try:
        body = json_bytes(document)
    except TypeError:
        # orjson refuses lone surrogates, which an error can quote back (an unknown field
        # named "\ud800"); the standard library escapes them, still valid JSON text.
        body = json.dumps(document, ensure_ascii=True).encode("ascii")
    return Response(body, status=status, headers=dict(headers or {}), mimetype=JSON)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """The error body of API.md: `{"error": {"code", "message", "details"?}}`."""
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return json_response({"error": error}, status, headers)


def export_response(fmt: str, events: Iterator[EventJson]) -> Response:
    """An export in `fmt` (one of EXPORT_FORMATS) as a streamed download.

    The first event is read now, so storage failing up front is still an error response
    (the API's JSON 503, the viewer's error page); after it the events stream, one chunk
    in memory at a time.
    """
    media_type, lines = EXPORT_FORMATS[fmt]
    first = next(events, None)
    rest = events if first is None else itertools.chain([first], events)
    return Response(
        lines(rest),
        status=200,
        content_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="events.{fmt}"'},
    )
