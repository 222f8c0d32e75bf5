"""The storage contract: the in-memory, SQLite and PostgreSQL adapters behave the same.

Every test here runs against each adapter through the ports (and the real use cases),
so a difference between them is a failure, whichever one is wrong.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import attrs
import orjson
import pytest
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from tests.integration.test_search_plans import page_and_statements

from audit.adapters.clock import FixedClock
from audit.adapters.memory import InMemoryRevocationEpoch, InMemoryUnitOfWorkFactory
from audit.adapters.sql import (
    SqlRevocationEpoch,
    SqlUnitOfWorkFactory,
    create_engine_for,
    search_index,
    sqlite_file,
    upgrade_schema,
)
from audit.adapters.sql import repositories as sql_repositories
from audit.adapters.sql.driver import existing_lookup
from audit.adapters.sql.migrate import alembic_config
from audit.adapters.sql.repositories import SqlEventRepository, prefix_upper_bound
from audit.adapters.sql.schema import described_on, metadata
from audit.adapters.sql.search import fts5_trigrams
from audit.adapters.sql.search_index import wait_until_indexed
from audit.adapters.sql.signing_key import SqlSigningKeyRecord
from audit.application.authentication import Authenticate, TokenUses
from audit.application.health import CheckReadiness
from audit.application.ports import RevocationEpoch, UnitOfWorkFactory
from audit.application.querying import ExportEvents, GetEvent, QueryEvents, VerifyChain
from audit.application.recording import RecordEvents
from audit.application.sessions import SESSION_LIFETIME, EndSession, SessionHolds, StartSession
from audit.application.tokens import IssueToken, ListTokens, RevokeToken
from audit.domain.chain import GENESIS_HASH, ChainHead, seal
from audit.domain.errors import Conflict, NotFound, ValidationFailed
from audit.domain.events import Event, EventJson, NewEvent, Party, Source
from audit.domain.query import EventFilter, PageRequest, matches
from audit.domain.tokens import ALL_SCOPES, Scope, Token, hash_secret

T0 = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
US = timedelta(microseconds=1)

BACKENDS = ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def storage(request: pytest.FixtureRequest) -> Iterator[UnitOfWorkFactory]:
    """A unit-of-work factory over empty storage of each kind."""
    if request.param == "memory":
        yield InMemoryUnitOfWorkFactory()
        return
    url: str = request.getfixturevalue(f"{request.param}_url")
    upgrade_schema(url)
    engine = create_engine_for(url)
    try:
        yield SqlUnitOfWorkFactory(engine)
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def record(storage: UnitOfWorkFactory, clock: FixedClock) -> RecordEvents:
    return RecordEvents(storage, clock)


def new(event_id: str | None = "e-1", **fields: Any) -> NewEvent:
    base: dict[str, Any] = {"action": "document.update", "actor": Party(id="u-1")}
    base.update(fields)
    return NewEvent(id=event_id, **base)


def exact(event: Event) -> str:
    """The event's document as text: unlike ==, tells 1.0 from 1, -0.0 from 0.0, key order."""
    return json.dumps(event.to_document(), ensure_ascii=False)


def append(
    storage: UnitOfWorkFactory, tenant: str, events: Sequence[NewEvent], *, commit: bool = True
) -> list[Event]:
    """Append through the ports alone, as RecordEvents does, and return the sealed events."""
    with storage(write=True) as uow:
        head = uow.events.lock_head(tenant)
        sealed = seal(
            head, tenant, T0, [(e.id or f"gen-{n}", e) for n, e in enumerate(events, start=1)]
        )
        uow.events.add(tenant, sealed, [e.fingerprint() for e in events], [])
        if commit:
            uow.commit()
    return sealed


def all_events(storage: UnitOfWorkFactory, tenant: str) -> list[Event]:
    with storage() as uow:
        return uow.events.page(tenant, EventFilter(), PageRequest(limit=100_000, order="asc"))


# --- round trips -----------------------------------------------------------------------

RICH = new(
    "evt.rich:1",
    action="document.update",
    actor=Party(id="u-é🙂", type="user", name="Zoë 北京 \u202eevil\u202c"),
    targets=tuple(
        Party(
            id=f"t-{i}",
            type=None if i % 2 else "document",
            name=None if i % 3 else f"名前 {i} ✓",
        )
        for i in range(32)
    ),
    occurred_at=datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    outcome="failure",
    source=Source(ip="2001:db8::1", user_agent='curl/8.5 "quoted" \\ back'),
    description="Ünïcødé ✓ 'single' \"double\" 100% snake_case\nnew line\ttab",
    metadata={
        "z-first": 1,
        "a": {"nested": [1, 2.5, None, True, False, "x"], "deep": {"deeper": {"f": 0.1}}},
        "floats": [1.0, -0.0, 1e300, 5e-324, 123456.789, -2.5e-7, 2.0**60],
        "ints": [0, -1, 2**53 - 1, -(2**53 - 1)],
        "text": "🙂 \u0001\u001f control, 'quotes' \"and\" \\",
        "empty": {},
        "none": None,
        "list": [],
    },
)
MINIMAL = new("evt.minimal", action="a", actor=Party(id="u"))
FAR_FUTURE = new("evt.future", occurred_at=datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC))
OFFSET = new(
    "evt.offset",
    occurred_at=datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=5, minutes=30))),
)


def test_every_field_round_trips_exactly(storage: UnitOfWorkFactory) -> None:
    sealed = append(storage, "acme", [RICH, MINIMAL, FAR_FUTURE, OFFSET])
    with storage() as uow:
        got = [uow.events.get("acme", e.id) for e in sealed]
        paged = uow.events.page("acme", EventFilter(), PageRequest(limit=10, order="asc"))
        found = uow.events.existing("acme", [e.id for e in sealed])
    assert got == sealed
    assert paged == sealed
    assert [found[e.id][0] for e in sealed] == sealed
    for stored, original in zip([*got, *paged], [*sealed, *sealed], strict=True):
        assert stored is not None
        assert exact(stored) == exact(original)
    rich = got[0]
    assert rich is not None
    assert len(rich.targets) == 32
    assert rich.targets[1] == Party(id="t-1", type=None, name=None)
    assert rich.occurred_at == datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    assert [type(x) for x in rich.metadata["floats"]] == [float] * 7
    assert str(rich.metadata["floats"][1]) == "-0.0"
    assert list(rich.metadata) == list(RICH.metadata)  # key order as sent
    minimal = got[1]
    assert minimal is not None
    assert minimal.actor == Party(id="u")
    assert minimal.targets == ()
    assert minimal.source == Source()
    assert minimal.description is None
    assert minimal.metadata == {}
    assert minimal.occurred_at == T0  # defaulted to received_at
    # The chain recomputed from what was read back still holds.
    assert VerifyChain(storage)("acme").valid


def test_pages_as_json_are_the_events_own_text(storage: UnitOfWorkFactory) -> None:
    """page_json sends what Event.to_json() says, byte for byte, for the same events
    (the SQL adapters write it from the row, without the Event)."""
    sealed = append(storage, "acme", [RICH, MINIMAL, FAR_FUTURE, OFFSET])
    append(storage, "globex", [RICH])
    cases = [
        (EventFilter(), PageRequest(limit=10, order="asc")),
        (EventFilter(), PageRequest(limit=2, order="desc", after_seq=4)),
        (EventFilter(target_id="t-5"), PageRequest(limit=10, order="asc")),
        (EventFilter(q="北京"), PageRequest(limit=10, order="desc")),
    ]
    with storage() as uow:
        for where, page in cases:
            events = uow.events.page("acme", where, page)
            assert events, (where, page)
            as_json = uow.events.page_json("acme", where, page)
            assert as_json == [EventJson(e.seq, e.to_json()) for e in events]
    assert [orjson.loads(line.json)["id"] for line in as_json] == [sealed[0].id]


