"""The verifiable log end to end: real `audit serve` processes, and an auditor's commands
(`verify-proof`, `verify-export`, `monitor`) run against what they answer."""

from __future__ import annotations

import base64
import json
import sqlite3
import subprocess
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from tests.integration.server.support import (
    Server,
    bearer,
    event,
    free_port,
    run_audit,
    sqlite_backup,
    sqlite_path,
    sqlite_replace,
)

from audit.verify import open_checkpoint, parse_vkey, verify_consistency, verify_event_inclusion

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("server")]

ORIGIN = "localhost/audit/default"  # the default origin prefix and the bootstrap tenant


def post(server: Server, token: str, body: Any) -> requests.Response:
    response = requests.post(
        f"{server.url}/v1/events", json=body, headers=bearer(token), timeout=30
    )
    assert response.status_code == 201, response.text
    return response


def post_many(server: Server, token: str, first: int, count: int) -> None:
    for start in range(first, first + count, 1000):  # a batch holds at most 1000
        end = min(start + 1000, first + count)
        post(server, token, {"events": [event(n) for n in range(start, end)]})


def get(server: Server, token: str, path: str) -> requests.Response:
    response = requests.get(f"{server.url}{path}", headers=bearer(token), timeout=30)
    assert response.status_code == 200, (path, response.text)
    return response


def vkey_of(server: Server) -> str:
    response = requests.get(f"{server.url}/v1/public-key", timeout=10)
    assert response.status_code == 200, response.text
    return str(response.json()["vkey"])


def _fails(done: subprocess.CompletedProcess[str], status: int, *words: str) -> str:
    """The command failed with `status` and one sentence on stderr holding `words`."""
    assert done.returncode == status, (done.returncode, done.stdout, done.stderr)
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: "), done.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# -- proofs under concurrent writes ------------------------------------------------------


def test_proofs_and_checkpoints_of_concurrent_writes_verify_offline(
    start_server: Any, tmp_path: Path
) -> None:
    server = start_server(workers=2, threads=4)
    token = server.bootstrap_token
    verifier = parse_vkey(vkey_of(server))
    post_many(server, token, 0, 5)

    refused: list[str] = []

    def write(worker: int) -> None:
        session = requests.Session()
        for i in range(12):
            base = 1000 * (worker + 1) + 50 * i
            body: Any = (
                {"events": [event(base + k) for k in range(8)]} if i % 3 == 0 else event(base)
            )
            response = session.post(
                f"{server.url}/v1/events", json=body, headers=bearer(token), timeout=30
            )
            if response.status_code != 201:
                refused.append(response.text)

    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for thread in writers:
        thread.start()
    # Two checkpoints taken while the writers run: the later must extend the earlier.
    notes = []
    for n in range(2):
        post(server, token, event(900 + n))
        notes.append(get(server, token, "/v1/checkpoint").text)
    for thread in writers:
        thread.join(timeout=50)
        assert not thread.is_alive()
    assert not refused, refused[:3]
    notes.append(get(server, token, "/v1/checkpoint").text)
    first, second, final = (open_checkpoint(n, verifier, ORIGIN) for n in notes)
    total = 5 + 4 * (4 * 8 + 8) + 2
    assert final.size == total
    assert 5 < first.size < second.size <= final.size

    for old, new in ((first, second), (first, final), (second, final)):
        if old.size < new.size:
            answer = get(server, token, f"/v1/consistency?first={old.size}&second={new.size}")
            proof = [base64.b64decode(h) for h in answer.json()["hashes"]]
            verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)

    # Every event is in the final tree, and every one the first checkpoint held is in it too.
    events = [
        json.loads(line)
        for line in get(server, token, "/v1/export?format=ndjson").text.splitlines()
    ]
    assert [e["seq"] for e in events] == list(range(1, total + 1))
    for doc in events:
        proof = get(server, token, f"/v1/events/{doc['id']}/proof").json()
        assert verify_event_inclusion(doc, proof, verifier, ORIGIN) == final
        if doc["seq"] <= first.size:
            early = get(server, token, f"/v1/events/{doc['id']}/proof?size={first.size}").json()
            assert verify_event_inclusion(doc, early, verifier, ORIGIN) == first

    # The auditor's command, as a user runs it, on a few of them.
    key_file = tmp_path / "audit.vkey"
    key_file.write_text(verifier.vkey + "\n")
    for doc in (events[0], events[first.size - 1], events[-1]):
        (tmp_path / "event.json").write_text(json.dumps(doc))
        (tmp_path / "proof.json").write_text(
            get(server, token, f"/v1/events/{doc['id']}/proof").text
        )
        done = run_audit(
            "verify-proof",
            "--vkey",
            str(key_file),
            "--origin",
            ORIGIN,
            str(tmp_path / "event.json"),
            str(tmp_path / "proof.json"),
        )
        assert done.returncode == 0, done.stderr
        assert f"OK: event seq {doc['seq']} " in done.stdout
        assert f"tree of size {total} " in done.stdout

    # An event edited after the fact no longer matches its own proof.
    edited = {**events[3], "outcome": "failure"}
    (tmp_path / "event.json").write_text(json.dumps(edited))
    (tmp_path / "proof.json").write_text(
        get(server, token, f"/v1/events/{edited['id']}/proof").text
    )
    done = run_audit(
        "verify-proof",
        "--vkey",
        verifier.vkey,
        str(tmp_path / "event.json"),
        str(tmp_path / "proof.json"),
    )
    _fails(done, 1, "does not match its content")


