"""The tenant's Merkle tree (RFC 9162) as the log keeps it: hashes of complete subtrees.

Leaf `i` is the event with seq `i + 1`; its leaf data is the 32 bytes of the event's hash.
The log stores every complete subtree of level 1 and above as events are appended, in
the same transaction; level 0 (a leaf) is derived from the event's own hash. Then any
root or proof costs O(log n) reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from audit.verify.merkle import leaf_hash, new_complete_subtrees, node_hash, perfect_subtrees

Coord = tuple[int, int]  # (level, index): the perfect subtree of leaves [i*2^l, (i+1)*2^l)

__all__ = ["Coord", "event_leaf", "frontier", "grow"]


def event_leaf(event_hash_hex: str) -> bytes:
    return leaf_hash(bytes.fromhex(event_hash_hex))


def frontier(size: int) -> list[Coord]:
    """The perfect subtrees that a tree of `size` ends in: what appending needs to know."""
    return perfect_subtrees(size)


def grow(
    size: int, known: Mapping[Coord, bytes], new_event_hashes: Iterable[str]
) -> list[tuple[int, int, bytes]]:
    """The subtrees of level >= 1 completed by appending leaves after `size` leaves.

    `known` holds at least the hashes of `frontier(size)`.
    """
    hashes = dict(known)
    made: list[tuple[int, int, bytes]] = []
    for n, event_hash_hex in enumerate(new_event_hashes, start=size + 1):
        for level, index in new_complete_subtrees(n):
            if level == 0:
                hashes[(0, index)] = event_leaf(event_hash_hex)
                continue
            node = node_hash(hashes[(level - 1, 2 * index)], hashes[(level - 1, 2 * index + 1)])
            hashes[(level, index)] = node
            made.append((level, index, node))
    return made


def levels_above_leaves(coords: Sequence[Coord]) -> list[Coord]:
    return [c for c in coords if c[0] > 0]