def test_tokens_round_trip_exactly(storage: UnitOfWorkFactory) -> None:
    token = Token(
        id="tok_0123456789abcdef",
        tenant="acme",
        name="ci ✓ pipeline",
        scopes=frozenset({Scope.EVENTS_WRITE, Scope.METRICS_READ}),
        secret_hash=hash_secret("als_secret"),
        created_at=T0,
        expires_at=datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        revoked_at=T0 + US,
        last_used_at=T0 + 2 * US,
    )
    bare = Token(
        id="tok_bare",
        tenant="acme",
        name="b",
        scopes=ALL_SCOPES,
        secret_hash=hash_secret("als_other"),
        created_at=T0,
    )
    with storage(write=True) as uow:
        uow.tokens.add(token)
        uow.tokens.add(bare)
        uow.commit()
    with storage() as uow:
        assert uow.tokens.get(token.id) == token
        assert uow.tokens.get(bare.id) == bare
        assert uow.tokens.by_secret_hash(token.secret_hash) == token


# --- heads -----------------------------------------------------------------------------


def test_head_and_lock_head_follow_the_log(storage: UnitOfWorkFactory) -> None:
    with storage() as uow:
        assert uow.events.head("acme") == ChainHead(0, GENESIS_HASH)
    with storage(write=True) as uow:
        assert uow.events.lock_head("acme") == ChainHead()
    first = append(storage, "acme", [new("a"), new("b")])
    second = append(storage, "acme", [new("c")])
    assert [e.seq for e in first + second] == [1, 2, 3]
    assert second[0].prev_hash == first[-1].hash
    with storage() as uow:
        assert uow.events.head("acme") == ChainHead(3, second[-1].hash)
        assert uow.events.head("globex") == ChainHead()
    with storage(write=True) as uow:
        assert uow.events.lock_head("acme") == ChainHead(3, second[-1].hash)


def test_a_locked_head_without_events_makes_no_tenant(storage: UnitOfWorkFactory) -> None:
    append(storage, "acme", [new("a")])
    with storage(write=True) as uow:
        uow.events.lock_head("ghost")
        uow.commit()
    with storage() as uow:
        assert uow.events.tenants() == ["acme"]
        assert uow.events.head("ghost") == ChainHead()


def test_tenants_are_listed_in_code_point_order(storage: UnitOfWorkFactory) -> None:
    for tenant in ["beta", "Zeta", "alpha", "a.b", "a-b", "a_b"]:
        append(storage, tenant, [new("x")])
    with storage() as uow:
        assert uow.events.tenants() == sorted(["beta", "Zeta", "alpha", "a.b", "a-b", "a_b"])


# --- existing ----------------------------------------------------------------------------


def test_existing_returns_stored_events_with_fingerprints(storage: UnitOfWorkFactory) -> None:
    a, b = new("a"), new("b", description="other")
    sealed = append(storage, "acme", [a, b])
    append(storage, "globex", [new("c")])
    with storage() as uow:
        found = uow.events.existing("acme", {"a", "b", "c", "missing"})
        assert found == {"a": (sealed[0], a.fingerprint()), "b": (sealed[1], b.fingerprint())}
        assert uow.events.existing("acme", []) == {}
        assert uow.events.existing("globex", ["a"]) == {}
        assert uow.events.existing("acme", ["b"]) == {"b": (sealed[1], b.fingerprint())}
        many = [f"id-{n}" for n in range(1000)] + ["b"]
        assert uow.events.existing("acme", many) == {"b": (sealed[1], b.fingerprint())}


# --- transactions ------------------------------------------------------------------------


def test_an_exception_rolls_everything_back(storage: UnitOfWorkFactory) -> None:
    token = Token("tok_1", "acme", "n", frozenset({Scope.EVENTS_READ}), hash_secret("s"), T0)

    def fail_midway() -> None:
        with storage(write=True) as uow:
            head = uow.events.lock_head("acme")
            uow.events.add("acme", seal(head, "acme", T0, [("a", new("a"))]), ["fp"], [])
            uow.tokens.add(token)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_midway()
    with storage() as uow:
        assert uow.events.head("acme") == ChainHead()
        assert uow.events.get("acme", "a") is None
        assert uow.events.tenants() == []
        assert not uow.tokens.any()
        assert uow.tokens.get("tok_1") is None


def test_work_not_committed_is_not_kept(storage: UnitOfWorkFactory) -> None:
    append(storage, "acme", [new("a")], commit=False)
    with storage(write=True) as uow:
        uow.tokens.add(Token("tok_1", "acme", "n", frozenset({Scope.EVENTS_READ}), "h", T0))
        uow.rollback()
        uow.commit()
    with storage() as uow:
        assert uow.events.head("acme") == ChainHead()
        assert uow.events.page("acme", EventFilter(), PageRequest(limit=10)) == []
        assert not uow.tokens.any()


def test_only_work_before_the_commit_is_kept(storage: UnitOfWorkFactory) -> None:
    with storage(write=True) as uow:
        uow.tokens.add(Token("tok_1", "acme", "n", frozenset({Scope.EVENTS_READ}), "h1", T0))
        uow.commit()
        uow.tokens.add(Token("tok_2", "acme", "n", frozenset({Scope.EVENTS_READ}), "h2", T0))
    with storage() as uow:
        assert [t.id for t in uow.tokens.list()] == ["tok_1"]


def test_writes_are_visible_to_the_transaction_that_made_them(
    storage: UnitOfWorkFactory,
) -> None:
    with storage(write=True) as uow:
        uow.tokens.add(Token("tok_1", "acme", "n", frozenset({Scope.EVENTS_READ}), "h1", T0))
        assert uow.tokens.any()
        assert uow.tokens.by_secret_hash("h1") is not None
        uow.tokens.revoke("tok_1", T0 + US)
        revoked = uow.tokens.get("tok_1")
        assert revoked is not None
        assert revoked.revoked_at == T0 + US


def test_the_revocation_epoch_advances_with_each_revocation_committed(
    storage: UnitOfWorkFactory,
) -> None:
    with storage(write=True) as uow:
        uow.tokens.add(Token("tok_1", "acme", "n", frozenset({Scope.EVENTS_READ}), "h1", T0))
        uow.commit()
    with storage() as uow:
        before = uow.tokens.revocation_epoch()
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_1", T0 + US)
        assert uow.tokens.revocation_epoch() == before + 1  # its own, before the commit
        uow.rollback()
    with storage(write=True) as uow:
        assert uow.tokens.revocation_epoch() == before
        uow.tokens.revoke("tok_1", T0 + US)
        uow.commit()
    with storage(write=True) as uow:
        assert uow.tokens.revocation_epoch() == before + 1


def test_a_page_leaves_the_revocation_epoch_current(
    storage: UnitOfWorkFactory, record: RecordEvents
) -> None:
    """Storage may answer revocation_epoch() with what a page's own statement read (SQL
    does): never with an epoch from before a revocation committed or made since."""
    record("acme", [new("a")])
    with storage(write=True) as uow:
        uow.tokens.add(Token("tok_1", "acme", "n", frozenset({Scope.EVENTS_READ}), "h1", T0))
        uow.commit()
    with storage() as uow:
        assert len(uow.events.page_json("acme", EventFilter(), PageRequest(limit=5))) == 1
        before = uow.tokens.revocation_epoch()
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_1", T0 + US)
        uow.commit()
    with storage() as uow:
        assert len(uow.events.page_json("acme", EventFilter(), PageRequest(limit=5))) == 1
        assert uow.tokens.revocation_epoch() == before + 1
    with storage(write=True) as uow:
        assert len(uow.events.page_json("acme", EventFilter(), PageRequest(limit=5))) == 1
        uow.tokens.revoke("tok_1", T0 + 2 * US)
        assert uow.tokens.revocation_epoch() == before + 2  # its own, made after the page
        uow.rollback()


