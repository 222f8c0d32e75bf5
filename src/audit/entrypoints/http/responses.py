"""JSON responses, serialised once, in the order the documents are built."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response

from audit.entrypoints.formats import json_bytes

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
