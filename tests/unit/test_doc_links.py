"""The README and docs/ link only to files a clone has (no link out of the repository)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "bench/README.md"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_inside_the_repository(document: Path) -> None:
    for target in LINK.findall(document.read_text(encoding="utf-8")):
        assert not re.match(r"[a-z]+:", target), f"{document.name} links out: {target}"
        if target.startswith("#"):
            continue  # an anchor in the document itself
        path = (document.parent / target.split("#")[0]).resolve()
        assert path.is_relative_to(ROOT), f"{document.name} links outside the repository: {target}"
        assert path.exists(), f"{document.name} links to a missing file: {target}"


def test_the_api_reference_is_in_the_repository() -> None:
    assert "docs/API.md" in (ROOT / "README.md").read_text(encoding="utf-8")
    assert (ROOT / "docs" / "API.md").exists()