# --- tenants -----------------------------------------------------------------------------


def test_tenants_are_isolated(storage: UnitOfWorkFactory, record: RecordEvents) -> None:
    [acme] = record("acme", [new("shared", description="acme's")])
    [globex] = record("globex", [new("shared", description="globex's")])
    record("globex", [new("only-globex", actor=Party(id="u-1"))])
    assert acme.created
    assert globex.created
    assert acme.event.seq == globex.event.seq == 1
    assert acme.event.hash != globex.event.hash
    get = GetEvent(storage)
    assert get("acme", "shared") == acme.event
    assert get("globex", "shared") == globex.event
    with pytest.raises(NotFound):
        get("acme", "only-globex")
    query = QueryEvents(storage)
    everything = PageRequest(limit=100)
    assert query("acme", EventFilter(), everything).events == [acme.event]
    assert query("acme", EventFilter(actor_id="u-1"), everything).events == [acme.event]
    assert query("acme", EventFilter(q="globex"), everything).events == []
    assert [e.tenant for e in query("globex", EventFilter(), everything).events] == ["globex"] * 2
    with storage() as uow:
        assert uow.events.tenants() == ["acme", "globex"]
        assert uow.events.existing("acme", ["shared", "only-globex"]).keys() == {"shared"}
    assert VerifyChain(storage)("acme").checked == 1
    assert VerifyChain(storage)("globex").checked == 2


# --- filters and pages -------------------------------------------------------------------

ACTORS = ["alice", "bob", "Alice", "carol"]
ACTIONS = [
    "document.update",
    "document.read",
    "document",
    "documents.list",
    "doc_x.y",
    "docXx.y",
    "user.login",
    "user.logout",
    "a%b.c",
    "z",
]
TARGET_IDS = ["doc-1", "doc-2", "DOC-1", "user-9", "x%_"]
TIMES = [
    T0 - US,
    T0,
    T0 + US,
    T0 + timedelta(hours=1),
    datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    datetime(1970, 1, 1, tzinfo=UTC),
]
DESCRIPTIONS = [None, "Quarterly REPORT", "ärger im Büro", "100% sure", "snake_case", ""]
METADATA: list[dict[str, Any]] = [{}, {"ticket": "OPS-7"}, {"k": "Needle"}, {"n": 1.5}]
NAMES = [None, "Zoë", "ÉCLAIR", "plain"]
QUERIES = [
    "report",
    "REPORT",
    "ÄRGER",
    "ärger im",
    "100%",
    "%",
    "_case",
    "_",
    "ops-7",
    "needle",
    "zoë",
    "ZOË",
    "éclair",
    '"k"',
    "1.5",
    "nothing matches this",
    "",
]
PREFIXES = ["document.", "document", "documents", "doc_", "doc", "a%", "user.", "", "zz", "D"]


def corpus_events() -> list[NewEvent]:
    rng = random.Random(20261128)
    events = []
    for n in range(60):
        targets = tuple(
            Party(id=rng.choice(TARGET_IDS), type="t", name=rng.choice(NAMES))
            for _ in range(rng.randrange(4))
        )
        events.append(
            new(
                f"c-{n}",
                action=rng.choice(ACTIONS),
                actor=Party(id=rng.choice(ACTORS), name=rng.choice(NAMES)),
                targets=targets,
                outcome=rng.choice(["success", "failure", "unknown"]),
                occurred_at=rng.choice(TIMES),
                description=rng.choice(DESCRIPTIONS),
                metadata=rng.choice(METADATA),
            )
        )
    return events


def single_filters() -> list[EventFilter]:
    filters = [EventFilter()]
    filters += [EventFilter(actor_id=a) for a in [*ACTORS, "nobody"]]
    filters += [EventFilter(target_id=t) for t in [*TARGET_IDS, "nothing"]]
    filters += [EventFilter(action=a) for a in [*ACTIONS, "documen"]]
    filters += [EventFilter(action_prefix=p) for p in PREFIXES]
    filters += [EventFilter(outcome=o) for o in ["success", "failure", "unknown"]]
    filters += [EventFilter(since=t) for t in TIMES]
    filters += [EventFilter(until=t) for t in TIMES]
    filters += [EventFilter(q=q) for q in QUERIES]
    return filters


def combined_filters(count: int) -> list[EventFilter]:
    rng = random.Random(7)
    fields: dict[str, list[Any]] = {
        "actor_id": ACTORS,
        "target_id": TARGET_IDS,
        "action": ACTIONS,
        "action_prefix": PREFIXES,
        "outcome": ["success", "failure", "unknown"],
        "since": TIMES,
        "until": TIMES,
        "q": QUERIES,
    }
    filters = [
        EventFilter(actor_id="alice", action_prefix="document", since=T0, until=T0 + US),
        EventFilter(target_id="doc-1", q="report", outcome="failure"),
        EventFilter(since=T0, until=T0),
    ]
    while len(filters) < count:
        chosen = rng.sample(sorted(fields), rng.randint(2, 4))
        filters.append(EventFilter(**{name: rng.choice(fields[name]) for name in chosen}))
    return filters


def reference_page(events: list[Event], where: EventFilter, page: PageRequest) -> list[Event]:
    """What a page must hold, straight from the reference semantics of `matches`."""
    ordered = sorted(events, key=lambda e: e.seq, reverse=page.order == "desc")
    found = []
    for event in ordered:
        if page.after_seq is not None and (
            event.seq <= page.after_seq if page.order == "asc" else event.seq >= page.after_seq
        ):
            continue
        if page.through_seq is not None and event.seq > page.through_seq:
            continue
        if matches(event, where):
            found.append(event)
    return found[: page.limit]


@pytest.fixture
def corpus(storage: UnitOfWorkFactory, record: RecordEvents, clock: FixedClock) -> list[Event]:
    news = corpus_events()
    stored = [r.event for r in record("acme", news[:25])]
    clock.advance(timedelta(seconds=1))
    for one in news[25:]:
        stored += [r.event for r in record("acme", [one])]
    # The same events in another tenant must never leak into acme's answers.
    record("globex", news)
    return stored


