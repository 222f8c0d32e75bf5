"""Request bodies: JSON only, within the size limit, chunked bodies included."""

from __future__ import annotations

from typing import Any

from flask import request
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from audit.domain.validation import decode_json

JSON_MEDIA_TYPE = "application/json"


def body_bytes() -> bytes:
    """The whole body, or RequestEntityTooLarge (413) when it is over MAX_CONTENT_LENGTH.

    werkzeug refuses a Content-Length over the limit up front. A chunked body (the server
    marks the input terminated) has no length to check, and werkzeug's stream then stops
    quietly at the limit, as if the body ended there. So let it read one byte more: a body
    that reaches it is over the limit.
    """
    limit = request.max_content_length
    if limit is None:
        return request.get_data(cache=False)
    request.max_content_length = limit + 1
    data = request.get_data(cache=False)
    if len(data) > limit:
        raise RequestEntityTooLarge()
    return data


def json_body() -> Any:
    """The body parsed strictly (see decode_json), or 415, 413 or 400."""
    if request.mimetype != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(f"the body must be {JSON_MEDIA_TYPE}")
    charset = request.mimetype_params.get("charset")
    if charset is not None and charset.lower() not in ("utf-8", "utf8"):
        raise UnsupportedMediaType(f"the body must be {JSON_MEDIA_TYPE} in UTF-8")
    return decode_json(body_bytes())
