"""audit.verify.merkle against published RFC 6962 / RFC 9162 vectors (see data/README.md)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from audit.verify.merkle import (
    ListSubtreeSource,
    VerificationError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    perfect_subtrees,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

DATA = Path(__file__).parent / "data"
TREE = json.loads((DATA / "rfc6962_tree.json").read_text())
INCLUSION_PROBES = json.loads((DATA / "transparency_dev_inclusion_probes.json").read_text())
CONSISTENCY_PROBES = json.loads((DATA / "transparency_dev_consistency_probes.json").read_text())

LEAVES = [leaf_hash(bytes.fromhex(data)) for data in TREE["leaves"]]
ROOTS = [bytes.fromhex(root) for root in TREE["roots"]]
SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


def hexes(values: list[str]) -> list[bytes]:
    return [bytes.fromhex(value) for value in values]


def b64s(values: list[str] | None) -> list[bytes]:
    return [base64.b64decode(value) for value in values or []]


@pytest.mark.parametrize("size", range(9))
def test_roots_of_the_standard_leaves(size: int) -> None:
    assert root_from_leaf_hashes(LEAVES[:size]) == ROOTS[size]
    assert tree_root(ListSubtreeSource(LEAVES[:size]), size) == ROOTS[size]
    assert tree_root(ListSubtreeSource(LEAVES), size) == ROOTS[size]


def test_every_complete_subtree_hash() -> None:
    source = ListSubtreeSource(LEAVES)
    for level, hashes in enumerate(TREE["node_hashes"]):
        for index, expected in enumerate(hashes):
            assert source.subtree(level, index).hex() == expected


@pytest.mark.parametrize("size", range(9))
def test_perfect_subtrees_match_the_compact_trees(size: int) -> None:
    assert [list(node) for node in perfect_subtrees(size)] == TREE["compact_trees"][size]


@pytest.mark.parametrize(
    "vector", TREE["inclusion_proofs"], ids=lambda v: f"leaf{v['leaf']}-of-{v['size']}"
)
def test_inclusion_proofs(vector: dict[str, Any]) -> None:
    index, size, proof = vector["leaf"] - 1, vector["size"], hexes(vector["proof"])
    assert inclusion_proof(ListSubtreeSource(LEAVES), index, size) == proof
    assert root_from_inclusion_proof(LEAVES[index], index, size, proof) == ROOTS[size]
    verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size])


@pytest.mark.parametrize(
    "vector", TREE["consistency_proofs"], ids=lambda v: f"{v['size1']}-to-{v['size2']}"
)
def test_consistency_proofs(vector: dict[str, Any]) -> None:
    first, second, proof = vector["size1"], vector["size2"], hexes(vector["proof"])
    assert consistency_proof(ListSubtreeSource(LEAVES), first, second) == proof
    verify_consistency(first, second, ROOTS[first], ROOTS[second], proof)


def inclusion_corruptions(
    index: int, size: int, proof: list[bytes], root: bytes, leaf: bytes
) -> list[tuple[str, tuple[bytes, int, int, list[bytes], bytes]]]:
    """The corruptions of transparency-dev/merkle proof/verify_test.go corruptInclusionProof."""
    probes = [
        ("index - 1", (leaf, index - 1, size, proof, root)),
        ("index + 1", (leaf, index + 1, size, proof, root)),
        ("index ^ 2", (leaf, index ^ 2, size, proof, root)),
        ("size * 2", (leaf, index, size * 2, proof, root)),
        ("size / 2", (leaf, index, size // 2, proof, root)),
        ("wrong leaf", (b"WrongLeaf", index, size, proof, root)),
        ("empty root", (leaf, index, size, proof, ROOTS[0])),
        ("random root", (leaf, index, size, proof, SOME_HASH)),
        ("trailing garbage", (leaf, index, size, [*proof, b""], root)),
        ("trailing root", (leaf, index, size, [*proof, root], root)),
        ("preceding garbage", (leaf, index, size, [b"", *proof], root)),
        ("preceding root", (leaf, index, size, [root, *proof], root)),
    ]
    for i in range(len(proof)):
        flipped = [*proof]
        flipped[i] = bytes([proof[i][0] ^ 8]) + proof[i][1:]
        probes.append((f"modified proof[{i}]", (leaf, index, size, flipped, root)))
    if proof:
        probes.append(("removed component", (leaf, index, size, proof[:-1], root)))
    if len(proof) > 1:
        probes.append(
            ("inserted component", (leaf, index, size, [proof[0], SOME_HASH, *proof[1:]], root))
        )
    return probes


@pytest.mark.parametrize(
    "vector", TREE["inclusion_proofs"], ids=lambda v: f"leaf{v['leaf']}-of-{v['size']}"
)
def test_corrupted_inclusion_proofs_fail(vector: dict[str, Any]) -> None:
    index, size, proof = vector["leaf"] - 1, vector["size"], hexes(vector["proof"])
    accepted = []
    for name, args in inclusion_corruptions(index, size, proof, ROOTS[size], LEAVES[index]):
        try:
            verify_inclusion(*args)
        except VerificationError:
            continue
        accepted.append(name)
    assert accepted == []


@pytest.mark.parametrize(
    "probe", INCLUSION_PROBES["probes"], ids=lambda p: p["file"].removeprefix("testdata/")
)
def test_published_inclusion_probes(probe: dict[str, Any]) -> None:
    index = probe["leafIdx"] if "leafIdx" in probe else probe["leafIndex"]
    args = (
        base64.b64decode(probe["leafHash"]),
        index,
        probe["treeSize"],
        b64s(probe["proof"]),
        base64.b64decode(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize(
    "probe", CONSISTENCY_PROBES["probes"], ids=lambda p: p["file"].removeprefix("testdata/")
)
def test_published_consistency_probes(probe: dict[str, Any]) -> None:
    args = (
        probe["size1"],
        probe["size2"],
        base64.b64decode(probe["root1"]),
        base64.b64decode(probe["root2"]),
        b64s(probe["proof"]),
    )
    if probe["wantErr"]:
        with pytest.raises(VerificationError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


def test_the_probe_files_hold_both_outcomes() -> None:
    # A data file of only failures would let a verifier that rejects everything pass.
    for probes in (INCLUSION_PROBES["probes"], CONSISTENCY_PROBES["probes"]):
        outcomes = {probe["wantErr"] for probe in probes}
        assert outcomes == {True, False}


@pytest.mark.parametrize(("index", "size"), [(0, 0), (1, 1), (8, 8), (-1, 8), (2**64, 2**64 + 1)])
def test_inclusion_outside_the_tree_is_rejected(index: int, size: int) -> None:
    with pytest.raises(VerificationError, match="not in a tree"):
        verify_inclusion(LEAVES[0], index, size, [], ROOTS[1])


def test_consistency_messages_say_what_is_wrong() -> None:
    proof = hexes(TREE["consistency_proofs"][4]["proof"])  # 6 -> 7
    with pytest.raises(VerificationError, match="larger than"):
        verify_consistency(7, 6, ROOTS[7], ROOTS[6], proof)
    with pytest.raises(VerificationError, match="has 2 hashes, expected 3"):
        verify_consistency(6, 7, ROOTS[6], ROOTS[7], proof[:2])
    with pytest.raises(VerificationError, match="root of size 6"):
        verify_consistency(6, 7, ROOTS[5], ROOTS[7], proof)
    with pytest.raises(VerificationError, match="root of size 7"):
        verify_consistency(6, 7, ROOTS[6], ROOTS[8], proof)
    with pytest.raises(VerificationError, match="empty tree"):
        verify_consistency(0, 7, ROOTS[0], ROOTS[7], [])