def test_the_corpus_exercises_every_filter(corpus: list[Event]) -> None:
    # Guard against a corpus in which filters would pass vacuously.
    for where in single_filters()[1:]:
        hits = [e for e in corpus if matches(e, where)]
        if where.actor_id == "nobody" or where.target_id == "nothing" or where.action == "documen":
            assert hits == []
        elif where.q not in ("nothing matches this", "", None) or where.action_prefix == "zz":
            assert 0 <= len(hits) < len(corpus)
    assert any(len({t.id for t in e.targets}) < len(e.targets) for e in corpus)
    assert len({e.occurred_at for e in corpus}) == len(TIMES)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_each_filter_matches_the_reference_semantics(
    storage: UnitOfWorkFactory, corpus: list[Event], order: Any
) -> None:
    with storage() as uow:
        for where in single_filters() + combined_filters(120):
            page = PageRequest(limit=1000, order=order)
            assert uow.events.page("acme", where, page) == reference_page(corpus, where, page), (
                where
            )


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_after_and_through_seq_bound_pages(
    storage: UnitOfWorkFactory, corpus: list[Event], order: Any
) -> None:
    last = len(corpus)
    with storage() as uow:
        for where, after, through, limit in itertools.product(
            [EventFilter(), EventFilter(outcome="failure"), EventFilter(q="report")],
            [None, 0, 1, 5, 30, last, last + 5],
            [None, 0, 1, 10, last - 1, last + 3],
            [1, 3, 1000],
        ):
            page = PageRequest(limit=limit, order=order, after_seq=after, through_seq=through)
            expected = reference_page(corpus, where, page)
            assert uow.events.page("acme", where, page) == expected, page


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_following_cursors_yields_every_match_once(
    storage: UnitOfWorkFactory, record: RecordEvents, corpus: list[Event], order: Any
) -> None:
    query = QueryEvents(storage)
    filters = [EventFilter(), EventFilter(action_prefix="doc"), EventFilter(target_id="doc-1")]
    for n, where in enumerate(filters):
        snapshot = all_events(storage, "acme")
        expected = reference_page(snapshot, where, PageRequest(limit=10_000, order=order))
        seen: list[Event] = []
        page = PageRequest(limit=4, order=order)
        while True:
            result = query("acme", where, page)
            seen += result.events
            if result.next_cursor is None:
                break
            assert len(result.events) == 4
            page = attrs.evolve(page, after_seq=result.events[-1].seq)
            if len(seen) == 8:  # events written while paging must not disturb the walk
                late = new(f"late-{n}", action="document.late", targets=(Party(id="doc-1"),))
                record("acme", [late])
        assert [e for e in seen if e.seq <= len(snapshot)] == expected
        assert len({e.seq for e in seen}) == len(seen)
        if order == "desc":
            assert len(seen) == len(expected)


def test_prefix_bounds_are_exact() -> None:
    assert prefix_upper_bound("document.") == "document/"
    assert prefix_upper_bound("a\U0010ffff") == "b"
    assert prefix_upper_bound("\U0010ffff") is None
    assert prefix_upper_bound("a\ud7ff") == "a\ue000"
    assert prefix_upper_bound("") is None


# --- q: text search, index-backed on SQL, exactly `matches` ------------------------------

# Text for every searched field; full of what a LIKE pattern, an FTS5 query or a case fold
# could get wrong.
SEARCHED_TEXTS = [
    'Straße "quoted" 100% snake_case back\\slash star* caret^ col:on',
    "İstanbul ÉCLAIR Zoë naïve ΣΊΣΥΦΟΣ",
    "emoji 🙂 thrice 🙂🙂🙂 and 🎉",
    "FTS5: AND OR NOT NEAR(alpha beta) {search_text}: +plus -minus ^start",
    "e\u0301 decomposed, é precomposed",
    "KELVIN \u212a sign, ﬁ ligature",
    "percent % underscore _ backslash \\ star * quote \" apostrophe '",
    "tab\there\nnew line",
    "micro µs, long ſs",  # FTS5 folds µ to μ, ſ to s, ς to σ: Python's lower() does not
]


def searched_events() -> list[NewEvent]:
    n = len(SEARCHED_TEXTS)
    events = []
    for i in range(3 * n):
        text = SEARCHED_TEXTS[i % n]
        field = i // n  # each text in the description, then in metadata, then in names
        events.append(
            new(
                f"s-{i}",
                actor=Party(id=f"u-{i % 3}", name=text if field == 2 else f"Actor {i}"),
                targets=(
                    Party(id=f"doc-{i % 2}", name=text[::-1] if field == 2 else None),
                    Party(id="doc-x"),
                ),
                outcome="failure" if i % 4 == 0 else "success",
                description=text if field == 0 else None,
                metadata=(
                    {
                        f'Schlüssel_{i} "key"': text,
                        "nested": {"100%_deep": [f"Item {i}", 42, 1.5, True, None]},
                    }
                    if field == 1
                    else {}
                ),
            )
        )
    return events


SEARCH_QUERIES = [
    # 1 and 2 characters: shorter than a trigram.
    *["s", "S", "%", "_", "\\", '"', "*", "-", "^", ":", "é", "ß", "🙂", " ", "\n"],
    *["ss", "SS", "%_", "\\\\", '""', "é ", "🙂🙂", "İ", "Zo", "or", "42"],
    # 3 characters and more: mixed case and Unicode folding.
    *["straße", "STRAßE", "strasse", "STRASSE", "İstanbul", "İST", "istanbul", "Éclair"],
    *["zoë", "ZOË", "naïve", "σίσυφος", "ΣΊΣΥΦΟΣ", "ΣΥΦ", "🙂🙂🙂", "thrice 🙂", "🙂 t"],
    *["e\u0301 d", "é p", "e\u0301", "\u212a s", "k sign", "KELVIN K", "ﬁ l", "fi ligature"],
    *["µs,", "ſs", "micro μs", "long ss", "σίσυφοσ"],
    # LIKE's wildcards and escape, quotes.
    *["100%", "100_", "% u", "_ b", "snake_case", "snake%case", "snakeXcase", "snake_c"],
    *["back\\slash", "\\sl", "\\\\sl", '"quoted"', '"""', 'e " a', "star*", "r* c", "e '"],
    # FTS5 query syntax, which must be plain text here.
    *["AND", "and or", "OR NOT", "NEAR(alpha beta)", "NEAR(", "alpha beta", "-minus"],
    *["s -m", "^start", "caret^", "{search_text}:", "col:on", "col:", "+plus", "AND OR NOT"],
    # Across fields, metadata keys and values, names.
    *["tab\there", "here\nnew", "line", 'schlüssel_9 "key', "100%_deep", "item 9", "1.5"],
    *["actor 1", "ACTOR 19", '"DETOUQ"', "desopmocerp é"],
    # Never found: not searched, not a substring, or not storable.
    *["true", "none", "null", "u-1", "doc-x", "failure", "document.update"],
    *["nothing matches this", "x" * 300, "snake\\_case", "100\\%", "\x00", "a\x00b", "\ud800"],
    # Long: a whole field.
    SEARCHED_TEXTS[3].upper(),
    SEARCHED_TEXTS[7],
]
NEVER_FOUND = {
    *["strasse", "STRASSE", "istanbul", "fi ligature", "snakeXcase", "\\\\", '""', '"""'],
    *["true", "none", "null", "u-1", "doc-x", "failure", "document.update"],
    *["nothing matches this", "x" * 300, "snake\\_case", "100\\%", "\x00", "a\x00b", "\ud800"],
    *["ACTOR 19", "\\\\sl", "snake%case", "100_", "micro μs", "long ss", "σίσυφοσ"],
}


@pytest.fixture
def searched(storage: UnitOfWorkFactory, record: RecordEvents) -> list[Event]:
    stored = [r.event for r in record("acme", searched_events())]
    record("globex", searched_events())  # the same text in another tenant must never leak
    return stored


