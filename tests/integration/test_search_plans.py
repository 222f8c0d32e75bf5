"""The index behind `q`: both engines' plans use it (SQLite's kept apart: test_search_index.py).

Both engines answer a needle of 3 characters or more from their trigram index while it
has few candidates (SQLite's FTS5 table search.events_trigrams, PostgreSQL's pg_trgm GIN
index), and otherwise (a common or a shorter needle) walk the tenant's events in seq
order until LIMIT; for that walk PostgreSQL's planner may still choose the index from its
statistics.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from audit.adapters.sql import (
    create_engine_for,
    sqlite_file,
    upgrade_schema,
)
from audit.adapters.sql import repositories as sql_repositories
from audit.adapters.sql.repositories import SqlEventRepository
from audit.adapters.sql.search_index import SearchIndexer
from audit.domain.chain import GENESIS_HASH
from audit.domain.events import Event, Party, Source
from audit.domain.query import EventFilter, PageRequest, matches

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
COUNT = 4000
GIN_INDEX = "ix_events_search_text_trgm"


def planned_event(n: int) -> Event:
    """Event n of COUNT: "needle" in 1 of 200, "login" in nearly all, alice 1 in 4."""
    if n % 400 in (7, 210):
        description = f"Found the NEEDLE in haystack {n}"
    else:
        description = f"login from host-{n % 211} through gate {n % 13}"
    return Event(
        id=f"p-{n}",
        seq=n + 1,
        tenant="acme",
        action=f"user.{n % 7}",
        actor=Party(id="alice" if n % 4 == 3 else f"actor-{n % 4}", name=f"User {n % 97}"),
        targets=(Party(id=f"doc-{n % 50}", name=f"Report {n}"),),
        outcome="success",
        occurred_at=T0 + timedelta(seconds=n),
        received_at=T0,
        source=Source(),
        description=description,
        metadata={"ticket": f"OPS-{n}"},
        prev_hash=GENESIS_HASH,
        hash=GENESIS_HASH,
    )


EVENTS = [planned_event(n) for n in range(COUNT)]


def index_all(url: str) -> None:
    """On SQLite, index every event now, as the background indexer would soon."""
    database = sqlite_file(url)
    if database is not None:
        indexer = SearchIndexer(str(database))
        try:
            indexer.catch_up()
        finally:
            indexer.close()


@pytest.fixture
def planned(database_url: str) -> Iterator[sa.Engine]:
    """An engine on COUNT analysed events, in the state a running service keeps them."""
    engine = create_engine_for(database_url)
    try:
        with engine.begin() as connection:
            SqlEventRepository(connection).add("acme", EVENTS, ["fp"] * COUNT, [])
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            if connection.dialect.name == "postgresql":
                # As autovacuum would: also moves GIN's pending list into the index
                # proper, without which the planner rightly avoids a fresh GIN index.
                connection.exec_driver_sql("VACUUM ANALYZE events")
            else:
                # `main`: the search index is attached too, read only (search_index.py).
                connection.exec_driver_sql("ANALYZE main")
        index_all(database_url)
        yield engine
    finally:
        engine.dispose()


def page_and_statements(
    engine: sa.Engine, where: EventFilter, page: PageRequest
) -> tuple[list[Event], list[tuple[str, Any]]]:
    """The page read, and every statement (with its parameters) that read it."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, params: Any, *_: Any) -> None:
        captured.append((statement, params))

    with engine.connect() as connection:
        sa.event.listen(engine, "before_cursor_execute", capture)
        try:
            found = SqlEventRepository(connection).page("acme", where, page)
        finally:
            sa.event.remove(engine, "before_cursor_execute", capture)
    return found, captured


def page_and_plan(engine: sa.Engine, where: EventFilter, page: PageRequest) -> tuple[Any, Any]:
    """The page read, and the plan of its (last) query: SQLite's lines or PostgreSQL's JSON."""
    found, captured = page_and_statements(engine, where, page)
    statement, params = captured[-1]
    with engine.connect() as connection:
        if connection.dialect.name == "postgresql":
            explain = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, params)
            return found, explain.scalar_one()[0]["Plan"]
        rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
        return found, [str(row[-1]) for row in rows]


def plan_nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from plan_nodes(child)


def full_scans_of_events(plan: Any) -> list[str]:
    """The steps of a plan that read every row of `events` (or of its table in PostgreSQL)."""
    if isinstance(plan, dict):
        return [
            f"{n['Node Type']} on events"
            for n in plan_nodes(plan)
            if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "events"
        ]
    # SQLite: "SCAN events" alone is the table; with USING, a whole index of it.
    return [line for line in plan if re.match(r"SCAN events\b(?!_fts)", line)]


