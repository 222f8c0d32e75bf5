"""`audit verify-proof` and `audit verify-export` as an auditor runs them: separate processes,
files made by the service's own use cases, no database and no network."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.integration.server.support import audit_command, run_audit

from audit.container import Container, build_container
from audit.domain.query import parse_filter
from audit.domain.validation import parse_batch
from audit.entrypoints.formats import json_bytes, ndjson_lines
from audit.settings import Settings

ORIGIN_PREFIX = "example.org/audit"
TENANT = "acme"
ORIGIN = f"{ORIGIN_PREFIX}/{TENANT}"
EVENTS = 13  # not a power of two: proofs have inner and border hashes


def _container(key_file: Path) -> Container:
    return build_container(
        Settings(database_url="memory://", log_origin=ORIGIN_PREFIX, signing_key_file=str(key_file))
    )


def _record(container: Container, count: int, start: int = 0) -> None:
    container.record_events()(
        TENANT,
        parse_batch(
            [
                {
                    "id": f"evt-{n}",
                    "action": "document.update",
                    "actor": {"id": f"user-{n % 3}", "name": "Zoë"},
                    "metadata": {"n": n, "ratio": 0.5},
                }
                for n in range(start, start + count)
            ]
        ),
    )


class Log:
    """A tenant's log on the in-memory adapter, and the files an auditor would hold."""

    def __init__(self, folder: Path, key_name: str = "k") -> None:
        self.folder = folder
        self.container = _container(folder / key_name)
        _record(self.container, EVENTS)
        self.vkey = self.container.signer().vkey

    def event(self, n: int) -> dict[str, Any]:
        found = self.container.get_event()(TENANT, f"evt-{n}")
        return dict(json.loads(json_bytes(found.to_document())))

    def proof(self, n: int, size: int | None = None) -> dict[str, Any]:
        proof = self.container.prove_inclusion()(TENANT, f"evt-{n}", size)
        return {
            "leaf_index": proof.leaf_index,
            "tree_size": proof.tree_size,
            "hashes": [base64.b64encode(h).decode() for h in proof.hashes],
            "checkpoint": proof.checkpoint,
        }

    def checkpoint(self, size: int | None = None) -> str:
        note: str = self.container.sign_checkpoint()(TENANT, size)
        return note

    def export_lines(self) -> list[bytes]:
        events = self.container.export_events()(TENANT, parse_filter({}))
        return list(ndjson_lines(events))

    def write(self, name: str, content: Any) -> str:
        path = self.folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        elif isinstance(content, str):
            path.write_text(content, encoding="utf-8")
        else:
            path.write_text(json.dumps(content), encoding="utf-8")
        return str(path)


@pytest.fixture
def log(tmp_path: Path) -> Log:
    return Log(tmp_path)


