"""What the run checks besides speed: every answer 2xx, no acknowledged event lost.

A Ledger per server collects what every load against it sent and got back; after the
load, the server's export is read and every acknowledged id must be in it, with `seq`
1..N without a gap and each `prev_hash` the `hash` before it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.load import LoadResult

GENESIS = "0" * 64


@dataclass
class Ledger:
    """Everything sent to one server: counts of answers and the ids it acknowledged."""

    backend: str
    server: str
    requests: int = 0
    non_2xx: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    transport_errors: int = 0
    bad_acks: int = 0
    wrong_results: list[str] = field(default_factory=list)
    acked: set[str] = field(default_factory=set)
    load_notes: list[str] = field(default_factory=list)

    def add(self, result: LoadResult) -> None:
        self.requests += result.requests
        self.non_2xx += result.non_2xx
        for status, n in result.statuses.items():
            self.statuses[status] = self.statuses.get(status, 0) + n
        self.transport_errors += result.transport_errors
        self.bad_acks += result.bad_acks
        self.acked.update(result.acked_ids)

    def add_acked(self, ids: Iterable[str]) -> None:
        self.acked.update(ids)


@dataclass
class ExportCheck:
    """What the export held, against what was acknowledged."""

    exported: int
    lost: int
    lost_examples: list[str]
    seq_problems: int
    chain_problems: int
    first_problem: str | None

    @property
    def ok(self) -> bool:
        return self.lost == 0 and self.seq_problems == 0 and self.chain_problems == 0


def check_export(path: Path, acked: set[str]) -> ExportCheck:
    """Read an NDJSON export: which acknowledged ids are missing; is seq/chain contiguous."""
    seen: set[str] = set()
    seq_problems = chain_problems = 0
    first_problem: str | None = None
    expected_seq, prev = 1, GENESIS
    with path.open("rb") as export:
        for line in export:
            doc = orjson.loads(line)
            seen.add(doc["id"])
            if doc["seq"] != expected_seq:
                seq_problems += 1
                first_problem = first_problem or f"seq {doc['seq']} where {expected_seq} was due"
            if doc["prev_hash"] != prev:
                chain_problems += 1
                first_problem = (
                    first_problem or f"prev_hash of seq {doc['seq']} is not the hash before"
                )
            expected_seq, prev = doc["seq"] + 1, doc["hash"]
    missing = acked - seen
    return ExportCheck(
        exported=len(seen),
        lost=len(missing),
        lost_examples=sorted(missing)[:5],
        seq_problems=seq_problems,
        chain_problems=chain_problems,
        first_problem=first_problem,
    )
