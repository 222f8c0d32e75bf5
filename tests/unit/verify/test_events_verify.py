"""Hash-chain, inclusion and export verification of events as the API returns them."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.verify.events import (
    GENESIS,
    event_hash,
    verify_chain,
    verify_event_inclusion,
    verify_export,
)
from audit.verify.merkle import (
    ListSubtreeSource,
    VerificationError,
    inclusion_proof,
    leaf_hash,
    tree_root,
)
from audit.verify.note import Checkpoint, Verifier, format_checkpoint, sign_note

KEY_NAME = "localhost/audit"
ORIGIN = "localhost/audit/acme"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VERIFIER = Verifier.from_public_key(KEY_NAME, KEY.public_key())

Event = dict[str, Any]


def content(seq: int) -> Event:
    """An event as the API returns it, less its hashes."""
    return {
        "id": f"evt-{seq}",
        "seq": seq,
        "tenant": "acme",
        "action": "document.update",
        "actor": {"id": "u-1", "type": "user", "name": "Alice"},
        "targets": [{"id": f"doc-{seq}", "type": "document", "name": None}],
        "outcome": "success",
        "occurred_at": "2026-11-28T10:00:00.000000Z",
        "received_at": f"2026-11-28T10:00:{seq % 60:02d}.123456Z",
        "source": {"ip": "203.0.113.5", "user_agent": "curl/8.5"},
        "description": None,
        "metadata": {"ticket": f"OPS-{seq}", "ratio": 0.5, "note": "café"},
    }


def link(contents: list[Event]) -> list[Event]:
    """Chain events with the formula of API.md, computed here independently of audit.verify."""
    events, prev = [], GENESIS
    for body in contents:
        digest = hashlib.sha256(bytes.fromhex(prev) + rfc8785.dumps(body)).hexdigest()
        events.append({**body, "prev_hash": prev, "hash": digest})
        prev = digest
    return events


def log(n: int) -> list[Event]:
    return link([content(seq) for seq in range(1, n + 1)])


def unlinked(event: Event) -> Event:
    return {k: v for k, v in event.items() if k not in ("prev_hash", "hash")}


def leaves(events: list[Event]) -> list[bytes]:
    return [leaf_hash(bytes.fromhex(event["hash"])) for event in events]


def checkpoint_note(
    events: list[Event], size: int, origin: str = ORIGIN, key: Ed25519PrivateKey = KEY
) -> str:
    root = tree_root(ListSubtreeSource(leaves(events)), size)
    return sign_note(format_checkpoint(Checkpoint(origin, size, root)), KEY_NAME, key)


def ndjson(events: list[Event]) -> list[bytes]:
    return [json.dumps(event).encode() + b"\n" for event in events]


# -- the hash of one event ----------------------------------------------------------------


def test_event_hash_follows_the_published_formula() -> None:
    body = {"seq": 1, "action": "a.b", "actor": {"id": "é", "name": None}, "metadata": {"n": 2}}
    # For ASCII keys, integers and strings, RFC 8785 is sorted compact JSON in UTF-8.
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hashlib.sha256(bytes(32) + canonical.encode()).hexdigest()
    assert event_hash(GENESIS, body) == expected
    assert event_hash(GENESIS, {**body, "prev_hash": "x", "hash": "y"}) == expected


def test_event_hash_rejects_a_malformed_prev_hash() -> None:
    with pytest.raises(VerificationError, match="prev_hash"):
        event_hash("ABC", content(1))


def test_event_hash_rejects_what_rfc8785_cannot_represent() -> None:
    with pytest.raises(VerificationError, match="canonicalised"):
        event_hash(GENESIS, {**content(1), "metadata": {"big": 2**60}})


# -- verify_chain -------------------------------------------------------------------------


def test_a_valid_chain() -> None:
    events = log(10)
    report = verify_chain(events)
    assert report.valid
    assert report.checked == 10
    assert report.head is not None
    assert (report.head.seq, report.head.hash) == (10, events[-1]["hash"])
    assert report.first_invalid_seq is None


def test_an_empty_chain_is_valid_without_head() -> None:
    report = verify_chain([])
    assert report.valid
    assert report.checked == 0
    assert report.head is None


def tampered(events: list[Event], how: str) -> list[Event]:
    events = [dict(event) for event in events]
    if how == "altered":
        events[3]["description"] = "nothing to see"
    elif how == "removed":
        del events[3]
    elif how == "reordered":
        events[3], events[4] = events[4], events[3]
    elif how == "duplicated":
        events.insert(4, events[3])
    elif how == "removed and renumbered":
        del events[3]
        for event in events[3:]:
            event["seq"] -= 1
    elif how == "inserted and renumbered":
        # A well-formed event spliced in after seq 3; the later events keep their hashes.
        body = {**content(4), "id": "evt-forged"}
        digest = hashlib.sha256(bytes.fromhex(events[2]["hash"]) + rfc8785.dumps(body))
        forged = [{**body, "prev_hash": events[2]["hash"], "hash": digest.hexdigest()}]
        for event in events[3:]:
            event["seq"] += 1
        events[3:3] = forged
    elif how == "hash edited":
        events[3]["hash"] = "f" * 64
    elif how == "hash in capitals":
        events[3]["hash"] = events[3]["hash"].upper()
    elif how == "prev_hash edited":
        events[3]["prev_hash"] = events[1]["hash"]
    elif how == "genesis edited":
        events[0]["prev_hash"] = "1" * 64
    elif how == "seq as text":
        events[3]["seq"] = "4"
    else:
        raise AssertionError(how)
    return events


@pytest.mark.parametrize(
    ("how", "first_invalid_seq", "reason"),
    [
        ("altered", 4, "hash of seq 4 does not match its content"),
        ("removed", 4, "expected seq 4, found seq 5"),
        ("reordered", 4, "expected seq 4, found seq 5"),
        ("duplicated", 5, "expected seq 5, found seq 4"),
        ("removed and renumbered", 4, "prev_hash of seq 4 is not the hash of seq 3"),
        ("inserted and renumbered", 5, "prev_hash of seq 5 is not the hash of seq 4"),
        ("hash edited", 4, "hash of seq 4 does not match"),
        ("hash in capitals", 4, "not 64 lowercase hex"),
        ("prev_hash edited", 4, "prev_hash of seq 4"),
        ("genesis edited", 1, "genesis"),
        ("seq as text", 4, "expected seq 4, found '4'"),
    ],
)
def test_tampering_is_found_at_the_right_seq(how: str, first_invalid_seq: int, reason: str) -> None:
    report = verify_chain(tampered(log(10), how))
    assert not report.valid
    assert report.first_invalid_seq == first_invalid_seq
    assert report.checked == first_invalid_seq - 1
    assert report.reason is not None
    assert reason in report.reason
    assert report.head is None


def test_a_chain_that_is_not_objects_is_invalid() -> None:
    report = verify_chain([log(1)[0], ["not", "an", "object"]])  # type: ignore[list-item]
    assert (report.valid, report.first_invalid_seq) == (False, 2)


def test_verify_chain_streams_and_stops_at_the_first_break() -> None:
    consumed = 0

    def events() -> Iterator[Event]:
        nonlocal consumed
        for event in tampered(log(50), "altered"):
            consumed += 1
            yield event

    assert verify_chain(events()).first_invalid_seq == 4
    assert consumed == 4


# -- verify_export ------------------------------------------------------------------------


def test_a_complete_export_verifies() -> None:
    events = log(13)
    report = verify_export(ndjson(events), checkpoint_note(events, 13), VERIFIER, ORIGIN)
    assert report.valid
    assert (report.checked, report.covered, report.not_covered) == (13, 13, 0)
    assert report.checkpoint.size == 13
    assert report.head is not None
    assert report.head.seq == 13


def test_events_after_the_checkpoint_are_chain_checked_but_not_covered() -> None:
    events = log(13)
    report = verify_export(ndjson(events), checkpoint_note(events, 9), VERIFIER)
    assert report.valid
    assert (report.checked, report.covered, report.not_covered) == (13, 9, 4)

    edited_late = [dict(event) for event in events]
    edited_late[11]["description"] = "edited after the checkpoint"
    report = verify_export(ndjson(edited_late), checkpoint_note(events, 9), VERIFIER)
    assert (report.valid, report.first_invalid_seq) == (False, 12)


def test_text_lines_and_blank_lines_are_accepted() -> None:
    events = log(5)
    lines = [json.dumps(event) + "\n" for event in events] + ["\n", ""]
    assert verify_export(iter(lines), checkpoint_note(events, 5), VERIFIER).valid


@pytest.mark.parametrize(
    ("how", "first_invalid_seq"),
    [("removed", 4), ("altered", 4), ("reordered", 4), ("removed and renumbered", 4)],
)
def test_a_tampered_export_fails_at_the_right_seq(how: str, first_invalid_seq: int) -> None:
    events = log(10)
    report = verify_export(ndjson(tampered(events, how)), checkpoint_note(events, 10), VERIFIER)
    assert not report.valid
    assert report.first_invalid_seq == first_invalid_seq
    assert report.covered == 0


def test_an_export_truncated_below_the_checkpoint_fails() -> None:
    events = log(10)
    report = verify_export(ndjson(events[:7]), checkpoint_note(events, 10), VERIFIER)
    assert not report.valid
    assert report.checked == 7
    assert report.first_invalid_seq == 8
    assert report.reason is not None
    assert "missing" in report.reason


def test_an_empty_export_of_a_non_empty_checkpoint_fails() -> None:
    events = log(3)
    report = verify_export([], checkpoint_note(events, 3), VERIFIER)
    assert (report.valid, report.first_invalid_seq) == (False, 1)


def test_an_empty_log() -> None:
    assert verify_export([], checkpoint_note([], 0), VERIFIER).valid


def test_a_rewritten_chain_fails_on_the_merkle_root() -> None:
    events = log(10)
    bodies = [unlinked(event) for event in events]
    bodies[1]["description"] = "rewritten, with every hash recomputed"
    rewritten = link(bodies)
    assert verify_chain(rewritten).valid
    report = verify_export(ndjson(rewritten), checkpoint_note(events, 10), VERIFIER)
    assert not report.valid
    assert report.reason is not None
    assert "Merkle root" in report.reason


def test_an_export_of_another_log_fails() -> None:
    events = log(6)
    other = link([{**unlinked(event), "tenant": "other"} for event in events])
    report = verify_export(ndjson(other), checkpoint_note(events, 6), VERIFIER)
    assert not report.valid


def test_the_checkpoint_must_verify() -> None:
    events = log(5)
    note = checkpoint_note(events, 5)
    with pytest.raises(VerificationError, match="origin"):
        verify_export(ndjson(events), note, VERIFIER, "localhost/audit/other")
    with pytest.raises(VerificationError, match="invalid signature"):
        verify_export(ndjson(events), note.replace("\n5\n", "\n4\n", 1), VERIFIER)
    other_key = Ed25519PrivateKey.from_private_bytes(bytes([9] * 32))
    with pytest.raises(VerificationError, match="no signature"):
        verify_export(ndjson(events), checkpoint_note(events, 5, key=other_key), VERIFIER)


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json\n", "not valid JSON"),
        (b"[1, 2]\n", "not a JSON object"),
        (b'{"seq": 1, "seq": 1}\n', "repeated key"),
        (b'{"seq": NaN}\n', "NaN"),
        (b"\xff\n", "not UTF-8"),
    ],
)
def test_lines_that_are_not_events(line: bytes, reason: str) -> None:
    events = log(3)
    report = verify_export([*ndjson(events[:2]), line], checkpoint_note(events, 3), VERIFIER)
    assert not report.valid
    assert report.first_invalid_seq == 3
    assert report.reason is not None
    assert reason in report.reason
    assert "line 3" in report.reason


# -- verify_event_inclusion ---------------------------------------------------------------


def proof_for(events: list[Event], seq: int, size: int) -> dict[str, Any]:
    """The answer of GET /v1/events/{id}/proof."""
    hashes = inclusion_proof(ListSubtreeSource(leaves(events)), seq - 1, size)
    return {
        "leaf_index": seq - 1,
        "tree_size": size,
        "hashes": [base64.b64encode(h).decode() for h in hashes],
        "checkpoint": checkpoint_note(events, size),
    }


@pytest.mark.parametrize("size", [1, 7, 13])
def test_every_event_is_proven_in_its_tree(size: int) -> None:
    events = log(13)
    for seq in range(1, size + 1):
        checkpoint = verify_event_inclusion(
            events[seq - 1], proof_for(events, seq, size), VERIFIER, ORIGIN
        )
        assert checkpoint.size == size


def forge(events: list[Event], how: str) -> tuple[Event, dict[str, Any]]:
    event, proof = dict(events[4]), proof_for(events, 5, 13)
    if how == "edited event":
        event["description"] = "edited"
    elif how == "edited event with recomputed hash":
        event["description"] = "edited"
        event["hash"] = event_hash(event["prev_hash"], event)
    elif how == "wrong leaf index":
        proof["leaf_index"] = 5
    elif how == "proof of another event":
        proof = proof_for(events, 6, 13)
    elif how == "tree size not the checkpoint's":
        proof["tree_size"] = 12
    elif how == "checkpoint of another size":
        proof["checkpoint"] = checkpoint_note(events, 12)
    elif how == "flipped proof hash":
        raw = bytearray(base64.b64decode(proof["hashes"][1]))
        raw[0] ^= 1
        proof["hashes"][1] = base64.b64encode(bytes(raw)).decode()
    elif how == "extra proof hash":
        proof["hashes"].append(proof["hashes"][0])
    elif how == "missing proof hash":
        proof["hashes"].pop()
    elif how == "proof hash not base64":
        proof["hashes"][0] = "***"
    elif how == "checkpoint by another key":
        other = Ed25519PrivateKey.from_private_bytes(bytes([9] * 32))
        proof["checkpoint"] = checkpoint_note(events, 13, key=other)
    elif how == "checkpoint root replaced":
        forged = Checkpoint(ORIGIN, 13, bytes(32))
        unsigned = format_checkpoint(forged)
        signature = proof["checkpoint"].split("\n\n", 1)[1]
        proof["checkpoint"] = unsigned + "\n" + signature
    elif how == "missing checkpoint":
        del proof["checkpoint"]
    elif how == "leaf index as text":
        proof["leaf_index"] = "4"
    else:
        raise AssertionError(how)
    return event, proof


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("edited event", "does not match its content"),
        ("edited event with recomputed hash", "does not lead to the root"),
        ("wrong leaf index", "leaf 5, but event seq 5 is leaf 4"),
        ("proof of another event", "leaf 5, but event seq 5 is leaf 4"),
        ("tree size not the checkpoint's", "size 12, the checkpoint for size 13"),
        ("checkpoint of another size", "size 13, the checkpoint for size 12"),
        ("flipped proof hash", "does not lead to the root"),
        ("extra proof hash", "expected 4"),
        ("missing proof hash", "expected 4"),
        ("proof hash not base64", "base64"),
        ("checkpoint by another key", "no signature by key"),
        ("checkpoint root replaced", "invalid signature"),
        ("missing checkpoint", "no signed checkpoint"),
        ("leaf index as text", "must be integers"),
    ],
)
def test_forged_inclusion_proofs_fail(how: str, message: str) -> None:
    event, proof = forge(log(13), how)
    with pytest.raises(VerificationError, match=message):
        verify_event_inclusion(event, proof, VERIFIER)


def test_inclusion_checks_the_origin_when_given() -> None:
    events = log(3)
    with pytest.raises(VerificationError, match="origin"):
        verify_event_inclusion(events[0], proof_for(events, 1, 3), VERIFIER, "localhost/audit/x")
