"""In-memory storage: for unit tests here and for other projects' test suites.

Held to the same contract tests as the SQL adapter. Thread-safe: writers take turns,
readers see only committed work.
"""

from __future__ import annotations

import threading
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Self

import attrs

from audit.domain.chain import ChainHead
from audit.domain.events import Event, EventJson
from audit.domain.query import EventFilter, PageRequest, matches
from audit.domain.tokens import Token


class InMemoryStore:
    """The shared state behind every InMemoryUnitOfWork made from it."""

    def __init__(self) -> None:
        self.write_lock = threading.Lock()
        self.logs: dict[str, list[Event]] = {}
        self.heads: dict[str, ChainHead] = {}
        self.subtrees: dict[tuple[str, int, int], bytes] = {}
        self.by_id: dict[tuple[str, str], tuple[Event, str]] = {}
        self.tokens: dict[str, Token] = {}
        self.revocation_epoch = 0
        self.ended_sessions: dict[str, datetime] = {}  # id: when it would have expired


class InMemoryEventRepository:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.pending: list[tuple[str, Event, str]] = []
        self.pending_subtrees: dict[tuple[str, int, int], bytes] = {}

    def head(self, tenant: str) -> ChainHead:
        return self._store.heads.get(tenant, ChainHead())

    def lock_head(self, tenant: str) -> ChainHead:
        # The unit of work holds the store's write lock for its whole life.
        return self.head(tenant)

    def existing(self, tenant: str, ids: Collection[str]) -> dict[str, tuple[Event, str]]:
        found = {}
        for event_id in ids:
            stored = self._store.by_id.get((tenant, event_id))
            if stored is not None:
                found[event_id] = stored
        return found

    def add(
        self,
        tenant: str,
        events: Sequence[Event],
        fingerprints: Sequence[str],
        subtrees: Sequence[tuple[int, int, bytes]],
    ) -> None:
        self.pending.extend(
            (tenant, event, fp) for event, fp in zip(events, fingerprints, strict=True)
        )
        self.pending_subtrees.update(((tenant, lv, ix), h) for lv, ix, h in subtrees)

    def subtree_hashes(
        self, tenant: str, coords: Collection[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        stored = self._store.subtrees
        return {c: stored[(tenant, *c)] for c in coords if (tenant, *c) in stored}

    def chain_hashes(self, tenant: str, seqs: Collection[int]) -> dict[int, str]:
        log = self._store.logs.get(tenant, [])
        return {s: log[s - 1].hash for s in seqs if 0 < s <= len(log)}

    def get(self, tenant: str, event_id: str) -> Event | None:
        stored = self._store.by_id.get((tenant, event_id))
        return stored[0] if stored else None

    def page(self, tenant: str, where: EventFilter, page: PageRequest) -> list[Event]:
        log = list(self._store.logs.get(tenant, ()))
        events = log if page.order == "asc" else reversed(log)
        found = []
        for event in events:
            if page.after_seq is not None and (
                event.seq <= page.after_seq if page.order == "asc" else event.seq >= page.after_seq
            ):
                continue
            if page.through_seq is not None and event.seq > page.through_seq:
                continue
            if matches(event, where):
                found.append(event)
                if len(found) == page.limit:
                    break
        return found

    def page_json(self, tenant: str, where: EventFilter, page: PageRequest) -> list[EventJson]:
        return [EventJson(e.seq, e.to_json()) for e in self.page(tenant, where, page)]

    def tenants(self) -> list[str]:
        return sorted(self._store.logs)


class InMemoryTokenRepository:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.pending: dict[str, Token] = {}
        self.revocations = 0

    def _current(self) -> dict[str, Token]:
        return {**self._store.tokens, **self.pending}

    def add(self, token: Token) -> None:
        self.pending[token.id] = token

    def by_secret_hash(self, secret_hash: str) -> Token | None:
        return next((t for t in self._current().values() if t.secret_hash == secret_hash), None)

    def get(self, token_id: str) -> Token | None:
        return self._current().get(token_id)

    def list(self, tenant: str | None = None) -> list[Token]:
        tokens = [t for t in self._current().values() if tenant is None or t.tenant == tenant]
        return sorted(tokens, key=lambda t: (t.created_at, t.id))

    def revoke(self, token_id: str, at: datetime) -> None:
        token = self._current().get(token_id)
        if token is not None:
            self.pending[token_id] = attrs.evolve(token, revoked_at=at)
        self.revocations += 1

    def revocation_epoch(self) -> int:
        return self._store.revocation_epoch + self.revocations

    def touch(self, last_used: Mapping[str, datetime]) -> None:
        for token_id, at in last_used.items():
            token = self._current().get(token_id)
            if token is not None and (token.last_used_at is None or token.last_used_at < at):
                self.pending[token_id] = attrs.evolve(token, last_used_at=at)

    def any(self) -> bool:
        return bool(self._current())


class InMemoryEndedSessionRepository:
    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self.pending: dict[str, datetime] = {}
        self.purged_before: datetime | None = None

    def is_ended(self, session_id: str) -> bool:
        return session_id in self.pending or session_id in self._store.ended_sessions

    def end(self, session_id: str, expires_at: datetime) -> None:
        if not self.is_ended(session_id):
            self.pending[session_id] = expires_at

    def purge(self, before: datetime) -> None:
        self.pending = {s: at for s, at in self.pending.items() if at > before}
        if self.purged_before is None or before > self.purged_before:
            self.purged_before = before

    def apply(self) -> None:
        """Commit: what was ended, less what was purged (called under the write lock)."""
        ended = {**self._store.ended_sessions, **self.pending}
        if self.purged_before is not None:
            ended = {s: at for s, at in ended.items() if at > self.purged_before}
        self._store.ended_sessions = ended
        self.forget()

    def forget(self) -> None:
        self.pending = {}
        self.purged_before = None


class InMemoryUnitOfWork:
    """A transaction over an InMemoryStore: changes apply on commit, vanish otherwise."""

    def __init__(self, store: InMemoryStore, write: bool = False) -> None:
        self._store = store
        self._write = write
        self.events = InMemoryEventRepository(store)
        self.tokens = InMemoryTokenRepository(store)
        self._ended_sessions: InMemoryEndedSessionRepository | None = None
        self.committed = False

    @property
    def ended_sessions(self) -> InMemoryEndedSessionRepository:
        # Made when asked (the viewer's pages), not in every unit of work.
        if self._ended_sessions is None:
            self._ended_sessions = InMemoryEndedSessionRepository(self._store)
        return self._ended_sessions

    def __enter__(self) -> Self:
        if self._write:
            self._store.write_lock.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.rollback()
        if self._write:
            self._store.write_lock.release()

    def commit(self) -> None:
        store = self._store
        appended: dict[str, list[Event]] = {}
        for tenant, event, fp in self.events.pending:
            appended.setdefault(tenant, []).append(event)
            store.by_id[(tenant, event.id)] = (event, fp)
        for tenant, events in appended.items():
            # Extended in place (copying the whole log made each commit cost its length):
            # readers copy it with list(), one step under the GIL, so they see a snapshot.
            store.logs.setdefault(tenant, []).extend(events)
            store.heads[tenant] = ChainHead(events[-1].seq, events[-1].hash)
        store.subtrees.update(self.events.pending_subtrees)
        store.tokens = {**store.tokens, **self.tokens.pending}
        store.revocation_epoch += self.tokens.revocations
        if self._ended_sessions is not None:
            self._ended_sessions.apply()
        self.events.pending = []
        self.events.pending_subtrees = {}
        self.tokens.pending = {}
        self.tokens.revocations = 0
        self.committed = True

    def rollback(self) -> None:
        self.events.pending = []
        self.events.pending_subtrees = {}
        self.tokens.pending = {}
        self.tokens.revocations = 0
        if self._ended_sessions is not None:
            self._ended_sessions.forget()

    def ping(self) -> None:
        return None


class InMemoryUnitOfWorkFactory:
    """Makes units of work over one store; `write=True` serialises writers."""

    def __init__(self, store: InMemoryStore | None = None) -> None:
        self.store = store or InMemoryStore()

    def __call__(self, write: bool = False) -> InMemoryUnitOfWork:
        return InMemoryUnitOfWork(self.store, write)


class InMemoryRevocationEpoch:
    """The revocation epoch of a store, as its last commit left it."""

    def __init__(self, uow: InMemoryUnitOfWorkFactory) -> None:
        self._store = uow.store

    def current(self) -> int:
        return self._store.revocation_epoch


class InMemorySigningKeyRecord:
    """The signing key of a store that lives as long as its process."""

    def __init__(self) -> None:
        self._vkey: str | None = None

    def recorded(self) -> str | None:
        return self._vkey

    def record(self, vkey: str) -> None:
        self._vkey = vkey

    def record_first(self, vkey: str) -> str:
        if self._vkey is None:
            self._vkey = vkey
        return self._vkey


if TYPE_CHECKING:
    from audit.application.ports import EndedSessionRepository, UnitOfWorkFactory

    # `mypy --strict src` checks that the adapter fits the ports, as the SQL one's does.
    def _fits_the_ports(store: InMemoryStore) -> tuple[UnitOfWorkFactory, EndedSessionRepository]:
        return InMemoryUnitOfWorkFactory(store), InMemoryEndedSessionRepository(store)
