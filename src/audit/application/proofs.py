"""The verifiable log: signed checkpoints of a tenant's Merkle tree, and proofs against them."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import attrs

from audit.application.ports import CheckpointSink, EventRepository, Signer, UnitOfWorkFactory
from audit.domain.errors import InvalidParameter, LogDamaged, NotFound
from audit.domain.tree import Coord, event_leaf
from audit.verify.merkle import (
    EMPTY_ROOT,
    SubtreeSource,
    consistency_proof,
    inclusion_proof,
    tree_root,
)
from audit.verify.note import Checkpoint, format_checkpoint

T = TypeVar("T")


class _Recorder:
    """A SubtreeSource that answers zeros and notes what was asked (the proof algorithms
    ask for the same subtrees whatever the hashes are)."""

    def __init__(self) -> None:
        self.asked: list[Coord] = []

    def subtree(self, level: int, index: int) -> bytes:
        self.asked.append((level, index))
        return bytes(32)


class _Known:
    def __init__(self, hashes: dict[Coord, bytes]) -> None:
        self._hashes = hashes

    def subtree(self, level: int, index: int) -> bytes:
        try:
            return self._hashes[(level, index)]
        except KeyError:
            if level == 0:
                missing = f"the event of seq {index + 1}"
            else:
                missing = f"the tree's stored subtree ({level}, {index})"
            raise LogDamaged(
                f"{missing} is missing: rows were removed outside the service"
            ) from None


def read_tree(events: EventRepository, tenant: str, compute: Callable[[SubtreeSource], T]) -> T:
    """Run a root or proof computation on the tenant's stored tree, in two queries.

    A dry run finds the subtrees it needs; then leaves come from the events' hashes and
    the rest from the stored subtrees, each in one query, and the real run uses them.
    """
    recorder = _Recorder()
    compute(recorder)
    leaves = {index + 1 for level, index in recorder.asked if level == 0}
    inner = sorted({c for c in recorder.asked if c[0] > 0})
    hashes: dict[Coord, bytes] = dict(events.subtree_hashes(tenant, inner))
    for seq, chain_hash in events.chain_hashes(tenant, leaves).items():
        hashes[(0, seq - 1)] = event_leaf(chain_hash)
    return compute(_Known(hashes))


@attrs.frozen
class LogIdentity:
    """Who signs: the origin prefix (also the key name) and the signer."""

    origin_prefix: str
    signer: Signer

    def origin(self, tenant: str) -> str:
        return f"{self.origin_prefix}/{tenant}"

    def sign_tree(self, tenant: str, size: int, root: bytes) -> str:
        text = format_checkpoint(Checkpoint(self.origin(tenant), size, root))
        return self.signer.sign(text)


def _tree_size(events: EventRepository, tenant: str, size: int | None, name: str) -> int:
    head = events.head(tenant).seq
    if size is None:
        return head
    if not 1 <= size <= head:
        raise InvalidParameter(f"{name} must be between 1 and the log's size ({head})")
    return size


class SignCheckpoint:
    """A signed C2SP checkpoint of the tenant's tree: now, or at an earlier size.

    A checkpoint of the whole log is also handed to the sink (a folder an operator ships).
    """

    def __init__(self, uow: UnitOfWorkFactory, identity: LogIdentity, sink: CheckpointSink) -> None:
        self._uow = uow
        self._identity = identity
        self._sink = sink

    def __call__(self, tenant: str, size: int | None = None) -> str:
        with self._uow() as uow:
            n = _tree_size(uow.events, tenant, size, "size")
            root = read_tree(uow.events, tenant, lambda t: tree_root(t, n)) if n else EMPTY_ROOT
        note = self._identity.sign_tree(tenant, n, root)
        if size is None:
            self._sink.publish(tenant, note)
        return note


@attrs.frozen
class InclusionProof:
    leaf_index: int
    tree_size: int
    hashes: list[bytes]
    checkpoint: str


class ProveInclusion:
    """An RFC 9162 inclusion proof of one event in the tree of a signed checkpoint."""

    def __init__(self, uow: UnitOfWorkFactory, identity: LogIdentity) -> None:
        self._uow = uow
        self._identity = identity

    def __call__(self, tenant: str, event_id: str, size: int | None = None) -> InclusionProof:
        with self._uow() as uow:
            event = uow.events.get(tenant, event_id)
            if event is None:
                raise NotFound(f"no event {event_id!r}")
            n = _tree_size(uow.events, tenant, size, "size")
            if event.seq > n:
                raise InvalidParameter(f"the tree of size {n} does not hold seq {event.seq}")
            hashes, root = read_tree(
                uow.events,
                tenant,
                lambda t: (inclusion_proof(t, event.seq - 1, n), tree_root(t, n)),
            )
        return InclusionProof(event.seq - 1, n, hashes, self._identity.sign_tree(tenant, n, root))


class ProveConsistency:
    """An RFC 9162 consistency proof that the tree of size `second` extends that of `first`."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str, first: int, second: int) -> list[bytes]:
        if first > second:
            raise InvalidParameter("first must not be greater than second")
        with self._uow() as uow:
            _tree_size(uow.events, tenant, first, "first")
            _tree_size(uow.events, tenant, second, "second")
            return read_tree(uow.events, tenant, lambda t: consistency_proof(t, first, second))