# -- the monitor -------------------------------------------------------------------------


def monitor(
    server: Server | str, state: Path, token: str | None, *extra: str
) -> subprocess.CompletedProcess[str]:
    url = server if isinstance(server, str) else server.url
    env = {"AUDIT_MONITOR_TOKEN": token} if token else {}
    return run_audit("monitor", "--url", url, "--state", str(state), *extra, env=env)


def passes(done: subprocess.CompletedProcess[str], *words: str) -> None:
    assert done.returncode == 0, (done.stdout, done.stderr)
    assert done.stdout.startswith("OK: "), done.stdout
    for word in words:
        assert word in done.stdout, (word, done.stdout)


def test_monitor_passes_while_the_log_grows_and_fails_after_a_rollback(
    start_server: Any, tmp_path: Path
) -> None:
    server = start_server()
    token = server.bootstrap_token
    state = tmp_path / "monitor"
    database = sqlite_path(server.database_url)
    post_many(server, token, 0, 10)
    sqlite_backup(database, tmp_path / "at-10.db")

    passes(monitor(server, state, token), "first run: trusting key", f"{ORIGIN} at size 10")
    assert (state / "vkey").read_text().strip() == vkey_of(server)
    passes(monitor(server, state, token), "unchanged at size 10")

    # Growing while the monitor runs, again and again.
    stop = threading.Event()
    refused: list[str] = []

    def keep_writing() -> None:
        n = 100
        while not stop.is_set():
            body = {"events": [event(k) for k in range(n, n + 3)]}
            response = requests.post(
                f"{server.url}/v1/events", json=body, headers=bearer(token), timeout=30
            )
            if response.status_code != 201:
                refused.append(response.text)
            n += 3
            stop.wait(0.02)

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        for _ in range(3):
            passes(monitor(server, state, token), "grew from", "consistent with the kept")
    finally:
        stop.set()
        writer.join(timeout=30)
    assert not refused, refused[:3]
    passes(monitor(server, state, token))
    kept = (state / "checkpoint").read_text()
    seen = open_checkpoint(kept, parse_vkey(vkey_of(server))).size
    assert seen > 10

    # The operator puts back the copy of the database at 10 events: the log is cut short.
    server.stop()
    sqlite_replace(database, tmp_path / "at-10.db")
    server = start_server(server.database_url)
    assert get(server, token, "/v1/verify").json()["valid"]  # the chain alone looks fine
    alert = _fails(
        monitor(server, state, token),
        1,
        "ALERT",
        "truncated or rolled back",
        f"fewer than the {seen}",
    )
    assert "conflicting.checkpoint" in alert
    # ... and grows it past its old size with new events: the kept checkpoint still tells.
    post_many(server, token, 5000, seen - 10 + 5)
    _fails(
        monitor(server, state, token),
        1,
        "rewritten",
        f"does not extend the kept checkpoint of {seen}",
    )
    _fails(monitor(server, state, token), 1, "rewritten")  # it stays alarmed
    assert (state / "checkpoint").read_text() == kept  # and keeps what it had seen


