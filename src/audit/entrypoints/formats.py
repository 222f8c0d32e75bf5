"""How events and tokens are written out: shared by the HTTP API and the command line."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import orjson

from audit.domain.errors import AuditError, Problem, ValidationFailed
from audit.domain.events import EventJson
from audit.domain.shapes import EVENT
from audit.domain.time import format_time
from audit.domain.tokens import Token

# One column per field of the returned event, in its order (audit.domain.shapes).
CSV_COLUMNS = EVENT.names


def json_bytes(document: Any) -> bytes:
    return orjson.dumps(document)


def problem_document(problem: Problem) -> dict[str, Any]:
    """One entry of `details`: `index` only when the problem belongs to a batch item."""
    doc: dict[str, Any] = {}
    if problem.index is not None:
        doc["index"] = problem.index
    doc["field"] = problem.field
    doc["message"] = problem.message
    return doc


def error_document(exc: AuditError, max_details: int | None = None) -> dict[str, Any]:
    """The error body every transport gives: `{"error": {"code", "message", "details"?}}`,
    with at most `max_details` details when a bound is given."""
    error: dict[str, Any] = {"code": exc.code, "message": exc.message}
    if isinstance(exc, ValidationFailed):
        error["details"] = [problem_document(p) for p in exc.problems[:max_details]]
    return {"error": error}


def ndjson_lines(events: Iterable[EventJson]) -> Iterator[bytes]:
    """One event document per line, exactly as the API returns it."""
    for event in events:
        yield event.json + b"\n"


# A spreadsheet runs a cell starting with one of these as a formula (OWASP's list for
# CSV injection): such a cell is written with a leading ', so it shows as the text it is.
FORMULA_STARTS = frozenset("=+-@\t\r")


def csv_row(cells: Iterable[Any]) -> str:
    """One CSV record (RFC 4180, CRLF-terminated), formulas defused.

    Exactly what the stdlib's `csv.writer(f)` (excel dialect, QUOTE_MINIMAL) writes for
    the cells after defusing: None is an empty cell, any other non-string its str(); a
    cell starting with one of FORMULA_STARTS gets a leading '; a cell holding a comma, a
    quote, a CR or a LF is quoted, its quotes doubled. (csv.writer walks every character
    in Python's C loop: on an export it cost more than all the rest of a row.
    tests/unit/test_formats.py holds the two to the same text.)
    """
    out = []
    for cell in cells:
        if cell is None:
            out.append("")
            continue
        text = cell if isinstance(cell, str) else str(cell)
        if text and text[0] in FORMULA_STARTS:
            text = "'" + text
        if '"' in text:
            text = '"' + text.replace('"', '""') + '"'
        elif "," in text or "\n" in text or "\r" in text:
            text = '"' + text + '"'
        out.append(text)
    if len(out) == 1 and not out[0]:
        out[0] = '""'  # csv.writer's one empty cell, so that the line is not blank
    return ",".join(out) + "\r\n"


_NESTED = (dict, list)  # written as JSON in a CSV cell


def csv_lines(events: Iterable[EventJson]) -> Iterator[bytes]:
    """A header row, then one row per event; nested fields as JSON."""
    yield csv_row(CSV_COLUMNS).encode("utf-8")
    dumps = orjson.dumps
    loads = orjson.loads
    for event in events:
        doc = loads(event.json)  # the document, as the API returns it
        yield csv_row(
            [
                dumps(value).decode("utf-8") if isinstance(value, _NESTED) else value
                for value in map(doc.__getitem__, CSV_COLUMNS)
            ]
        ).encode("utf-8")


# An export goes out in pieces of about this many bytes, not a line at a time: the server
# sends a piece as one chunked-encoding frame and one send, the CLI as one write, where it
# was one of each per event.
EXPORT_PIECE_BYTES = 64 * 1024


def in_pieces(lines: Iterable[bytes], size: int = EXPORT_PIECE_BYTES) -> Iterator[bytes]:
    """Consecutive lines joined into pieces of `size` bytes or a little more (the last one
    may be shorter): the same bytes in all, one piece held at a time, and no empty piece
    (which a chunked response would take for its end).
    """
    piece: list[bytes] = []
    held = 0
    for line in lines:
        piece.append(line)
        held += len(line)
        if held >= size:
            yield b"".join(piece)
            piece.clear()
            held = 0
    if held:
        yield b"".join(piece)


def ndjson_export(events: Iterable[EventJson]) -> Iterator[bytes]:
    """ndjson_lines, in pieces."""
    return in_pieces(ndjson_lines(events))


def csv_export(events: Iterable[EventJson]) -> Iterator[bytes]:
    """csv_lines, in pieces."""
    return in_pieces(csv_lines(events))


EXPORT_FORMATS = {
    "ndjson": ("application/x-ndjson", ndjson_export),
    "csv": ("text/csv; charset=utf-8", csv_export),
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
