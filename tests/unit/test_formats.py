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


def _stdlib_row(cells: list[Any]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(cells)
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
    [[], [""], [None], ["", ""], ["a,b"], ['say "hi"'], ["two\nlines"], ["cr\ronly"], [" pad "]],
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
    expected = b"" if fmt == "ndjson" else b",".join(c.encode() for c in CSV_COLUMNS) + b"\n"
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