def _fails(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 1, one `Error:` sentence on stderr naming the problem, never a traceback."""
    assert done.returncode == 1, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])


def _verify_proof(
    log: Log, event: Any, proof: Any, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_audit(
        "verify-proof",
        "--vkey",
        log.vkey,
        *extra,
        log.write("event.json", event),
        log.write("proof.json", proof),
    )


def test_help() -> None:
    for command in ("verify-proof", "verify-export", "monitor"):
        done = run_audit(command, "--help")
        assert done.returncode == 0, done.stderr
        assert "Usage:" in done.stdout
        assert "--vkey" in done.stdout


def test_verify_proof_accepts_a_genuine_proof(log: Log) -> None:
    checkpoint = log.checkpoint()
    root = checkpoint.splitlines()[2]
    for n in (0, 6, EVENTS - 1):
        done = _verify_proof(log, log.event(n), log.proof(n), "--origin", ORIGIN)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"OK: event seq {n + 1} ")
        assert f"tree of size {EVENTS} with root {root}" in done.stdout
        assert len(done.stdout.splitlines()) == 1


def test_verify_proof_takes_the_key_from_a_file_and_an_earlier_tree(log: Log) -> None:
    key_file = log.write("audit.vkey", log.vkey + "\n")
    done = run_audit(
        "verify-proof",
        "--vkey",
        key_file,
        log.write("event.json", log.event(2)),
        log.write("proof.json", log.proof(2, size=5)),
    )
    assert done.returncode == 0, done.stderr
    assert "tree of size 5 " in done.stdout


def _flip_bit(proof: dict[str, Any]) -> dict[str, Any]:
    raw = bytearray(base64.b64decode(proof["hashes"][1]))
    raw[7] ^= 0x10
    hashes = [*proof["hashes"]]
    hashes[1] = base64.b64encode(raw).decode()
    return {**proof, "hashes": hashes}


def _edited_root(proof: dict[str, Any]) -> dict[str, Any]:
    lines = proof["checkpoint"].split("\n")
    lines[2] = base64.b64encode(b"\x00" * 32).decode()
    return {**proof, "checkpoint": "\n".join(lines)}


def _other_key_note(log: Log) -> str:
    other = _container(log.folder / "other-key")
    _record(other, EVENTS)
    return other.sign_checkpoint()(TENANT)  # type: ignore[no-any-return]


Forgery = Callable[[Log, dict[str, Any], dict[str, Any]], tuple[Any, Any]]

FORGERIES: dict[str, tuple[Forgery, str]] = {
    "flipped bit in a proof hash": (lambda _, e, p: (e, _flip_bit(p)), "does not lead to the root"),
    "extra hash": (
        lambda _, e, p: (e, {**p, "hashes": [*p["hashes"], p["hashes"][0]]}),
        "expected",
    ),
    "missing hash": (lambda _, e, p: (e, {**p, "hashes": p["hashes"][:-1]}), "expected"),
    "wrong leaf_index": (lambda _, e, p: (e, {**p, "leaf_index": 5}), "leaf 5"),
    "wrong tree_size": (lambda _, e, p: (e, {**p, "tree_size": EVENTS + 1}), "size"),
    "edited event field": (
        lambda _, e, p: ({**e, "action": "document.delete"}, p),
        "does not match its content",
    ),
    "edited metadata": (lambda _, e, p: ({**e, "metadata": {"n": 99}}, p), "content"),
    "event of another seq": (lambda log, _, p: (log.event(4), p), "leaf"),
    "note signed by another key": (
        lambda log, e, p: (e, {**p, "checkpoint": _other_key_note(log)}),
        "no signature by key",
    ),
    "note with an edited root": (lambda _, e, p: (e, _edited_root(p)), "invalid signature"),
}


@pytest.mark.parametrize("name", sorted(FORGERIES))
def test_verify_proof_refuses_a_forgery(log: Log, name: str) -> None:
    forge, words = FORGERIES[name]
    event, proof = forge(log, log.event(6), log.proof(6))
    _fails(_verify_proof(log, event, proof), "the proof does not verify", words)


def test_verify_proof_refuses_a_wrong_key_or_origin(log: Log, tmp_path: Path) -> None:
    other = Log(tmp_path, key_name="other-key").vkey
    event, proof = log.write("event.json", log.event(3)), log.write("proof.json", log.proof(3))
    _fails(run_audit("verify-proof", "--vkey", other, event, proof), "no signature by key")
    _fails(
        run_audit(
            "verify-proof", "--vkey", log.vkey, "--origin", "example.org/audit/evil", event, proof
        ),
        "expected 'example.org/audit/evil'",
    )


@pytest.mark.parametrize(
    ("event", "proof", "words"),
    [
        (b"{not json", None, "the event file"),
        (b"", None, "not valid JSON"),
        (b"\xff\xfe{}", None, "not UTF-8"),
        (b"[1, 2]", None, "not a JSON object"),
        (b'{"seq": 1, "seq": 2}', None, "repeated key"),
        (b'{"seq": NaN}', None, "NaN"),
        (None, b"{", "the proof file"),
        (None, b'"proof"', "not a JSON object"),
        (None, {"leaf_index": 6}, "integers"),
        (None, {"leaf_index": "6", "tree_size": 13, "hashes": [], "checkpoint": ""}, "integers"),
        (None, "hashes not base64", "base64"),
        (None, "hashes not a list", "list"),
        (None, "checkpoint garbage", "malformed"),
        (None, "checkpoint missing", "checkpoint"),
        ("event without hash", None, "hash"),
        ("event with an unrepresentable number", None, "canonicalised"),
    ],
)
def test_verify_proof_refuses_malformed_files(log: Log, event: Any, proof: Any, words: str) -> None:
    good_event, good_proof = log.event(6), log.proof(6)
    altered = {
        "hashes not base64": {**good_proof, "hashes": ["!!!", *good_proof["hashes"][1:]]},
        "hashes not a list": {**good_proof, "hashes": "abc"},
        "checkpoint garbage": {**good_proof, "checkpoint": "no note here"},
        "checkpoint missing": {k: v for k, v in good_proof.items() if k != "checkpoint"},
        "event without hash": {k: v for k, v in good_event.items() if k != "hash"},
        "event with an unrepresentable number": {**good_event, "metadata": {"n": 2**60}},
    }
    event = altered.get(event, event) if isinstance(event, str) else event
    proof = altered.get(proof, proof) if isinstance(proof, str) else proof
    _fails(
        _verify_proof(
            log, good_event if event is None else event, good_proof if proof is None else proof
        ),
        words,
    )


def test_verify_proof_refuses_a_malformed_key(log: Log) -> None:
    event, proof = log.write("event.json", log.event(1)), log.write("proof.json", log.proof(1))
    _fails(run_audit("verify-proof", "--vkey", "nonsense", event, proof), "--vkey")
    bad = log.vkey[:-4] + "AAAA"
    _fails(run_audit("verify-proof", "--vkey", bad, event, proof), "--vkey")


def test_verify_proof_missing_file_is_a_usage_error(log: Log) -> None:
    done = run_audit("verify-proof", "--vkey", log.vkey, "nope.json", "nope2.json")
    assert done.returncode == 2
    assert "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


# -- verify-export ---------------------------------------------------------------------


def _verify_export(
    log: Log, lines: list[bytes], checkpoint: str | None = None, *extra: str
) -> subprocess.CompletedProcess[str]:
    return run_audit(
        "verify-export",
        "--vkey",
        log.vkey,
        "--checkpoint",
        log.write("checkpoint", checkpoint or log.checkpoint()),
        *extra,
        log.write("export.ndjson", b"".join(lines)),
    )


def test_verify_export_accepts_a_whole_export(log: Log) -> None:
    done = _verify_export(log, log.export_lines(), None, "--origin", ORIGIN)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"OK: events 1 to {EVENTS} match the checkpoint of {ORIGIN}")
    assert "not covered" not in done.stdout


def test_verify_export_reports_events_after_the_checkpoint_as_not_covered(log: Log) -> None:
    checkpoint = log.checkpoint()
    _record(log.container, 4, start=100)
    done = _verify_export(log, log.export_lines(), checkpoint)
    assert done.returncode == 0, done.stderr
    assert f"events 1 to {EVENTS} match" in done.stdout
    assert f"4 later events (seq {EVENTS + 1} to {EVENTS + 4})" in done.stdout
    assert "not covered by this checkpoint" in done.stdout


def test_verify_export_reads_standard_input(log: Log) -> None:
    done = subprocess.run(
        audit_command(
            "verify-export",
            "--vkey",
            log.vkey,
            "--checkpoint",
            log.write("cp", log.checkpoint()),
            "-",
        ),
        input=b"".join(log.export_lines()),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def _removed(lines: list[bytes]) -> list[bytes]:
    return lines[:4] + lines[5:]


def _edited(lines: list[bytes]) -> list[bytes]:
    event = json.loads(lines[4])
    event["actor"]["name"] = "Mallory"
    return [*lines[:4], json_bytes(event) + b"\n", *lines[5:]]


def _reordered(lines: list[bytes]) -> list[bytes]:
    return [*lines[:4], lines[5], lines[4], *lines[6:]]


def _rechained(lines: list[bytes]) -> list[bytes]:
    """Edit seq 5 and recompute every later hash: a consistent chain, a different tree."""
    from audit.verify import GENESIS, event_hash

    out, prev = [], GENESIS
    for n, line in enumerate(lines):
        event = json.loads(line)
        if n == 4:
            event["description"] = "nothing happened"
        event["prev_hash"] = prev
        event["hash"] = prev = event_hash(prev, event)
        out.append(json_bytes(event) + b"\n")
    return out


@pytest.mark.parametrize(
    ("alter", "words"),
    [
        (_removed, "at seq 5: expected seq 5, found seq 6"),
        (_edited, "at seq 5: the hash of seq 5 does not match its content"),
        (_reordered, "at seq 5: expected seq 5, found seq 6"),
        (
            lambda lines: lines[:9],
            f"at seq 10: the export ends after 9 events but the checkpoint covers {EVENTS}",
        ),
        (lambda lines: lines[1:], "at seq 1"),
        (_rechained, "Merkle root of events 1 to 13 does not match the signed checkpoint"),
        (lambda lines: [*lines[:3], b"{oops\n", *lines[3:]], "at seq 4: line 4: not valid JSON"),
        (lambda lines: [*lines[:3], b"\xff\n", *lines[3:]], "not UTF-8"),
    ],
)
def test_verify_export_refuses_an_altered_export(
    log: Log, alter: Callable[[list[bytes]], list[bytes]], words: str
) -> None:
    _fails(_verify_export(log, alter(log.export_lines())), "the export does not verify", words)


def test_verify_export_refuses_a_bad_checkpoint(log: Log, tmp_path: Path) -> None:
    lines = log.export_lines()
    _fails(_verify_export(log, lines, _other_key_note(log)), "checkpoint does not verify")
    _fails(_verify_export(log, lines, "garbage\n"), "checkpoint does not verify", "malformed")
    _fails(
        _verify_export(log, lines, None, "--origin", "example.org/audit/other"),
        "checkpoint does not verify",
        "origin",
    )
    other = Log(tmp_path, key_name="other-key")
    done = run_audit(
        "verify-export",
        "--vkey",
        other.vkey,
        "--checkpoint",
        log.write("checkpoint", log.checkpoint()),
        log.write("export.ndjson", b"".join(lines)),
    )
    _fails(done, "no signature by key")


def test_verify_export_of_another_log_under_the_same_key_fails(log: Log) -> None:
    twin = _container(log.folder / "k")  # the same key file: the same signer
    _record(twin, EVENTS, start=500)
    forged = list(ndjson_lines(twin.export_events()(TENANT, parse_filter({}))))
    _fails(_verify_export(log, forged, log.checkpoint()), "Merkle root of events 1 to 13")


def test_the_verifier_and_the_monitor_stand_alone() -> None:
    """An auditor can install and read audit.verify without the service's web or SQL stack."""
    code = (
        "import sys, audit.verify, audit.verify.monitor\n"
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'flask', 'sqlalchemy', "
        "'werkzeug', 'dependency_injector', 'requests'})\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