def expected(where: EventFilter, page: PageRequest, events: list[Event] | None = None) -> list[int]:
    """The seqs of the page, by the reference semantics (over EVENTS by default)."""
    after = page.after_seq
    seqs = [
        e.seq
        for e in (EVENTS if events is None else events)
        if matches(e, where)
        and (after is None or (e.seq > after if page.order == "asc" else e.seq < after))
    ]
    return sorted(seqs, reverse=page.order == "desc")[: page.limit]


RARE = [EventFilter(q="needle"), EventFilter(q="NEEDLE in", actor_id="alice")]
PAGES = [
    PageRequest(limit=50, order="desc"),
    PageRequest(limit=50, order="asc"),
    PageRequest(limit=3, order="desc", after_seq=3000),
    PageRequest(limit=3, order="asc", after_seq=1000),
]


def fill_unanalysed(url: str) -> sa.Engine:
    upgrade_schema(url)
    engine = create_engine_for(url)
    with engine.begin() as connection:
        SqlEventRepository(connection).add("acme", EVENTS, ["fp"] * COUNT, [])
    index_all(url)
    return engine


@pytest.mark.parametrize(
    "where",
    [
        EventFilter(q="needle", actor_id="alice"),
        EventFilter(q="needle", target_id="doc-10"),
        EventFilter(q="needle", action="user.0"),
        EventFilter(q="needle", since=T0),
    ],
)
def test_sqlite_drives_a_rare_needle_from_the_index_without_statistics(
    sqlite_url: str, where: EventFilter
) -> None:
    # The service never runs ANALYZE: SQLite then guesses another filter's index to be
    # selective, and would walk it all (every event of alice's, of the time range...)
    # looking for the needle. The index's few candidates are the bounded way in.
    engine = fill_unanalysed(sqlite_url)
    try:
        page = PageRequest(limit=50)
        found, plan = page_and_plan(engine, where, page)
        assert [e.seq for e in found] == expected(where, page)
        assert found
        assert plan[0].startswith("SCAN search.events_trigrams VIRTUAL TABLE"), plan
        assert full_scans_of_events(plan) == [], plan
    finally:
        engine.dispose()


@pytest.mark.parametrize("where", RARE)
@pytest.mark.parametrize("page", PAGES)
def test_a_rare_needle_is_found_through_the_index(
    planned: sa.Engine, where: EventFilter, page: PageRequest
) -> None:
    found, plan = page_and_plan(planned, where, page)
    assert [e.seq for e in found] == expected(where, page)
    assert found  # the needle does select something
    assert full_scans_of_events(plan) == [], plan
    if isinstance(plan, dict):
        assert GIN_INDEX in {n.get("Index Name") for n in plan_nodes(plan)}, plan
    else:
        # Driven by the index: its candidates first, each event fetched by rowid, in
        # the index's rowid order, which is seq order: nothing read beyond the page.
        assert plan[0].startswith("SCAN search.events_trigrams VIRTUAL TABLE"), plan
        assert plan[1] == "SEARCH events USING INTEGER PRIMARY KEY (rowid=?)", plan
        assert not any("TEMP B-TREE" in line for line in plan), plan


COMMON = [EventFilter(q="login"), EventFilter(q="gin", actor_id="alice"), EventFilter(q="lo")]


@pytest.mark.parametrize("where", COMMON)
@pytest.mark.parametrize("page", PAGES)
def test_a_common_or_short_needle_walks_the_log_in_seq_order(
    planned: sa.Engine, where: EventFilter, page: PageRequest
) -> None:
    # Most events match: reading them in seq order finds a page at once, where the
    # index would hand over nearly every event to be sorted.
    found, plan = page_and_plan(planned, where, page)
    assert [e.seq for e in found] == expected(where, page)
    assert full_scans_of_events(plan) == [], plan
    if isinstance(plan, dict):
        kinds = {n["Node Type"] for n in plan_nodes(plan)}
        assert plan["Node Type"] == "Limit", plan
        assert "Sort" not in kinds, plan
    else:
        assert all("events_trigrams" not in line for line in plan), plan
        assert not any("TEMP B-TREE" in line for line in plan), plan


# --- PostgreSQL: a rare needle's page is read from its candidates -----------------------

# A needle the planner knows to be rare (1 event in 40, exact statistics) but whose events
# all sit together in the middle of the log, as an incident's do. Under LIMIT the planner
# expects to meet them early anywhere and walked the primary key (or the actor's index)
# through half the log; its estimate can be no better, so the page must not depend on it.
CLUSTERED_COUNT = 4000
INCIDENT = range(1900, 2000)
INCIDENT_TEXT = "Escalated to the QUARTZ on-call team"


def clustered_event(n: int) -> Event:
    """Event n of CLUSTERED_COUNT: the INCIDENT events hold "quartz", no other does."""
    event = planned_event(n)
    if n not in INCIDENT:
        return event
    return attrs.evolve(event, description=f"{INCIDENT_TEXT}, call {n % 7}")


CLUSTERED = [clustered_event(n) for n in range(CLUSTERED_COUNT)]


