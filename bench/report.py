"""The one table of results, as text, markdown and JSON."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    """One figure of ours beside its baseline. ratio = ours / baseline."""

    section: str
    backend: str
    measurement: str
    ours: float
    unit: str
    baseline_name: str
    baseline: float | None
    notes: str = ""
    status: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0 or math.isnan(self.ours):
            return None
        return self.ours / self.baseline

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "ratio": self.ratio}


def _number(value: float | None, unit: str) -> str:
    if value is None or math.isnan(value):
        return "-"
    if unit == "ms":
        return f"{value:.2f} ms" if value < 100 else f"{value:.0f} ms"
    if unit == "MiB":
        return f"{value:.1f} MiB"
    if unit in ("count", ""):
        return f"{value:,.0f}"
    return f"{value:,.0f} {unit}"


def _cells(row: Row) -> list[str]:
    ratio = row.ratio
    return [
        row.section,
        row.backend,
        row.measurement,
        _number(row.ours, row.unit),
        row.baseline_name,
        _number(row.baseline, row.unit),
        "-" if ratio is None else (f"{ratio:.3f}" if ratio < 10 else f"{ratio:.1f}"),
        " ".join(part for part in (row.status, row.notes) if part),
    ]


HEADERS = ["#", "backend", "measurement", "ours", "baseline", "baseline value", "ratio", "notes"]


def markdown_table(rows: list[Row]) -> str:
    """A markdown table whose columns line up, so it also reads as plain text."""
    body = [_cells(r) for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in body)) for i, h in enumerate(HEADERS)]
    numeric = {3, 5, 6}

    def line(cells: list[str]) -> str:
        padded = [
            c.rjust(w) if i in numeric else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ]
        return "| " + " | ".join(padded) + " |"

    rule = (
        "|"
        + "|".join(
            "-" * (w + 1) + ":" if i in numeric else "-" * (w + 2) for i, w in enumerate(widths)
        )
        + "|"
    )
    return "\n".join([line(HEADERS), rule, *(line(c) for c in body)])


def write_results(
    out: Path, stem: str, meta: dict[str, Any], rows: list[Row], text: str
) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out / f"{stem}.json", out / f"{stem}.md"
    json_path.write_text(
        json.dumps({"meta": meta, "rows": [r.to_json() for r in rows]}, indent=2, default=str)
        + "\n"
    )
    md_path.write_text(text + "\n")
    return [json_path, md_path]
