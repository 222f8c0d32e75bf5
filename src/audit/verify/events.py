"""Offline checks of events as the API returns them: the hash chain, inclusion proofs, exports.

An event is the JSON object of the API, as a dict. Its `hash` is
hex(SHA-256(unhex(prev_hash) || RFC 8785 canonical JSON of the event less `hash` and
`prev_hash`)); the first event's `prev_hash` is `GENESIS`; leaf `seq - 1` of the tenant's
Merkle tree is SHA-256(0x00 || unhex(hash)).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeGuard

import rfc8785

from audit.verify.merkle import (
    EMPTY_ROOT,
    RootAccumulator,
    VerificationError,
    leaf_hash,
    verify_inclusion,
)
from audit.verify.note import Checkpoint, Verifier, open_checkpoint

GENESIS = "0" * 64
_HASH_HEX = re.compile(r"[0-9a-f]{64}")
_HASH_FIELDS = ("hash", "prev_hash")


def event_hash(prev_hash: str, event: Mapping[str, Any]) -> str:
    """The chain hash of `event` after an event whose hash is `prev_hash` (hex)."""
    if not isinstance(prev_hash, str) or not _HASH_HEX.fullmatch(prev_hash):
        raise VerificationError("prev_hash is not 64 lowercase hex digits")
    content = {key: value for key, value in event.items() if key not in _HASH_FIELDS}
    try:
        canonical = rfc8785.dumps(content)
    except rfc8785.CanonicalizationError as exc:
        raise VerificationError(f"the event cannot be canonicalised: {exc}") from None
    return hashlib.sha256(bytes.fromhex(prev_hash) + canonical).hexdigest()


@dataclass(frozen=True)
class ChainHead:
    """The last event of a verified chain."""

    seq: int
    hash: str


@dataclass(frozen=True)
class ChainReport:
    """The outcome of `verify_chain`, shaped like the answer of `GET /v1/verify`."""

    valid: bool
    checked: int
    first_invalid_seq: int | None = None
    reason: str | None = None
    head: ChainHead | None = None


def verify_chain(events: Iterable[Mapping[str, Any]]) -> ChainReport:
    """Check a tenant's events from seq 1 in order, in constant memory; stop at the first break."""
    chain = _ChainChecker()
    for event in events:
        reason = chain.check(event)
        if reason is not None:
            return ChainReport(
                valid=False,
                checked=chain.checked,
                first_invalid_seq=chain.checked + 1,
                reason=reason,
            )
    return ChainReport(valid=True, checked=chain.checked, head=chain.head)


def verify_event_inclusion(
    event: Mapping[str, Any],
    proof: Mapping[str, Any],
    verifier: Verifier,
    origin: str | None = None,
) -> Checkpoint:
    """Check that `event` is in the tree of the signed checkpoint of `proof`.

    `proof` is the answer of `GET /v1/events/{id}/proof`. Returns the verified checkpoint;
    raises `VerificationError` saying what does not hold.
    """
    seq = event.get("seq")
    if not _is_int(seq) or seq < 1:
        raise VerificationError("the event has no valid seq")
    stored = event.get("hash")
    if not isinstance(stored, str) or not _HASH_HEX.fullmatch(stored):
        raise VerificationError("the event's hash is not 64 lowercase hex digits")
    prev_hash = event.get("prev_hash")
    if not isinstance(prev_hash, str):
        raise VerificationError("the event has no prev_hash")
    if event_hash(prev_hash, event) != stored:
        raise VerificationError(f"the hash of event seq {seq} does not match its content")

    leaf_index, tree_size = proof.get("leaf_index"), proof.get("tree_size")
    hashes, note = proof.get("hashes"), proof.get("checkpoint")
    if not _is_int(leaf_index) or not _is_int(tree_size):
        raise VerificationError("the proof's leaf_index and tree_size must be integers")
    if not isinstance(hashes, list) or not all(isinstance(h, str) for h in hashes):
        raise VerificationError("the proof's hashes must be a list of base64 strings")
    if not isinstance(note, str):
        raise VerificationError("the proof has no signed checkpoint")
    if leaf_index != seq - 1:
        raise VerificationError(
            f"the proof is for leaf {leaf_index}, but event seq {seq} is leaf {seq - 1}"
        )
    try:
        path = [base64.b64decode(h.encode("ascii"), validate=True) for h in hashes]
    except (UnicodeEncodeError, binascii.Error):
        raise VerificationError("the proof's hashes are not standard base64") from None

    checkpoint = open_checkpoint(note, verifier, origin)
    if checkpoint.size != tree_size:
        raise VerificationError(
            f"the proof is for a tree of size {tree_size}, the checkpoint for size "
            f"{checkpoint.size}"
        )
    verify_inclusion(
        leaf_hash(bytes.fromhex(stored)), leaf_index, tree_size, path, checkpoint.root_hash
    )
    return checkpoint