@pytest.fixture
def clustered(postgres_url: str) -> Iterator[sa.Engine]:
    """An engine on CLUSTERED, vacuumed and analysed as autovacuum leaves a table."""
    upgrade_schema(postgres_url)
    engine = create_engine_for(postgres_url)
    try:
        with engine.begin() as connection:
            SqlEventRepository(connection).add("acme", CLUSTERED, ["fp"] * CLUSTERED_COUNT, [])
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.exec_driver_sql("VACUUM ANALYZE events")
        yield engine
    finally:
        engine.dispose()


def analysed_plans(engine: sa.Engine, statements: list[tuple[str, Any]]) -> list[dict[str, Any]]:
    """PostgreSQL's plan of each statement, as it ran: EXPLAIN ANALYZE (they only read)."""
    with engine.connect() as connection:
        return [
            connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + statement, params
            ).scalar_one()[0]["Plan"]
            for statement, params in statements
        ]


def rows_read_from_events(plan: dict[str, Any]) -> int:
    """How many rows of `events` a plan looked at, kept or not, in every loop."""
    return sum(
        (
            n["Actual Rows"]
            + n.get("Rows Removed by Filter", 0)
            + n.get("Rows Removed by Index Recheck", 0)
        )
        * n["Actual Loops"]
        for n in plan_nodes(plan)
        if n.get("Relation Name") == "events"
    )


def index_walks_of_events(plan: dict[str, Any]) -> list[str]:
    """Scans of a B-tree index of `events` (its primary key or a filter's): the walks."""
    return [
        f"{n['Node Type']} using {n['Index Name']}"
        for n in plan_nodes(plan)
        if n["Node Type"] in ("Index Scan", "Index Only Scan")
        and n.get("Relation Name") == "events"
    ]


CLUSTERED_PAGES = [
    PageRequest(limit=3, order="desc"),
    PageRequest(limit=3, order="asc"),
    PageRequest(limit=50, order="desc"),
    PageRequest(limit=50, order="asc"),
    PageRequest(limit=3, order="desc", after_seq=1950),
    PageRequest(limit=3, order="asc", after_seq=1950, through_seq=1990),
]


@pytest.mark.postgres
@pytest.mark.parametrize(
    "where",
    [
        EventFilter(q="quartz"),
        EventFilter(q="QUARTZ on-call", actor_id="alice"),
        EventFilter(q="quartz", target_id="doc-10"),
        EventFilter(q="quartz", action="user.3", since=T0),
    ],
)
def test_postgres_reads_a_rare_needle_from_its_candidates(
    clustered: sa.Engine, where: EventFilter
) -> None:
    for page in CLUSTERED_PAGES:
        found, statements = page_and_statements(clustered, where, page)
        assert [e.seq for e in found] == expected(where, page, CLUSTERED), page
        assert found, page  # the needle does select something
        # The log's size, read from its chain head, sets how many candidates may be used.
        head, *reads = statements
        assert "chain_heads" in head[0], head
        # Every statement after it: the candidates counted, then the page read from them.
        for plan in analysed_plans(clustered, reads):
            assert full_scans_of_events(plan) == [], (page, plan)
            assert index_walks_of_events(plan) == [], (page, plan)
            assert GIN_INDEX in {n.get("Index Name") for n in plan_nodes(plan)}, (page, plan)
            assert rows_read_from_events(plan) <= len(INCIDENT), (page, plan)


@pytest.mark.postgres
def test_postgres_counts_no_further_than_the_candidates_it_may_use(
    clustered: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # With fewer allowed than the needle has, the count stops one past the bound and the
    # page walks the log in seq order instead, to the same events.
    monkeypatch.setattr(sql_repositories, "candidates_bound", lambda size, limit: 10)
    where, page = EventFilter(q="quartz"), PageRequest(limit=50, order="asc")
    found, statements = page_and_statements(clustered, where, page)
    assert [e.seq for e in found] == expected(where, page, CLUSTERED)
    _head, (count, count_params), (page_statement, _) = statements
    [plan] = analysed_plans(clustered, [(count, count_params)])
    assert rows_read_from_events(plan) == 11, plan
    assert GIN_INDEX in {n.get("Index Name") for n in plan_nodes(plan)}, plan
    assert "MATERIALIZED" in count
    assert "MATERIALIZED" not in page_statement  # the walk, as without the count


@pytest.mark.postgres
def test_postgres_answers_a_needle_in_no_event_from_the_count_alone(clustered: sa.Engine) -> None:
    where = EventFilter(q="quartz on-call team, call 9", actor_id="alice")
    found, statements = page_and_statements(clustered, where, PageRequest(limit=50))
    assert found == []
    _head, count = statements
    [plan] = analysed_plans(clustered, [count])
    assert GIN_INDEX in {n.get("Index Name") for n in plan_nodes(plan)}, plan
    # The incident's events hold every trigram of the needle, so the index hands them over.
    assert rows_read_from_events(plan) <= len(INCIDENT), plan
