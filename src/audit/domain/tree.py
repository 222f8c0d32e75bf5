"""The tenant's Merkle tree (RFC 9162) as the log keeps it: hashes of complete subtrees.

Leaf `i` is the event with seq `i + 1`; its leaf data is the 32 bytes of the event's hash.
The log stores every complete subtree of level 1 and above as events are appended, in
the same transaction; a leaf (level 0) is derived from its event's own hash. Then any
root or proof costs O(log n) reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from audit.verify.merkle import leaf_hash, new_complete_subtrees, node_hash, perfect_subtrees

Coord = tuple[int, int]  # (level, index): the perfect subtree of leaves [i*2^l, (i+1)*2^l)
Subtree = tuple[int, int, bytes]  # (level, index, hash)


def event_leaf(event_hash_hex: str) -> bytes:
    """The leaf hash of an event: SHA-256(0x00 || unhex(hash))."""
    return leaf_hash(bytes.fromhex(event_hash_hex))


def stored_frontier(size: int) -> list[Coord]:
    """The stored subtrees (level >= 1) that a tree of `size` leaves ends in.

    With the head event's own leaf, they are all that appending needs.
    """
    return [c for c in perfect_subtrees(size) if c[0] > 0]


def grow(
    size: int,
    head_hash: str,
    frontier: Mapping[Coord, bytes],
    new_event_hashes: Iterable[str],
) -> list[Subtree]:
    """The subtrees of level >= 1 completed by appending events to a tree of `size` leaves.

    `frontier` holds the hashes of `stored_frontier(size)`; `head_hash` is the chain hash of
    the last event (leaf `size - 1`).
    """
    hashes = dict(frontier)
    if size % 2:
        hashes[(0, size - 1)] = event_leaf(head_hash)
    made: list[Subtree] = []
    for n, event_hash_hex in enumerate(new_event_hashes, start=size + 1):
        for level, index in new_complete_subtrees(n):
            if level == 0:
                hashes[(0, index)] = event_leaf(event_hash_hex)
            else:
                left = hashes.pop((level - 1, 2 * index))
                right = hashes.pop((level - 1, 2 * index + 1))
                hashes[(level, index)] = node = node_hash(left, right)
                made.append((level, index, node))
    return made
