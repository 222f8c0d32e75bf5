"""RFC 9162 section 2.1 Merkle trees: hashing, proof generation and proof verification.

Proofs are generated from a `SubtreeSource` that only ever has to answer for perfect
subtrees (2^level leaves starting at a multiple of 2^level), so a log can serve them from
stored complete-subtree hashes in O(log n) reads. Verification follows RFC 9162 sections
2.1.3.2 and 2.1.4.2, in the formulation of github.com/transparency-dev/merkle.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
_MAX_SIZE = 2**64  # tree sizes and indexes are uint64 in RFC 9162


class VerificationError(Exception):
    """Something that should prove a log's integrity does not."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class RootAccumulator:
    """Computes the root of a growing tree keeping only O(log n) perfect-subtree hashes."""

    def __init__(self) -> None:
        self._stack: list[tuple[int, bytes]] = []  # (level, hash), levels strictly decreasing
        self.size = 0

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash."""
        level, node = 0, leaf
        while self._stack and self._stack[-1][0] == level:
            _, left = self._stack.pop()
            level, node = level + 1, node_hash(left, node)
        self._stack.append((level, node))
        self.size += 1

    def root(self) -> bytes:
        """The root of the tree of the leaves appended so far."""
        if not self._stack:
            return EMPTY_ROOT
        node = self._stack[-1][1]
        for _, left in reversed(self._stack[:-1]):
            node = node_hash(left, node)
        return node


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """MTH(D[n]) of the given leaf hashes; SHA-256("") for the empty tree."""
    acc = RootAccumulator()
    for leaf in leaf_hashes:
        acc.append(leaf)
    return acc.root()


# -- proof generation ---------------------------------------------------------------------


class SubtreeSource(Protocol):
    """Hashes of perfect subtrees of one log."""

    def subtree(self, level: int, index: int) -> bytes:
        """The hash of leaves [index * 2^level, (index + 1) * 2^level); level 0 is a leaf hash."""
        ...


class ListSubtreeSource:
    """A `SubtreeSource` over leaf hashes held in memory (tests, small logs)."""

    def __init__(self, leaf_hashes: Sequence[bytes]) -> None:
        self._levels: list[list[bytes]] = [list(leaf_hashes)]
        while len(self._levels[-1]) > 1:
            below = self._levels[-1]
            self._levels.append(
                [node_hash(below[i], below[i + 1]) for i in range(0, len(below) - 1, 2)]
            )

    def subtree(self, level: int, index: int) -> bytes:
        """The hash of a complete subtree; ValueError for one beyond the leaves held."""
        if not (0 <= level < len(self._levels) and 0 <= index < len(self._levels[level])):
            raise ValueError(f"no complete subtree at level {level}, index {index}")
        return self._levels[level][index]


def perfect_subtrees(size: int) -> list[tuple[int, int]]:
    """The (level, index) of the perfect subtrees that make up a tree of `size`, left to right."""
    return _decompose(0, size)


def new_complete_subtrees(size_after_append: int) -> list[tuple[int, int]]:
    """The (level, index) of the subtrees completed by appending leaf `size_after_append - 1`.

    Level 0 (the leaf itself) first; a log that stores these with each leaf can answer every
    `SubtreeSource.subtree` query.
    """
    _check_size(size_after_append)
    if size_after_append < 1:
        raise ValueError("size_after_append must be at least 1")
    levels = (size_after_append & -size_after_append).bit_length()  # trailing zeros + 1
    return [(level, (size_after_append >> level) - 1) for level in range(levels)]


def tree_root(source: SubtreeSource, size: int) -> bytes:
    """The root hash of the tree of the first `size` leaves."""
    _check_size(size)
    return EMPTY_ROOT if size == 0 else _range_hash(source, 0, size)


def inclusion_proof(source: SubtreeSource, leaf_index: int, size: int) -> list[bytes]:
    """RFC 9162 PATH(leaf_index, D[size]), ordered from the leaf up."""
    _check_size(size)
    if not 0 <= leaf_index < size:
        raise ValueError(f"leaf index {leaf_index} is not in a tree of size {size}")
    proof: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        mid = start + _largest_power_of_two_below(end - start)
        if leaf_index < mid:
            proof.append(_range_hash(source, mid, end))
            end = mid
        else:
            proof.append(_range_hash(source, start, mid))
            start = mid
    proof.reverse()
    return proof


def consistency_proof(source: SubtreeSource, first: int, second: int) -> list[bytes]:
    """RFC 9162 PROOF(first, D[second]); empty when first == second."""
    _check_size(second)
    if not 0 < first <= second:
        raise ValueError(f"no consistency proof from size {first} to size {second}")
    proof: list[bytes] = []
    start, end = 0, second
    whole_subtree = True  # the RFC's `b`: still on the path of the first tree's own root
    while first != end:
        mid = start + _largest_power_of_two_below(end - start)
        if first <= mid:
            proof.append(_range_hash(source, mid, end))
            end = mid
        else:
            proof.append(_range_hash(source, start, mid))
            start = mid
            whole_subtree = False
    if not whole_subtree:
        proof.append(_range_hash(source, start, end))
    proof.reverse()
    return proof


def _range_hash(source: SubtreeSource, start: int, end: int) -> bytes:
    """MTH of leaves [start, end) built from perfect subtrees only."""
    parts = _decompose(start, end)
    node = source.subtree(*parts[-1])
    for level, index in reversed(parts[:-1]):
        node = node_hash(source.subtree(level, index), node)
    return node


def _decompose(start: int, end: int) -> list[tuple[int, int]]:
    # RFC 9162 only ever splits at a power of two, so every range it hashes starts at a
    # multiple of a power of two at least as large as the range: its largest-first binary
    # decomposition is a list of perfect subtrees whose right fold is the range's MTH.
    _check_size(end)
    length = end - start
    if length <= 0:
        return []
    if start % (1 << (length - 1).bit_length()) != 0:
        raise ValueError(f"[{start}, {end}) is not a subtree of an RFC 9162 tree")
    parts = []
    for level in reversed(range(length.bit_length())):
        if length >> level & 1:
            parts.append((level, start >> level))
            start += 1 << level
    return parts


def _largest_power_of_two_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def _check_size(size: int) -> None:
    if not 0 <= size < _MAX_SIZE:
        raise ValueError(f"tree size {size} is out of range")


# -- proof verification -------------------------------------------------------------------


def root_from_inclusion_proof(
    leaf: bytes, leaf_index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """The root implied by an inclusion proof of `leaf` (a leaf hash) at `leaf_index`."""
    if not 0 <= leaf_index < size < _MAX_SIZE:
        raise VerificationError(f"leaf index {leaf_index} is not in a tree of size {size}")
    if len(leaf) != HASH_SIZE:
        raise VerificationError(f"leaf hash is {len(leaf)} bytes, expected {HASH_SIZE}")
    _check_proof_hashes(proof)
    inner, border = _inclusion_proof_shape(leaf_index, size)
    if len(proof) != inner + border:
        raise VerificationError(
            f"inclusion proof for leaf {leaf_index} in a tree of size {size} has "
            f"{len(proof)} hashes, expected {inner + border}"
        )
    node = _chain_inner(leaf, proof[:inner], leaf_index)
    return _chain_border_right(node, proof[inner:])


def verify_inclusion(
    leaf: bytes, leaf_index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that `leaf` (a leaf hash) is leaf number `leaf_index` of the tree `root`."""
    if root_from_inclusion_proof(leaf, leaf_index, size, proof) != root:
        raise VerificationError(
            f"inclusion proof for leaf {leaf_index} does not lead to the root of the tree "
            f"of size {size}"
        )