@pytest.fixture(params=["index", "half", "tail", "walk"])
def sqlite_search(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each way SQL stores answer `q` of 3+ characters: from the trigram index (FTS5 on
    SQLite, pg_trgm on PostgreSQL), or by a walk in seq order, for needles with many
    candidates. Memory answers the same way each time.

    SQLite's index is kept apart by an indexer (search_index.py), which may lag: here it
    never runs by itself, and before each page it has indexed every event ("index"),
    half of them ("half"), or none ("tail"); the events it has not reached are read
    directly, and the answer must be the same.
    """
    mode = str(request.param)
    storage = request.getfixturevalue("storage")
    database = (
        sqlite_file(str(storage.engine.url)) if isinstance(storage, SqlUnitOfWorkFactory) else None
    )
    if mode in ("half", "tail") and database is None:
        pytest.skip("only SQLite's index has a tail")
    if mode == "walk":
        monkeypatch.setattr(sql_repositories, "candidates_bound", lambda size, limit: 0)
    if database is None:
        return mode
    monkeypatch.setattr(search_index, "start_indexer", lambda database: None)
    search_index.stop_indexers()  # any started by the fixtures that wrote the events
    counting = sql_repositories.SqlEventRepository._candidate_count

    def index_first(self: SqlEventRepository, *args: Any) -> Any:
        # Before the page's transaction reads anything, so it sees what was indexed.
        indexer = search_index.SearchIndexer(str(database))
        try:
            if mode == "index":
                indexer.catch_up()
            elif mode == "half":
                with closing(sqlite3.connect(database)) as events:
                    last = events.execute("SELECT max(rowid) FROM events").fetchone()[0]
                indexer.index_upto((last or 0) // 2)
        finally:
            indexer.close()
        return counting(self, *args)

    monkeypatch.setattr(sql_repositories.SqlEventRepository, "_candidate_count", index_first)
    return mode


def test_the_search_queries_are_not_vacuous(searched: list[Event]) -> None:
    for q in SEARCH_QUERIES:
        hits = [e for e in searched if matches(e, EventFilter(q=q))]
        assert (hits == []) == (q in NEVER_FOUND), q
    lengths = {min(len(q.lower()), 3) for q in SEARCH_QUERIES if q not in NEVER_FOUND}
    assert lengths == {1, 2, 3}


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_q_matches_the_reference_semantics_for_hostile_text(
    storage: UnitOfWorkFactory, searched: list[Event], sqlite_search: str, order: Any
) -> None:
    with storage() as uow:
        for q in SEARCH_QUERIES:
            for where in (
                EventFilter(q=q),
                EventFilter(q=q, actor_id="u-1"),
                EventFilter(q=q, target_id="doc-1"),
                EventFilter(q=q, outcome="failure"),
            ):
                page = PageRequest(limit=1000, order=order)
                found = uow.events.page("acme", where, page)
                assert found == reference_page(searched, where, page), where


def every_page(
    query: QueryEvents, tenant: str, where: EventFilter, page: PageRequest
) -> list[Event]:
    """Every event of `where`, following the cursor from `page` on, as a client does."""
    seen: list[Event] = []
    while True:
        result = query(tenant, where, page)
        seen += result.events
        if result.next_cursor is None:
            return seen
        page = attrs.evolve(page, after_seq=result.events[-1].seq)


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_q_pages_tenants_written_in_turn(
    storage: UnitOfWorkFactory, record: RecordEvents, sqlite_search: str, order: Any
) -> None:
    """Two tenants appending in turn, one event at a time: each one's search, read page
    by page, is its own matches in seq order (SQLite reads them in the index's order)."""
    for n in range(40):
        for tenant in ("acme", "globex"):
            text = "needle" if n % 3 else "hay"
            record(tenant, [new(f"{tenant}-{n}", description=f"{text} {tenant} {n}")])
    query = QueryEvents(storage)
    everything = all_events(storage, "acme")
    for where in (EventFilter(q="NEEDLE"), EventFilter(q="needle acme 1")):
        expected = reference_page(everything, where, PageRequest(limit=1000, order=order))
        assert expected
        seen = every_page(query, "acme", where, PageRequest(limit=4, order=order))
        assert seen == expected, where


@pytest.mark.parametrize("order", ["asc", "desc"])
def test_paging_with_q_yields_every_match_once(
    storage: UnitOfWorkFactory, searched: list[Event], sqlite_search: str, order: Any
) -> None:
    query = QueryEvents(storage)
    for where in (
        EventFilter(q="e"),
        EventFilter(q="an"),
        EventFilter(q="ACTOR"),
        EventFilter(q="É"),
        EventFilter(q=" s", target_id="doc-x"),
        EventFilter(q="tor", actor_id="u-2"),
    ):
        expected = reference_page(searched, where, PageRequest(limit=1000, order=order))
        assert len(expected) > 4, where  # enough for several pages
        seen = every_page(query, "acme", where, PageRequest(limit=2, order=order))
        assert seen == expected, where
        # Bounded from both ends, as an export reads it.
        bounded = PageRequest(limit=1000, order=order, after_seq=3, through_seq=len(searched) - 3)
        with storage() as uow:
            found = uow.events.page("acme", where, bounded)
        assert found == reference_page(searched, where, bounded), where


# --- tokens ------------------------------------------------------------------------------


def epoch_of(storage: UnitOfWorkFactory) -> RevocationEpoch:
    if isinstance(storage, InMemoryUnitOfWorkFactory):
        return InMemoryRevocationEpoch(storage)
    assert isinstance(storage, SqlUnitOfWorkFactory)
    return SqlRevocationEpoch(storage.engine)


def test_tokens_through_the_use_cases(storage: UnitOfWorkFactory, clock: FixedClock) -> None:
    uses = TokenUses(storage, background=False)
    issue = IssueToken(storage, clock)
    authenticate = Authenticate(storage, clock, epoch_of(storage), uses)
    with storage() as uow:
        assert not uow.tokens.any()
    writer = issue("acme", "ci", frozenset({Scope.EVENTS_WRITE}), expires_at=T0 + timedelta(days=1))
    admin = issue("acme", "admin", ALL_SCOPES)  # same created_at: ordered by id
    clock.advance(timedelta(seconds=1))
    reader = issue("globex", "reader", frozenset({Scope.EVENTS_READ}))
    with storage() as uow:
        assert uow.tokens.any()
        assert uow.tokens.get(writer.token.id) == writer.token
        assert uow.tokens.get("tok_missing") is None
        assert uow.tokens.by_secret_hash(hash_secret(admin.secret)) == admin.token
        assert uow.tokens.by_secret_hash(hash_secret("als_unknown")) is None
        acme = sorted([writer.token, admin.token], key=lambda t: t.id)
        assert uow.tokens.list("acme") == acme
        assert uow.tokens.list() == [*acme, reader.token]
        assert uow.tokens.list("nobody") == []
    assert ListTokens(storage)("globex") == [reader.token]

    clock.advance(timedelta(minutes=5))
    principal = authenticate(writer.secret)
    assert principal is not None
    assert (principal.tenant, principal.scopes) == ("acme", frozenset({Scope.EVENTS_WRITE}))
    assert authenticate(admin.secret) is not None
    uses.flush()
    with storage() as uow:
        touched = uow.tokens.get(writer.token.id)
    assert touched == attrs.evolve(writer.token, last_used_at=clock.now())

    with pytest.raises(NotFound):
        RevokeToken(storage, clock)("globex", writer.token.id)
    RevokeToken(storage, clock)("acme", writer.token.id)
    assert authenticate(writer.secret) is None
    assert authenticate(admin.secret) is not None
    with storage() as uow:
        revoked = uow.tokens.get(writer.token.id)
        assert revoked is not None
        assert revoked.revoked_at == clock.now()
        assert uow.tokens.get(admin.token.id) == attrs.evolve(admin.token, last_used_at=clock.now())
    clock.advance(timedelta(days=2))
    assert authenticate(writer.secret) is None  # revoked and expired


def test_touch_and_revoke_change_one_token(storage: UnitOfWorkFactory) -> None:
    one = Token("tok_1", "acme", "one", frozenset({Scope.EVENTS_READ}), "h1", T0)
    two = Token("tok_2", "acme", "two", frozenset({Scope.EVENTS_READ}), "h2", T0)
    with storage(write=True) as uow:
        uow.tokens.add(one)
        uow.tokens.add(two)
        uow.commit()
    with storage(write=True) as uow:
        uow.tokens.touch({"tok_1": T0 + US, "tok_missing": T0})
        uow.tokens.revoke("tok_2", T0 + 2 * US)
        uow.commit()
    with storage(write=True) as uow:
        uow.tokens.touch({"tok_1": T0, "tok_2": T0 + 3 * US})  # an earlier use is no news
        uow.commit()
    with storage() as uow:
        assert uow.tokens.list() == [
            attrs.evolve(one, last_used_at=T0 + US),
            attrs.evolve(two, revoked_at=T0 + 2 * US, last_used_at=T0 + 3 * US),
        ]


def test_each_committed_revocation_advances_the_epoch(storage: UnitOfWorkFactory) -> None:
    epoch = epoch_of(storage)
    one = Token("tok_1", "acme", "one", frozenset({Scope.EVENTS_READ}), "h1", T0)
    with storage(write=True) as uow:
        uow.tokens.add(one)
        uow.commit()
    start = epoch.current()
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_1", T0)
        assert epoch.current() == start  # not before the commit
    assert epoch.current() == start  # nor when rolled back
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_1", T0)
        uow.commit()
    assert epoch.current() == start + 1
    with storage(write=True) as uow:
        uow.tokens.revoke("tok_1", T0 + US)
        uow.tokens.revoke("tok_1", T0 + 2 * US)
        uow.commit()
    assert epoch.current() == start + 3


# --- the use cases on each adapter -------------------------------------------------------


def test_record_events_is_idempotent_and_all_or_nothing(
    storage: UnitOfWorkFactory, record: RecordEvents, clock: FixedClock
) -> None:
    first = record("acme", [new("a"), new("b"), new("a")])
    assert [(r.event.seq, r.created) for r in first] == [(1, True), (2, True), (1, False)]
    assert first[2].event == first[0].event
    clock.advance(timedelta(seconds=1))
    # The same instant written with another offset is the same content.
    moment = datetime(2026, 1, 1, 12, tzinfo=UTC)
    second = record(
        "acme",
        [new("a"), new("c", occurred_at=moment), new(None, description="no id given")],
    )
    assert [(r.event.seq, r.created) for r in second] == [(1, False), (3, True), (4, True)]
    assert second[0].event == first[0].event
    assert second[1].event.received_at == T0 + timedelta(seconds=1)
    again = record("acme", [new("c", occurred_at=moment.astimezone(timezone(timedelta(hours=-3))))])
    assert [(r.event, r.created) for r in again] == [(second[1].event, False)]

    with pytest.raises(Conflict):
        record("acme", [new("d"), new("a", description="other content")])
    with pytest.raises(ValidationFailed):
        record("acme", [new("e"), new("e", description="other content")])
    with storage() as uow:
        assert uow.events.head("acme").seq == 4
        assert uow.events.get("acme", "d") is None
        assert uow.events.get("acme", "e") is None
    generated = second[2].event.id
    assert GetEvent(storage)("acme", generated) == second[2].event
    report = VerifyChain(storage)("acme")
    assert (report.valid, report.checked, report.head) == (
        True,
        4,
        ChainHead(4, second[2].event.hash),
    )


def test_export_and_verify_read_the_whole_log(
    storage: UnitOfWorkFactory, record: RecordEvents
) -> None:
    assert VerifyChain(storage)("acme").head is None
    stored = [r.event for r in record("acme", [new(f"e-{n}") for n in range(1100)])]
    exported = list(ExportEvents(storage)("acme", EventFilter()))
    assert exported == [EventJson(e.seq, e.to_json()) for e in stored]
    assert list(ExportEvents(storage)("acme", EventFilter(action="nope"))) == []
    report = VerifyChain(storage)("acme")
    assert (report.valid, report.checked) == (True, 1100)


def test_readiness_answers(storage: UnitOfWorkFactory) -> None:
    CheckReadiness(storage)()


# --- ended viewer sessions ---------------------------------------------------------------


def ended(storage: UnitOfWorkFactory, *session_ids: str) -> list[bool]:
    with storage() as uow:
        return [uow.ended_sessions.is_ended(s) for s in session_ids]


def test_ended_sessions_are_kept_until_purged_past_their_expiry(
    storage: UnitOfWorkFactory,
) -> None:
    assert ended(storage, "s-1") == [False]
    with storage(write=True) as uow:
        uow.ended_sessions.end("s-1", T0 + 2 * US)
        uow.ended_sessions.end("s-2", T0 + 3 * US)
        assert uow.ended_sessions.is_ended("s-1")  # its own, before the commit
        uow.commit()
    assert ended(storage, "s-1", "s-2", "s-3") == [True, True, False]
    with storage(write=True) as uow:
        uow.ended_sessions.end("s-1", T0 + 2 * US)  # signed out again: no conflict
        uow.ended_sessions.purge(T0 + US)  # nothing expired yet
        uow.commit()
    assert ended(storage, "s-1", "s-2") == [True, True]
    with storage(write=True) as uow:
        uow.ended_sessions.end("s-3", T0 + 2 * US)  # expiring as soon as s-1
        uow.ended_sessions.purge(T0 + 2 * US)  # at or before: s-1 and s-3 go
        uow.commit()
    assert ended(storage, "s-1", "s-2", "s-3") == [False, True, False]


def test_an_ended_session_not_committed_is_not_kept(storage: UnitOfWorkFactory) -> None:
    with storage(write=True) as uow:
        uow.ended_sessions.end("kept", T0 + US)
        uow.commit()
    with storage(write=True) as uow:
        uow.ended_sessions.end("s-1", T0 + US)
        uow.ended_sessions.purge(T0 + US)
        uow.rollback()

    def fails() -> None:
        with storage(write=True) as uow:
            uow.ended_sessions.end("s-2", T0 + US)
            raise RuntimeError("the work failed")

    with pytest.raises(RuntimeError):
        fails()
    assert ended(storage, "kept", "s-1", "s-2") == [True, False, False]


def test_sessions_through_the_use_cases(storage: UnitOfWorkFactory, clock: FixedClock) -> None:
    first, second = StartSession(clock)(), StartSession(clock)()
    assert first.id != second.id
    assert first.expires_at == T0 + SESSION_LIFETIME
    holds, end = SessionHolds(storage, clock), EndSession(storage, clock)
    end(first)
    assert (holds(first), holds(second)) == (False, True)
    clock.advance(SESSION_LIFETIME)
    assert not holds(second)  # over, whatever storage says
    end(StartSession(clock)())  # purges the first, past its expiry now
    assert ended(storage, first.id) == [False]


# --- the SQL schema ----------------------------------------------------------------------


def test_autogenerate_through_env_py_proposes_nothing(database_url: str) -> None:
    # `alembic check` runs env.py's autogenerate; it raises if it would write a migration
    # (before env.py knew of the search index, it proposed dropping events_fts).
    upgrade_schema(database_url)
    config = alembic_config()
    config.cmd_opts = argparse.Namespace(x=[f"url={database_url}"])
    alembic_command.check(config)


def test_the_migrations_build_exactly_the_schema_module(database_url: str) -> None:
    upgrade_schema(database_url)  # a second upgrade changes nothing
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "compare_type": True,
                    "include_object": described_on(connection.dialect.name),
                },
            )
            assert compare_metadata(context, metadata) == []
            assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [
                ("0008",)
            ]
            if connection.dialect.name == "postgresql":
                # compare_metadata does not compare collations; the prefix range needs "C".
                collation = connection.execute(
                    sa.text(
                        "SELECT collation_name FROM information_schema.columns"
                        " WHERE table_name = 'events' AND column_name = 'action'"
                    )
                ).scalar_one()
                assert collation == "C"
                # compare_metadata does not compare storage parameters either.
                options = connection.execute(
                    sa.text(
                        "SELECT reloptions FROM pg_class"
                        " WHERE relname = 'ix_events_search_text_trgm'"
                    )
                ).scalar_one()
                assert options == ["gin_pending_list_limit=1024"]
    finally:
        engine.dispose()


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_0008_upgrades_a_database_of_0007_keeping_its_log_and_tokens(
    request: pytest.FixtureRequest, kind: str, clock: FixedClock
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    upgrade_schema(url, revision="0007")
    engine = create_engine_for(url)
    try:
        storage = SqlUnitOfWorkFactory(engine)
        stored = [r.event for r in RecordEvents(storage, clock)("acme", [new("a"), new("b")])]
        issued = IssueToken(storage, clock)("acme", "n", frozenset({Scope.EVENTS_READ}))
        upgrade_schema(url)
        with engine.connect() as connection:
            versions = connection.execute(sa.text("SELECT version_num FROM alembic_version"))
            assert versions.all() == [("0008",)]
        assert all_events(storage, "acme") == stored
        assert VerifyChain(storage)("acme").valid
        with storage() as uow:
            assert uow.tokens.get(issued.token.id) == issued.token
        session = StartSession(clock)()
        assert SessionHolds(storage, clock)(session)
        EndSession(storage, clock)(session)
        assert not SessionHolds(storage, clock)(session)
    finally:
        engine.dispose()


def test_a_sessions_check_is_one_lookup_by_its_primary_key(sqlite_url: str) -> None:
    upgrade_schema(sqlite_url)
    engine = create_engine_for(sqlite_url)
    statements: list[str] = []

    @sa.event.listens_for(engine, "before_cursor_execute")
    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    try:
        storage = SqlUnitOfWorkFactory(engine)
        with storage() as uow:
            statements.clear()
            assert not uow.ended_sessions.is_ended("s-1")
        [read] = statements
        with engine.connect() as connection:
            plan = connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {read}", ("s-1",)).all()
        [(*_, detail)] = plan
        assert "USING COVERING INDEX sqlite_autoindex_ended_sessions_1 (id=?)" in detail
    finally:
        engine.dispose()


# Each selective filter and the index that must answer it (SQLite names a primary key's
# index sqlite_autoindex_<table>_1).
INDEXED_FILTERS = [
    (EventFilter(actor_id="alice"), ["ix_events_tenant_actor_id_seq"]),
    (EventFilter(action="user.login"), ["ix_events_tenant_action_seq"]),
    (EventFilter(action_prefix="document."), ["ix_events_tenant_action_seq"]),
    (EventFilter(outcome="failure"), ["ix_events_tenant_outcome_seq"]),
    (EventFilter(since=T0, until=T0 + timedelta(seconds=5)), ["ix_events_tenant_occurred_at_us"]),
    (EventFilter(target_id="doc-1"), ["pk_event_targets", "sqlite_autoindex_event_targets_1"]),
]


def fill_for_planning(engine: sa.Engine, count: int = 4000) -> None:
    """Many events in which each filter of INDEXED_FILTERS is selective, and statistics."""

    def event(n: int) -> Event:
        rare = n % 400 == 0
        return Event(
            id=f"p-{n}",
            seq=n + 1,
            tenant="acme",
            action="user.login" if rare else ("document.x" if n % 400 == 1 else f"x.{n % 300}"),
            actor=Party(id="alice" if rare else f"actor-{n % 1000}"),
            targets=(Party(id="doc-1" if rare else f"t-{n}"),),
            outcome="failure" if rare else "success",
            occurred_at=T0 + timedelta(seconds=n - count // 2),
            received_at=T0,
            source=Source(),
            description=None,
            metadata={},
            prev_hash=GENESIS_HASH,
            hash=GENESIS_HASH,
        )

    with engine.begin() as connection:
        events = [event(n) for n in range(count)]
        SqlEventRepository(connection).add("acme", events, ["fp"] * count, [])
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")


@pytest.mark.parametrize(("where", "indexes"), INDEXED_FILTERS)
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_each_filter_is_index_backed(
    database_url: str, where: EventFilter, indexes: list[str], order: Any
) -> None:
    engine = create_engine_for(database_url)
    try:
        fill_for_planning(engine)
        page = PageRequest(limit=50, order=order, after_seq=3000 if order == "desc" else 10)
        found, captured = page_and_statements(engine, where, page)
        assert found  # the filter does select something
        statement, params = captured[-1]
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                explain = "EXPLAIN "
            else:
                explain = "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(explain + statement, params)
            plan = "\n".join(str(row[-1]) for row in rows)
        assert any(index in plan for index in indexes), plan
        # (the page's epoch is read from its one-row table: a scan of one row)
        assert "Seq Scan" not in plan.replace("Seq Scan on revocation_epoch", ""), plan
        assert "SCAN events" not in plan.replace("SCAN events USING", ""), plan
    finally:
        engine.dispose()


@pytest.mark.parametrize("count", [1, 1000])
def test_existing_asks_by_the_unique_index_in_one_query(database_url: str, count: int) -> None:
    """The ids a request chose are looked up in one statement, each by (tenant, id)."""
    upgrade_schema(database_url)
    engine = create_engine_for(database_url)
    try:
        with engine.connect() as connection:
            dialect = connection.dialect.name
            sql, params = existing_lookup(dialect, "acme", [f"id-{n}" for n in range(count)])
            if dialect == "postgresql":
                plan = "\n".join(
                    row[0] for row in connection.exec_driver_sql("EXPLAIN " + sql, params)
                )
                # (On an empty table the planner may take another index of the tenant.)
                assert "Index" in plan, plan
                assert "Seq Scan on events" not in plan, plan
            else:
                explain = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, params)
                plan = "\n".join(row[3] for row in explain)
                assert "SEARCH events USING INDEX" in plan, plan
                assert "(tenant=? AND id=?)" in plan, plan
    finally:
        engine.dispose()


# --- the Merkle tree kept beside the log ---------------------------------------------------


def _tree_setup(storage: UnitOfWorkFactory, clock: FixedClock, sizes: Sequence[int]) -> Any:
    record = RecordEvents(storage, clock)
    n = 0
    for size in sizes:
        record("acme", [new(f"t-{n + k}") for k in range(size)])
        n += size
    record("globex", [new("t-0")])  # another tenant's tree stays apart
    return _identity()[0], n


class _Sink:
    def __init__(self) -> None:
        self.published: list[tuple[str, str]] = []

    def publish(self, tenant: str, note: str) -> None:
        self.published.append((tenant, note))


@pytest.mark.parametrize("sizes", [[1], [1, 1, 1], [3, 5, 1, 8, 2], [37], [1] * 9 + [20]])
def test_the_tree_kept_on_append_gives_the_rfc9162_root_and_proofs(
    storage: UnitOfWorkFactory, clock: FixedClock, sizes: list[int]
) -> None:
    from audit.application.proofs import ProveConsistency, ProveInclusion, SignCheckpoint
    from audit.domain.tree import event_leaf
    from audit.verify import (
        open_checkpoint,
        parse_vkey,
        root_from_leaf_hashes,
        verify_consistency,
        verify_inclusion,
    )

    identity, total = _tree_setup(storage, clock, sizes)
    verifier = parse_vkey(identity.signer.vkey)
    leaves = [event_leaf(e.hash) for e in all_events(storage, "acme")]
    assert len(leaves) == total
    sink = _Sink()
    sign = SignCheckpoint(storage, identity, sink)
    for size in range(1, total + 1):
        checkpoint = open_checkpoint(sign("acme", size), verifier, "example.org/audit/acme")
        assert (checkpoint.size, checkpoint.root_hash) == (
            size,
            root_from_leaf_hashes(leaves[:size]),
        )
    assert sink.published == []
    latest = open_checkpoint(sign("acme"), verifier)
    assert latest.size == total
    assert [t for t, _ in sink.published] == ["acme"]

    prove = ProveInclusion(storage, identity)
    for index in range(total):
        proof = prove("acme", f"t-{index}")
        assert (proof.leaf_index, proof.tree_size) == (index, total)
        root = open_checkpoint(proof.checkpoint, verifier).root_hash
        verify_inclusion(leaves[index], index, total, proof.hashes, root)
    consistency = ProveConsistency(storage)
    for first in range(1, total + 1):
        hashes = consistency("acme", first, total)
        verify_consistency(
            first,
            total,
            root_from_leaf_hashes(leaves[:first]),
            root_from_leaf_hashes(leaves),
            hashes,
        )


def test_proof_sizes_outside_the_log_are_invalid(
    storage: UnitOfWorkFactory, clock: FixedClock
) -> None:
    from audit.application.proofs import ProveConsistency, ProveInclusion, SignCheckpoint
    from audit.domain.errors import InvalidParameter

    identity, _ = _tree_setup(storage, clock, [5])
    sign = SignCheckpoint(storage, identity, _Sink())
    for size in (0, 6, -1):
        with pytest.raises(InvalidParameter):
            sign("acme", size)
    prove = ProveInclusion(storage, identity)
    with pytest.raises(InvalidParameter):
        prove("acme", "t-3", 3)  # seq 4 is not in the tree of size 3
    with pytest.raises(NotFound):
        prove("globex", "t-3")
    consistency = ProveConsistency(storage)
    for first, second in ((0, 5), (3, 2), (1, 6)):
        with pytest.raises(InvalidParameter):
            consistency("acme", first, second)
    assert consistency("acme", 5, 5) == []


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_upgrading_a_log_written_before_the_tree_builds_its_tree(
    request: pytest.FixtureRequest, backend: str, clock: FixedClock
) -> None:
    from audit.adapters.sql.rows import event_row
    from audit.application.proofs import SignCheckpoint
    from audit.domain.tree import event_leaf
    from audit.verify import open_checkpoint, parse_vkey, root_from_leaf_hashes

    url: str = request.getfixturevalue(f"{backend}_url")
    upgrade_schema(url, revision="0001")
    engine = create_engine_for(url)
    try:
        # Revision 0001 has no merkle_nodes table: write as that version did.
        with engine.begin() as connection:
            head = ChainHead()
            for tenant, count in (("acme", 300), ("globex", 7)):
                events = seal(
                    head, tenant, T0, [(f"old-{i}", new(f"old-{i}")) for i in range(count)]
                )
                connection.execute(
                    sa.insert(metadata.tables["events"]),
                    [event_row(tenant, e, "fp") for e in events],
                )
                connection.execute(
                    sa.insert(metadata.tables["chain_heads"]).values(
                        tenant=tenant, seq=events[-1].seq, hash=events[-1].hash
                    )
                )
        upgrade_schema(url)
        storage = SqlUnitOfWorkFactory(engine)
        identity, _ = _identity()
        for tenant, count in (("acme", 300), ("globex", 7)):
            leaves = [event_leaf(e.hash) for e in all_events(storage, tenant)]
            note = SignCheckpoint(storage, identity, _Sink())(tenant)
            checkpoint = open_checkpoint(note, parse_vkey(identity.signer.vkey))
            assert checkpoint.size == count
            assert checkpoint.root_hash == root_from_leaf_hashes(leaves)
        # ... and appending after the upgrade goes on from the backfilled frontier.
        RecordEvents(storage, clock)("acme", [new("after-upgrade")])
        leaves = [event_leaf(e.hash) for e in all_events(storage, "acme")]
        note = SignCheckpoint(storage, identity, _Sink())("acme")
        assert open_checkpoint(note, parse_vkey(identity.signer.vkey)).root_hash == (
            root_from_leaf_hashes(leaves)
        )
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_upgrading_a_log_written_before_the_search_index_indexes_it(
    request: pytest.FixtureRequest, backend: str, clock: FixedClock
) -> None:
    url: str = request.getfixturevalue(f"{backend}_url")
    upgrade_schema(url, revision="0002")
    engine = create_engine_for(url)
    try:
        storage = SqlUnitOfWorkFactory(engine)
        # Revision 0002 writes as today, without the index.
        record = RecordEvents(storage, clock)
        texts = ["Needle in the HAYSTACK", "plain hay", "more hay", "a needle again"]
        before = [
            r.event
            for tenant in ("acme", "globex")
            for r in record(tenant, [new(f"old-{i}", description=t) for i, t in enumerate(texts)])
        ]
        upgrade_schema(url)
        after = [r.event for r in record("acme", [new("new", description="NEEDLE after")])]
        query = QueryEvents(storage)
        everything = PageRequest(limit=100, order="asc")

        def check() -> None:
            assert query("acme", EventFilter(q="needle"), everything).events == [
                before[0],
                before[3],
                after[0],
            ]
            assert query("acme", EventFilter(q="hay"), everything).events == before[:3]
            assert query("globex", EventFilter(q="haystack"), everything).events == [before[4]]
            assert query("acme", EventFilter(q="ne"), everything).events == [
                before[0],
                before[3],
                after[0],
            ]

        check()  # on SQLite, whatever the indexer has done so far
        if backend == "sqlite":
            # Found through the index once it caught up, not by a walk hiding an empty one.
            database = str(sqlite_file(url))
            wait_until_indexed(database)
            check()
            with engine.connect() as connection:
                indexed = connection.exec_driver_sql(
                    "SELECT count(*) FROM search.events_trigrams WHERE events_trigrams MATCH ?",
                    (fts5_trigrams("needle"),),
                ).scalar_one()
                tables = connection.exec_driver_sql(
                    "SELECT name FROM main.sqlite_master WHERE name LIKE 'events_fts%'"
                ).all()
            assert indexed == 5
            assert tables == []  # 0007 dropped the index kept in the database
    finally:
        engine.dispose()


def _identity() -> Any:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.adapters.signing import Ed25519NoteSigner
    from audit.application.proofs import LogIdentity

    signer = Ed25519NoteSigner("example.org/audit", Ed25519PrivateKey.generate())
    return LogIdentity("example.org/audit", signer), None


@pytest.mark.parametrize("kind", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_first_signing_key_recorded_stays_until_replaced_on_purpose(
    request: pytest.FixtureRequest, kind: str
) -> None:
    url: str = request.getfixturevalue(f"{kind}_url")
    upgrade_schema(url)
    engine = create_engine_for(url)
    try:
        record = SqlSigningKeyRecord(engine)
        assert record.recorded() is None
        assert record.record_first("key-one") == "key-one"
        assert record.record_first("key-two") == "key-one"  # a second server, later
        assert record.recorded() == "key-one"
        record.record("key-two")  # --accept-new-signing-key
        assert record.recorded() == "key-two"
    finally:
        engine.dispose()
