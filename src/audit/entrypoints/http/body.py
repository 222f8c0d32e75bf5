"""Request bodies: JSON only, within the size limit, chunked bodies included."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from flask import Request, request
from werkzeug.exceptions import (
    BadRequest,
    HTTPException,
    RequestEntityTooLarge,
    UnsupportedMediaType,
)

from audit.domain.validation import decode_json

JSON_MEDIA_TYPE = "application/json"


@contextmanager
def _unreadable_is_bad_request() -> Iterator[None]:
    try:
        yield
    except HTTPException:
        raise
    except Exception:
        # The server could not read the body as sent (garbled chunked encoding, a client
        # gone mid-body): the request's fault, answered as one, never as a 500.
        raise BadRequest("the body could not be read as sent (bad chunked encoding?)") from None


class AuditRequest(Request):
    """Flask's request, but a body the server cannot read is a 400, whoever reads it."""

    def get_data(self, *args: Any, **kwargs: Any) -> Any:
        with _unreadable_is_bad_request():
            return super().get_data(*args, **kwargs)

    def _load_form_data(self) -> None:
        with _unreadable_is_bad_request():
            super()._load_form_data()


def body_bytes() -> bytes:
    """The whole body, or RequestEntityTooLarge (413) when it is over MAX_CONTENT_LENGTH.

    werkzeug refuses a Content-Length over the limit up front. A chunked body (the server
    marks the input terminated) has no length to check, and werkzeug's stream then stops
    quietly at the limit, as if the body ended there. So let it read one byte more: a body
    that reaches it is over the limit.
    """
    limit = request.max_content_length
    length = request.content_length
    if length is not None and limit is not None and length <= limit:
        # What nearly every request is: one read of the length it announced, straight
        # from the server's stream (werkzeug's wrapped stream cost 20 us a request more).
        # A client gone early leaves it short: a body that is not JSON, a 400.
        with _unreadable_is_bad_request():
            data: bytes = request.environ["wsgi.input"].read(length)
        return data
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
