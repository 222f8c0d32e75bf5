"""The ports: what the use cases need from storage and the outside world."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self

from audit.domain.chain import ChainHead
from audit.domain.events import Event, EventJson
from audit.domain.query import EventFilter, PageRequest
from audit.domain.tokens import Token


class EventRepository(Protocol):
    """A tenant-scoped, append-only store of events. Never commits: the unit of work does."""

    def head(self, tenant: str) -> ChainHead:
        """The tenant's chain head as this transaction sees it, without locking it."""
        ...

    def lock_head(self, tenant: str) -> ChainHead:
        """The chain head, locked until the transaction ends so writers append in turn."""
        ...

    def existing(self, tenant: str, ids: Collection[str]) -> dict[str, tuple[Event, str]]:
        """The stored events among `ids`, each with the fingerprint of its content."""
        ...

    def add(
        self,
        tenant: str,
        events: Sequence[Event],
        fingerprints: Sequence[str],
        subtrees: Sequence[tuple[int, int, bytes]],
    ) -> None:
        """Append sealed events (consecutive seqs after the head), advance the head, and
        keep the Merkle subtrees (level, index, hash) their leaves completed."""
        ...

    def subtree_hashes(
        self, tenant: str, coords: Collection[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        """Stored hashes of perfect subtrees of level >= 1, by (level, index)."""
        ...

    def chain_hashes(self, tenant: str, seqs: Collection[int]) -> dict[int, str]:
        """The chain hashes of the events with these seqs."""
        ...

    def get(self, tenant: str, event_id: str) -> Event | None: ...

    def page(self, tenant: str, where: EventFilter, page: PageRequest) -> list[Event]:
        """Up to `page.limit` matching events in `page.order` of seq, after `page.after_seq`."""
        ...

    def page_json(self, tenant: str, where: EventFilter, page: PageRequest) -> list[EventJson]:
        """page(), each event as its EventJson: the same events, the same bytes as
        Event.to_json() (a contract test holds every adapter to it)."""
        ...

    def tenants(self) -> list[str]:
        """Every tenant that has a log."""
        ...


class TokenRepository(Protocol):
    """Tokens by id and by the hash of their secret."""

    def add(self, token: Token) -> None: ...

    def by_secret_hash(self, secret_hash: str) -> Token | None: ...

    def get(self, token_id: str) -> Token | None: ...

    def list(self, tenant: str | None = None) -> list[Token]: ...

    def revoke(self, token_id: str, at: datetime) -> None:
        """Revoke the token and advance the revocation epoch, in this transaction."""
        ...

    def revocation_epoch(self) -> int:
        """The revocation epoch as this unit of work's transaction sees it. A reading unit
        of work, whose statements each read a snapshot of their own, may answer with the
        epoch that an earlier statement of it read."""
        ...

    def touch(self, last_used: Mapping[str, datetime]) -> None:
        """Record each token's last use, keeping a later one already stored."""
        ...

    def any(self) -> bool:
        """Whether any token exists at all (for the first-start bootstrap)."""
        ...


class RevocationEpoch(Protocol):
    """A counter that every token revocation advances in the revocation's transaction."""

    def current(self) -> int:
        """The epoch as committed now (so a revocation committed before the call is
        seen), from the storage every server shares; StorageUnavailable if unreadable.
        Meant to be asked on every request: an adapter keeps it to one cheap read, or to
        none where every process that may revoke can tell the others (one SQLite file)."""
        ...


class KnownTokens(Protocol):
    """Tokens accepted lately by any process of this server, by the hash of their secret:
    only a hint, which lets a throttled address's request through to authentication."""

    def note(self, secret_hash: str, until: datetime) -> None:
        """Note that the token of `secret_hash` was accepted, and counts as known until
        `until`. Never raises: a hint that cannot be noted is lost."""
        ...

    def knows(self, secret_hash: str, at: datetime) -> bool:
        """Whether that token was noted as known at `at`, by any process. Never raises."""
        ...


class SigningKeyRecord(Protocol):
    """The verifier key a store's checkpoints are signed with, as the store recorded it."""

    def recorded(self) -> str | None:
        """The recorded verifier key; None before one was recorded."""
        ...

    def record(self, vkey: str) -> None:
        """Record `vkey`, replacing any other (a switch of keys on purpose)."""
        ...

    def record_first(self, vkey: str) -> str:
        """Record `vkey` unless a key is recorded already (another server's, starting at
        the same time); the key recorded now, either way."""
        ...


class EndedSessionRepository(Protocol):
    """Viewer sessions signed out before their time was up, by the random id each carries.

    Kept until the session would have ended anyway (`expires_at`), then purged: a store
    only ever holds the sessions that could still be presented."""

    def is_ended(self, session_id: str) -> bool:
        """Whether the session was signed out: one read by its id."""
        ...

    def end(self, session_id: str, expires_at: datetime) -> None:
        """Record the session as ended (a second time changes nothing)."""
        ...

    def purge(self, before: datetime) -> None:
        """Forget the ended sessions whose expiry is at or before `before`."""
        ...


class UnitOfWork(Protocol):
    """One transaction. Rolls back on exit unless `commit()` was called.

    A reading one (`write=False`) may give each statement a snapshot of its own, as READ
    COMMITTED does: two reads in it need not see the same commits. The log only grows, so
    a later read sees at least what an earlier one saw.
    """

    @property
    def events(self) -> EventRepository: ...

    @property
    def tokens(self) -> TokenRepository: ...

    @property
    def ended_sessions(self) -> EndedSessionRepository: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    def commit(self) -> None:
        """Make the work durable; returns only once it is."""
        ...

    def rollback(self) -> None: ...

    def ping(self) -> None:
        """Raise StorageUnavailable unless storage answers."""
        ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, write: bool = False) -> UnitOfWork:
        """A new unit of work; `write=True` when it will append or change anything."""
        ...


class Signer(Protocol):
    """Signs C2SP notes with the log's key; the key never leaves it."""

    @property
    def key_name(self) -> str: ...

    @property
    def vkey(self) -> str:
        """The verifier key in the signed-note format."""
        ...

    def sign(self, text: str) -> str:
        """The signed note of `text` (which ends in a newline)."""
        ...


class CheckpointSink(Protocol):
    """Where checkpoints go as they are made, for an operator to ship elsewhere."""

    def publish(self, tenant: str, note: str) -> None: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...
