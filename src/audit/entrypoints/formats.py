"""How events and tokens are written out: shared by the HTTP API and the command line."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from audit.domain.events import Event
from audit.domain.time import format_time
from audit.domain.tokens import Token

CSV_COLUMNS = (
    "id",
    "seq",
    "tenant",
    "action",
    "actor",
    "targets",
    "outcome",
    "occurred_at",
    "received_at",
    "source",
    "description",
    "metadata",
    "prev_hash",
    "hash",
)


def json_bytes(document: Any) -> bytes:
    return orjson.dumps(document)


def ndjson_lines(events: Iterable[Event]) -> Iterator[bytes]:
    """One event document per line, exactly as the API returns it."""
    for event in events:
        yield orjson.dumps(event.to_document()) + b"\n"


def csv_lines(events: Iterable[Event]) -> Iterator[bytes]:
    """A header row, then one row per event; nested fields as JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buffer.getvalue().encode("utf-8")
    for event in events:
        buffer.seek(0)
        buffer.truncate()
        doc = event.to_document()
        writer.writerow(
            [
                orjson.dumps(value).decode("utf-8")
                if isinstance(value, dict | list)
                else ("" if value is None else value)
                for value in (doc[column] for column in CSV_COLUMNS)
            ]
        )
        yield buffer.getvalue().encode("utf-8")


EXPORT_FORMATS = {
    "ndjson": ("application/x-ndjson", ndjson_lines),
    "csv": ("text/csv; charset=utf-8", csv_lines),
}


def token_document(token: Token, secret: str | None = None) -> dict[str, Any]:
    """A token as the API shows it; the secret only when it was just made."""

    def when(moment: Any) -> str | None:
        return None if moment is None else format_time(moment)

    doc: dict[str, Any] = {
        "id": token.id,
        "name": token.name,
        "tenant": token.tenant,
        "scopes": sorted(token.scopes),
        "created_at": when(token.created_at),
        "expires_at": when(token.expires_at),
    }
    if secret is not None:
        doc["token"] = secret
    else:
        doc["revoked_at"] = when(token.revoked_at)
        doc["last_used_at"] = when(token.last_used_at)
    return doc