def test_monitor_fails_on_another_log_under_the_same_key(start_server: Any, tmp_path: Path) -> None:
    server = start_server()
    token = server.bootstrap_token
    state = tmp_path / "monitor"
    post_many(server, token, 0, 12)
    passes(monitor(server, state, token), "at size 12")
    kept = (state / "checkpoint").read_text()

    # A fresh database, the same signing key (it lives beside, not in, the database).
    server.stop()
    sqlite_replace(sqlite_path(server.database_url), None)
    server = start_server(server.database_url)
    new_token = server.bootstrap_token
    assert new_token
    assert new_token != token
    assert (state / "vkey").read_text().strip() == vkey_of(server)
    post_many(server, new_token, 700, 12)
    _fails(monitor(server, state, new_token), 1, "rewritten", "the root of its 12 events changed")
    post_many(server, new_token, 800, 8)
    _fails(
        monitor(server, state, new_token),
        1,
        "rewritten",
        "tree of 20 events does not extend the kept checkpoint of 12",
    )
    assert (state / "checkpoint").read_text() == kept
    evidence = (state / "conflicting.checkpoint").read_text()
    assert open_checkpoint(evidence, parse_vkey(vkey_of(server)), ORIGIN).size == 12


def test_monitor_fails_when_the_key_changes_and_cannot_check_without_access(
    start_server: Any, tmp_path: Path
) -> None:
    server = start_server()
    token = server.bootstrap_token
    post_many(server, token, 0, 3)
    state = tmp_path / "monitor"
    passes(monitor(server, state, token))
    trusted = vkey_of(server)

    # Exit 2: it could not check, and says why; the state is untouched.
    kept = (state / "checkpoint").read_text()
    _fails(
        monitor(server, state, "als_not-a-real-token-at-all-000000"), 2, "refused the token", "401"
    )
    write_only = requests.post(
        f"{server.url}/v1/tokens",
        json={"name": "writer", "scopes": ["events:write"]},
        headers=bearer(token),
        timeout=10,
    ).json()["token"]
    _fails(monitor(server, state, write_only), 2, "refused the token", "403")
    _fails(monitor(f"http://127.0.0.1:{free_port()}", state, token), 2, "cannot reach")
    _fails(monitor(server, tmp_path / "monitor" / "checkpoint", token), 2, "state folder")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "vkey").write_text("not a key\n")
    _fails(monitor(server, tmp_path / "broken", token), 2, "kept key")
    done = run_audit("monitor", "--url", server.url, "--state", str(state))
    assert done.returncode == 2
    assert "--token" in done.stderr
    assert (state / "checkpoint").read_text() == kept

    # A token of another tenant: another log, not the one this state watches.
    made = run_audit(
        "tokens",
        "create",
        "--database-url",
        server.database_url,
        "--tenant",
        "other",
        "--scope",
        "events:read",
    )
    assert made.returncode == 0, made.stderr
    _fails(monitor(server, state, made.stdout.strip()), 1, "origin 'localhost/audit/other'")
    assert (state / "checkpoint").read_text() == kept

    # The same database served with another signing key, switched on purpose: the kept
    # key no longer signs.
    server.stop()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    moved = Server(
        server.database_url,
        elsewhere,
        env={"AUDIT_SIGNING_KEY_FILE": str(elsewhere / "new.key")},
        options=("--accept-new-signing-key",),
    )
    try:
        assert vkey_of(moved) != trusted
        _fails(monitor(moved, state, token), 1, "signing key changed")
        _fails(
            monitor(moved, tmp_path / "fresh", token, "--vkey", trusted), 1, "signing key changed"
        )
        # An auditor who checked the new key out of band can say so; the log still extends.
        passes(monitor(moved, state, token, "--vkey", vkey_of(moved)), "unchanged at size 3")
        passes(monitor(moved, state, token), "unchanged at size 3")
    finally:
        moved.stop()


