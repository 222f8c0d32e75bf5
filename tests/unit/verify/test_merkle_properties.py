"""Properties of proof generation and verification over random trees."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.verify.merkle import (
    EMPTY_ROOT,
    ListSubtreeSource,
    RootAccumulator,
    VerificationError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    new_complete_subtrees,
    node_hash,
    root_from_leaf_hashes,
    tree_root,
    verify_consistency,
    verify_inclusion,
)

MAX_SIZE = 300


def reference_root(leaves: list[bytes]) -> bytes:
    """MTH exactly as RFC 9162 section 2.1.1 writes it, recursively."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = 1 << ((len(leaves) - 1).bit_length() - 1)
    return node_hash(reference_root(leaves[:k]), reference_root(leaves[k:]))


def make_leaves(size: int, salt: bytes) -> list[bytes]:
    return [leaf_hash(salt + i.to_bytes(4, "big")) for i in range(size)]


def flip(value: bytes, bit: int) -> bytes:
    bit %= len(value) * 8
    return value[: bit // 8] + bytes([value[bit // 8] ^ (1 << bit % 8)]) + value[bit // 8 + 1 :]


def fails(check: Callable[..., object], *args: object) -> bool:
    try:
        check(*args)
    except VerificationError:
        return True
    return False


class RecordingSource:
    """Answers only for perfect subtrees within `size`, and records every question."""

    def __init__(self, leaves: list[bytes], size: int) -> None:
        self.inner = ListSubtreeSource(leaves[:size])
        self.size = size
        self.queries: list[tuple[int, int]] = []

    def subtree(self, level: int, index: int) -> bytes:
        self.queries.append((level, index))
        assert level >= 0
        assert index >= 0
        assert (index + 1) << level <= self.size, f"({level}, {index}) is beyond {self.size}"
        return self.inner.subtree(level, index)


class CountingSource:
    """Arbitrary hashes for any perfect subtree: enough to count queries on huge trees."""

    def __init__(self) -> None:
        self.queries = 0

    def subtree(self, level: int, index: int) -> bytes:
        self.queries += 1
        return hashlib.sha256(f"{level}/{index}".encode()).digest()


trees = st.tuples(st.integers(1, MAX_SIZE), st.binary(min_size=1, max_size=8))


@given(trees, st.data())
@settings(max_examples=150, deadline=None)
def test_inclusion_proofs_verify_and_resist_tampering(
    tree: tuple[int, bytes], data: st.DataObject
) -> None:
    size, salt = tree
    leaves = make_leaves(size, salt)
    root = reference_root(leaves)
    index = data.draw(st.integers(0, size - 1), label="index")
    source = RecordingSource(leaves, size)
    proof = inclusion_proof(source, index, size)

    verify_inclusion(leaves[index], index, size, proof, root)
    assert len(source.queries) <= 2 * size.bit_length()

    bit = data.draw(st.integers(0, 255), label="bit")
    assert fails(verify_inclusion, flip(leaves[index], bit), index, size, proof, root)
    assert fails(verify_inclusion, leaves[index], index, size, proof, flip(root, bit))
    for i in range(len(proof)):
        tampered = [*proof]
        tampered[i] = flip(proof[i], bit)
        assert fails(verify_inclusion, leaves[index], index, size, tampered, root)
    if proof:
        assert fails(verify_inclusion, leaves[index], index, size, proof[:-1], root)
        assert fails(verify_inclusion, leaves[index], index, size, proof[1:], root)
    assert fails(verify_inclusion, leaves[index], index, size, [*proof, root], root)
    assert fails(verify_inclusion, leaves[index], index, size, [root, *proof], root)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other")
        assert fails(verify_inclusion, leaves[index], other, size, proof, root)
        assert fails(verify_inclusion, leaves[other], index, size, proof, root)


@given(trees, st.data())
@settings(max_examples=150, deadline=None)
def test_consistency_proofs_verify_and_resist_tampering(
    tree: tuple[int, bytes], data: st.DataObject
) -> None:
    second, salt = tree
    first = data.draw(st.integers(1, second), label="first")
    leaves = make_leaves(second, salt)
    first_root, second_root = reference_root(leaves[:first]), reference_root(leaves)
    source = RecordingSource(leaves, second)
    proof = consistency_proof(source, first, second)

    verify_consistency(first, second, first_root, second_root, proof)
    assert len(source.queries) <= 2 * second.bit_length() + 1

    bit = data.draw(st.integers(0, 255), label="bit")
    assert fails(verify_consistency, first, second, flip(first_root, bit), second_root, proof)
    assert fails(verify_consistency, first, second, first_root, flip(second_root, bit), proof)
    for i in range(len(proof)):
        tampered = [*proof]
        tampered[i] = flip(proof[i], bit)
        assert fails(verify_consistency, first, second, first_root, second_root, tampered)
    if proof:
        assert fails(verify_consistency, first, second, first_root, second_root, proof[:-1])
        assert fails(verify_consistency, first, second, first_root, second_root, proof[1:])
    assert fails(verify_consistency, first, second, first_root, second_root, [*proof, first_root])
    assert fails(verify_consistency, first, second, first_root, second_root, [second_root, *proof])
    if first < second:
        # A rewritten history: the first tree's leaves changed, the second tree built on them.
        forged = [*leaves]
        forged[data.draw(st.integers(0, first - 1), label="rewritten")] = leaf_hash(b"forged")
        forged_proof = consistency_proof(ListSubtreeSource(forged), first, second)
        assert fails(
            verify_consistency, first, second, first_root, reference_root(forged), forged_proof
        )


@given(trees)
@settings(max_examples=100, deadline=None)
def test_roots_agree_with_the_rfc_definition(tree: tuple[int, bytes]) -> None:
    size, salt = tree
    leaves = make_leaves(size, salt)
    accumulator = RootAccumulator()
    source = ListSubtreeSource(leaves)
    for n, leaf in enumerate(leaves, 1):
        accumulator.append(leaf)
        assert accumulator.root() == reference_root(leaves[:n])
    recording = RecordingSource(leaves, size)
    assert tree_root(recording, size) == root_from_leaf_hashes(leaves) == reference_root(leaves)
    assert len(recording.queries) == size.bit_count()
    assert tree_root(source, size) == reference_root(leaves)


@given(trees, st.data())
@settings(max_examples=50, deadline=None)
def test_stored_complete_subtrees_answer_every_proof(
    tree: tuple[int, bytes], data: st.DataObject
) -> None:
    """What the service does: persist `new_complete_subtrees` with each appended leaf."""
    size, salt = tree
    leaves = make_leaves(size, salt)
    stored: dict[tuple[int, int], bytes] = {}
    for n in range(1, size + 1):
        for level, index in new_complete_subtrees(n):
            assert (level, index) not in stored
            stored[level, index] = (
                leaves[index]
                if level == 0
                else node_hash(stored[level - 1, 2 * index], stored[level - 1, 2 * index + 1])
            )
    assert set(stored) == {
        (level, index) for level in range(size.bit_length()) for index in range(size >> level)
    }

    class StoredSource:
        def subtree(self, level: int, index: int) -> bytes:
            return stored[level, index]

    second = data.draw(st.integers(1, size), label="second")
    first = data.draw(st.integers(1, second), label="first")
    index = data.draw(st.integers(0, second - 1), label="index")
    root = reference_root(leaves[:second])
    assert tree_root(StoredSource(), second) == root
    verify_inclusion(
        leaves[index], index, second, inclusion_proof(StoredSource(), index, second), root
    )
    verify_consistency(
        first,
        second,
        reference_root(leaves[:first]),
        root,
        consistency_proof(StoredSource(), first, second),
    )


@pytest.mark.parametrize("size", [2**20, 2**40 - 1, 2**40 + 12345, 2**63 + 7])
def test_huge_trees_need_only_logarithmic_queries(size: int) -> None:
    bound = 2 * size.bit_length() + 1
    for index in (0, size // 3, size - 1):
        source = CountingSource()
        inclusion_proof(source, index, size)
        assert source.queries <= bound
    for first in (1, size // 2 + 1, size - 1):
        source = CountingSource()
        consistency_proof(source, first, size)
        assert source.queries <= bound


def test_new_complete_subtrees_examples() -> None:
    assert new_complete_subtrees(1) == [(0, 0)]
    assert new_complete_subtrees(6) == [(0, 5), (1, 2)]
    assert new_complete_subtrees(8) == [(0, 7), (1, 3), (2, 1), (3, 0)]
    with pytest.raises(ValueError, match="at least 1"):
        new_complete_subtrees(0)


def test_generation_rejects_impossible_requests() -> None:
    source = ListSubtreeSource(make_leaves(4, b"x"))
    with pytest.raises(ValueError, match="not in a tree"):
        inclusion_proof(source, 4, 4)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(source, 0, 4)
    with pytest.raises(ValueError, match="no consistency proof"):
        consistency_proof(source, 3, 2)
    with pytest.raises(ValueError, match="no complete subtree"):
        source.subtree(2, 1)
    assert consistency_proof(source, 4, 4) == []
