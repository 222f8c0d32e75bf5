"""Shared fakes for the unit tests: in-memory storage, a clock that stands still, use cases."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from audit.adapters.clock import FixedClock
from audit.adapters.memory import (
    InMemoryRevocationEpoch,
    InMemoryStore,
    InMemoryUnitOfWorkFactory,
)
from audit.application.authentication import Authenticate, TokenUses
from audit.application.querying import ExportEvents, GetEvent, QueryEvents, VerifyChain
from audit.application.recording import RecordEvents
from audit.application.tokens import (
    BootstrapToken,
    IssueToken,
    ListTokens,
    RevokeToken,
)
from audit.domain.events import Event, NewEvent
from audit.domain.validation import parse_event

START = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(START)


@pytest.fixture
def uow() -> InMemoryUnitOfWorkFactory:
    return InMemoryUnitOfWorkFactory()


@pytest.fixture
def store(uow: InMemoryUnitOfWorkFactory) -> InMemoryStore:
    return uow.store


@pytest.fixture
def record(uow: InMemoryUnitOfWorkFactory, clock: FixedClock) -> RecordEvents:
    return RecordEvents(uow, clock)


@pytest.fixture
def get_event(uow: InMemoryUnitOfWorkFactory) -> GetEvent:
    return GetEvent(uow)


@pytest.fixture
def query(uow: InMemoryUnitOfWorkFactory) -> QueryEvents:
    return QueryEvents(uow)


@pytest.fixture
def export(uow: InMemoryUnitOfWorkFactory) -> ExportEvents:
    return ExportEvents(uow)


@pytest.fixture
def verify(uow: InMemoryUnitOfWorkFactory) -> VerifyChain:
    return VerifyChain(uow)


@pytest.fixture
def issue(uow: InMemoryUnitOfWorkFactory, clock: FixedClock) -> IssueToken:
    return IssueToken(uow, clock)


@pytest.fixture
def token_uses(uow: InMemoryUnitOfWorkFactory) -> TokenUses:
    """Uses noted, and written only when a test calls flush()."""
    return TokenUses(uow, background=False)


@pytest.fixture
def authenticate(
    uow: InMemoryUnitOfWorkFactory, clock: FixedClock, token_uses: TokenUses
) -> Authenticate:
    return Authenticate(uow, clock, InMemoryRevocationEpoch(uow), token_uses)


@pytest.fixture
def revoke(uow: InMemoryUnitOfWorkFactory, clock: FixedClock) -> RevokeToken:
    return RevokeToken(uow, clock)


@pytest.fixture
def list_tokens(uow: InMemoryUnitOfWorkFactory, token_uses: TokenUses) -> ListTokens:
    return ListTokens(uow, token_uses)


@pytest.fixture
def bootstrap(uow: InMemoryUnitOfWorkFactory, clock: FixedClock) -> BootstrapToken:
    return BootstrapToken(uow, clock)


def _raw(fields: dict[str, Any]) -> dict[str, Any]:
    raw: dict[str, Any] = {"action": "document.update", "actor": {"id": "u-1"}}
    raw.update(fields)
    return raw


@pytest.fixture
def new_event() -> Callable[..., NewEvent]:
    """Validate a client's event: a valid minimal one, with `fields` added or replaced."""

    def make(**fields: Any) -> NewEvent:
        return parse_event(_raw(fields))

    return make


@pytest.fixture
def record_one(record: RecordEvents) -> Callable[..., Event]:
    """Record one event for a tenant (default `acme`) and return it as stored."""

    def make(tenant: str = "acme", **fields: Any) -> Event:
        [recorded] = record(tenant, [parse_event(_raw(fields))])
        return recorded.event

    return make