# -- exports -----------------------------------------------------------------------------


def test_verify_export_of_a_real_export(start_server: Any, tmp_path: Path) -> None:
    server = start_server()
    token = server.bootstrap_token
    post_many(server, token, 0, 20)
    for n in range(20, 27):
        post(server, token, event(n, description=f"single {n}"))
    key = tmp_path / "audit.vkey"
    key.write_text(vkey_of(server))
    checkpoint = tmp_path / "checkpoint"
    checkpoint.write_text(get(server, token, "/v1/checkpoint").text)
    post_many(server, token, 100, 4)  # after the checkpoint: not covered by it
    lines = get(server, token, "/v1/export?format=ndjson").content.splitlines(keepends=True)
    assert len(lines) == 31

    def verify(name: str, export: list[bytes], *extra: str) -> subprocess.CompletedProcess[str]:
        path = tmp_path / name
        path.write_bytes(b"".join(export))
        return run_audit(
            "verify-export", "--vkey", str(key), "--checkpoint", str(checkpoint), *extra, str(path)
        )

    done = verify("export.ndjson", lines, "--origin", ORIGIN)
    assert done.returncode == 0, done.stderr
    assert f"OK: events 1 to 27 match the checkpoint of {ORIGIN} at size 27" in done.stdout
    assert "4 later events (seq 28 to 31) are chain-checked only" in done.stdout

    edited = json.loads(lines[9])
    edited["metadata"] = {"n": -1}
    forged = {
        "removed": (lines[:9] + lines[10:], "at seq 10: expected seq 10, found seq 11"),
        "edited": (
            [*lines[:9], json.dumps(edited).encode() + b"\n", *lines[10:]],
            "at seq 10: the hash of seq 10 does not match its content",
        ),
        "reordered": (
            [*lines[:9], lines[10], lines[9], *lines[11:]],
            "at seq 10: expected seq 10, found seq 11",
        ),
        "truncated": (lines[:20], "at seq 21: the export ends after 20 events"),
    }
    for name, (export, words) in forged.items():
        _fails(verify(f"{name}.ndjson", export), 1, "the export does not verify", words)


def test_a_log_damaged_in_the_database_is_reported_not_signed(
    start_server: Any, tmp_path: Path
) -> None:
    """Rows removed or made unreadable behind the service's back: verify names the seq,
    the event and the checkpoint answer log_damaged (nothing signed over the hole), and
    the monitor raises the alarm rather than saying it could not check."""
    server = start_server()
    token = server.bootstrap_token
    state = tmp_path / "monitor"
    database = sqlite_path(server.database_url)
    post_many(server, token, 0, 10)
    passes(monitor(server, state, token), "at size 10")
    ninth = get(server, token, "/v1/events?order=asc&limit=10").json()["events"][8]["id"]

    server.stop()
    with sqlite3.connect(database) as db:
        db.execute("UPDATE events SET metadata = '{not json' WHERE seq = 9")
    verified = run_audit("verify", "--database-url", server.database_url)
    assert verified.returncode == 1, verified.stderr
    assert "seq 9" in verified.stdout
    assert "cannot be read" in verified.stdout
    assert "Traceback" not in verified.stdout + verified.stderr
    server = start_server(server.database_url)
    report = get(server, token, "/v1/verify").json()
    assert (report["valid"], report["first_invalid_seq"]) == (False, 9), report
    damaged = requests.get(f"{server.url}/v1/events/{ninth}", headers=bearer(token), timeout=10)
    assert damaged.status_code == 500
    assert damaged.json()["error"]["code"] == "log_damaged"

    server.stop()
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM merkle_nodes")
    server = start_server(server.database_url)
    refused = requests.get(f"{server.url}/v1/checkpoint", headers=bearer(token), timeout=10)
    assert refused.status_code == 500
    assert refused.json()["error"]["code"] == "log_damaged"
    _fails(monitor(server, state, token), 1, "ALERT", "reports its log damaged")
    assert "log is damaged" in server.output()
