"""The verifiable log: signed checkpoints of a tenant's Merkle tree, and proofs against them."""

from __future__ import annotations

import attrs

from audit.application.ports import CheckpointSink, EventRepository, Signer, UnitOfWorkFactory
from audit.domain.errors import InvalidParameter, NotFound
from audit.domain.tree import Coord, event_leaf
from audit.verify.merkle import EMPTY_ROOT, consistency_proof, inclusion_proof, tree_root
from audit.verify.note import Checkpoint, format_checkpoint


class StoredTree:
    """The tenant's tree as a SubtreeSource, read through one unit of work's repository."""

    def __init__(self, events: EventRepository, tenant: str) -> None:
        self._events = events
        self._tenant = tenant

    def subtree(self, level: int, index: int) -> bytes:
        if level == 0:
            seq = index + 1
            return event_leaf(self._events.chain_hashes(self._tenant, [seq])[seq])
        coord: Coord = (level, index)
        return self._events.subtree_hashes(self._tenant, [coord])[coord]


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
            root = tree_root(StoredTree(uow.events, tenant), n) if n else EMPTY_ROOT
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
            tree = StoredTree(uow.events, tenant)
            hashes = inclusion_proof(tree, event.seq - 1, n)
            root = tree_root(tree, n)
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
            return consistency_proof(StoredTree(uow.events, tenant), first, second)
