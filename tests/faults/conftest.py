"""The fault suite: run by `make test-faults` (and CI), skipped by a plain `make test`.

Each case records a row (case, tried, survived, lost); the table is printed at the end.
"""

from __future__ import annotations

import os

import pytest
from tests.faults.support import LEDGER, table

ENABLE_ENV = "AUDIT_FAULT_SUITE"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get(ENABLE_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"the fault suite runs with `make test-faults` ({ENABLE_ENV}=1)")
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not LEDGER:
        return
    terminalreporter.section("fault suite")
    for line in table(LEDGER):
        terminalreporter.write_line(line)