@dataclass(frozen=True)
class ExportReport:
    """The outcome of `verify_export`.

    `checked` events passed the chain check; `covered` of them are proven by the checkpoint's
    root (its size, when valid); `not_covered` came after it and are only chain-checked.
    """

    valid: bool
    checkpoint: Checkpoint
    checked: int
    covered: int
    not_covered: int
    first_invalid_seq: int | None = None
    reason: str | None = None
    head: ChainHead | None = None


def verify_export(
    lines: Iterable[bytes | str],
    checkpoint_note: str,
    verifier: Verifier,
    origin: str | None = None,
) -> ExportReport:
    """Check an NDJSON export from seq 1 against a signed checkpoint, in O(log n) memory.

    Raises `VerificationError` when the checkpoint itself does not verify (signature, format,
    origin); otherwise reports on the export: chain, completeness up to the checkpoint's size,
    and the Merkle root of those events.
    """
    checkpoint = open_checkpoint(checkpoint_note, verifier, origin)
    chain = _ChainChecker()
    tree = RootAccumulator()

    def failure(first_invalid_seq: int | None, reason: str) -> ExportReport:
        return ExportReport(
            valid=False,
            checkpoint=checkpoint,
            checked=chain.checked,
            covered=0,
            not_covered=0,
            first_invalid_seq=first_invalid_seq,
            reason=reason,
            head=chain.head,
        )

    if checkpoint.size == 0 and checkpoint.root_hash != EMPTY_ROOT:
        return failure(None, "the checkpoint of the empty tree has a wrong root hash")
    for number, line in enumerate(lines, 1):
        try:
            event = _parse_event_line(line)
        except ValueError as exc:
            return failure(chain.checked + 1, f"line {number}: {exc}")
        if event is None:
            continue
        reason = chain.check(event)
        if reason is not None:
            return failure(chain.checked + 1, reason)
        if tree.size < checkpoint.size:
            tree.append(leaf_hash(bytes.fromhex(event["hash"])))
            if tree.size == checkpoint.size and tree.root() != checkpoint.root_hash:
                return failure(
                    None,
                    f"the Merkle root of events 1 to {checkpoint.size} does not match the signed "
                    "checkpoint: the log was rewritten or this is another log",
                )
    if chain.checked < checkpoint.size:
        return failure(
            chain.checked + 1,
            f"the export ends after {chain.checked} events but the checkpoint covers "
            f"{checkpoint.size}: events are missing",
        )
    return ExportReport(
        valid=True,
        checkpoint=checkpoint,
        checked=chain.checked,
        covered=checkpoint.size,
        not_covered=chain.checked - checkpoint.size,
        head=chain.head,
    )


class _ChainChecker:
    """Checks events one at a time, remembering only the last hash."""

    def __init__(self) -> None:
        self.checked = 0
        self.head: ChainHead | None = None

    def check(self, event: object) -> str | None:
        """Why `event` cannot be the next event of the chain, or None when it can."""
        expected = self.checked + 1
        if not isinstance(event, Mapping):
            return f"the event at seq {expected} is not a JSON object"
        seq = event.get("seq")
        if not _is_int(seq):
            return f"expected seq {expected}, found {seq!r}"
        if seq != expected:
            return f"expected seq {expected}, found seq {seq}"
        previous = self.head.hash if self.head else GENESIS
        if event.get("prev_hash") != previous:
            if self.head is None:
                return "the prev_hash of seq 1 is not the genesis hash (64 zeros)"
            return f"the prev_hash of seq {seq} is not the hash of seq {seq - 1}"
        stored = event.get("hash")
        if not isinstance(stored, str) or not _HASH_HEX.fullmatch(stored):
            return f"the hash of seq {seq} is not 64 lowercase hex digits"
        try:
            computed = event_hash(previous, event)
        except VerificationError as exc:
            return f"seq {seq}: {exc}"
        if computed != stored:
            return f"the hash of seq {seq} does not match its content"
        self.checked = seq
        self.head = ChainHead(seq, stored)
        return None


def _parse_event_line(line: bytes | str) -> dict[str, Any] | None:
    """One NDJSON line as an object; None for a blank line; ValueError when it is not JSON."""
    return parse_json_object(line) if line.strip() else None


def parse_json_object(data: bytes | str) -> dict[str, Any]:
    """One JSON object, read as strictly as the API writes it: UTF-8, no repeated keys,
    no NaN or Infinity. ValueError says what is wrong."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise ValueError("not UTF-8") from None
    try:
        value = json.loads(data, object_pairs_hook=_reject_duplicate_keys, parse_constant=_reject)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg})") from None
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise ValueError("not JSON: an object has a repeated key")
    return result


def _reject(constant: str) -> Any:
    raise ValueError(f"not JSON: {constant} is not a JSON number")


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