def verify_consistency(
    first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (second, second_root) extends the tree (first, first_root)."""
    if not 0 <= first < _MAX_SIZE or not 0 <= second < _MAX_SIZE:
        raise VerificationError(f"tree sizes {first} and {second} are out of range")
    if first > second:
        raise VerificationError(f"the first tree ({first}) is larger than the second ({second})")
    if first == second:
        if proof:
            raise VerificationError("a consistency proof between equal sizes must be empty")
        if first_root != second_root:
            raise VerificationError(f"two different roots for the same tree size {first}")
        return
    if first == 0:
        raise VerificationError("a consistency proof from the empty tree proves nothing")
    if not proof:
        raise VerificationError(f"empty consistency proof from size {first} to size {second}")
    _check_proof_hashes(proof)

    inner, border = _inclusion_proof_shape(first - 1, second)
    shift = ((first & -first).bit_length()) - 1  # trailing zeros of `first`
    inner -= shift
    # The path starts at the perfect subtree of 2^shift leaves that ends the first tree: the
    # first tree itself when it is that subtree, else the proof's first hash.
    seed_from_proof = first != 1 << shift
    seed, path = (proof[0], proof[1:]) if seed_from_proof else (first_root, proof)
    expected = seed_from_proof + inner + border
    if len(proof) != expected:
        raise VerificationError(
            f"consistency proof from size {first} to size {second} has {len(proof)} hashes, "
            f"expected {expected}"
        )
    mask = (first - 1) >> shift
    inner_path, border_path = path[:inner], path[inner:]
    if _chain_border_right(_chain_inner_right(seed, inner_path, mask), border_path) != first_root:
        raise VerificationError(f"consistency proof does not lead to the root of size {first}")
    if _chain_border_right(_chain_inner(seed, inner_path, mask), border_path) != second_root:
        raise VerificationError(f"consistency proof does not lead to the root of size {second}")


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, node in enumerate(proof):
        if len(node) != HASH_SIZE:
            raise VerificationError(f"proof hash {i} is {len(node)} bytes, expected {HASH_SIZE}")


def _inclusion_proof_shape(index: int, size: int) -> tuple[int, int]:
    # Hashes below the point where the paths to `index` and to the last leaf diverge
    # ("inner"), and the left siblings on the right border above it ("border").
    inner = (index ^ (size - 1)).bit_length()
    return inner, (index >> inner).bit_count()


def _chain_inner(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    for i, node in enumerate(proof):
        seed = node_hash(seed, node) if (index >> i) & 1 == 0 else node_hash(node, seed)
    return seed


def _chain_inner_right(seed: bytes, proof: Sequence[bytes], index: int) -> bytes:
    # Only the left siblings: this rebuilds the earlier, smaller version of the subtree.
    for i, node in enumerate(proof):
        if (index >> i) & 1 == 1:
            seed = node_hash(node, seed)
    return seed


def _chain_border_right(seed: bytes, proof: Sequence[bytes]) -> bytes:
    for node in proof:
        seed = node_hash(node, seed)
    return seed
