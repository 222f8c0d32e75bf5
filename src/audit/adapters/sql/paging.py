"""Pages of events: one statement per shape of request (dialect, order, search, filters
given), built once and cached, with every value a bound parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.sql.util import ClauseAdapter

from audit.adapters.sql.rows import EVENT_COLUMNS
from audit.adapters.sql.schema import EPOCH_ROW_ID, event_targets, revocation_epoch
from audit.adapters.sql.schema import events as events_table
from audit.adapters.sql.search import (
    TAIL_ROWID,
    _pg_candidates,
    _pg_contains,
    _sqlite_search,
    fts5_trigrams,
    like_escaped,
    prefix_upper_bound,
)
from audit.adapters.sql.search_index import events_trigrams
from audit.domain.query import EventFilter, PageRequest
from audit.domain.time import to_micros

# Everything an Event is made of, in the order row_event reads; search_text and
# fingerprint stay in the database.
_EVENT_COLUMNS = [events_table.c[name] for name in EVENT_COLUMNS]


def _page_parameters(
    tenant: str, where: EventFilter, page: PageRequest, needle: str | None
) -> dict[str, Any]:
    """The values of a page's statement, by bound parameter name. Which names are here
    (with the dialect, the order and how `q` is searched) decides the statement."""
    params: dict[str, Any] = {"tenant": tenant, "limit": page.limit}
    if needle is not None:
        params["q_needle"] = needle
        params["q_escaped"] = like_escaped(needle)
        params["q_trigrams"] = fts5_trigrams(needle)
    if where.target_id is not None:
        params["target_id"] = where.target_id
    if page.after_seq is not None:
        params["after_seq"] = page.after_seq
    if page.through_seq is not None:
        params["through_seq"] = page.through_seq
    if where.actor_id is not None:
        params["actor_id"] = where.actor_id
    if where.action is not None:
        params["action"] = where.action
    if where.action_prefix:
        # A range rather than LIKE: index-backed on both engines, nothing to escape.
        params["action_from"] = where.action_prefix
        upper = prefix_upper_bound(where.action_prefix)
        if upper is not None:
            params["action_below"] = upper
    if where.outcome is not None:
        params["outcome"] = where.outcome
    if where.since is not None:
        params["since_us"] = to_micros(where.since)
    if where.until is not None:
        params["until_us"] = to_micros(where.until)
    return params


@attrs.frozen
class _PageShape:
    """What a page's statement depends on: its values are bound parameters."""

    dialect: str
    order: str
    # How `q` is searched: None (no q), "few" candidates, or "walk"; on SQLite also the
    # "tail" of events its index does not hold yet, read apart from the "few".
    search: str | None
    names: frozenset[str]  # the parameters given (_page_parameters)


# The page statements built so far, by shape: building a SQLAlchemy statement, and its
# cache key, for every page cost more than running it. Bounded: per dialect, 2 orders x
# 3 ways of searching x the subsets of 10 optional filters; a service sees a handful.
_PAGE_STATEMENTS: dict[_PageShape, sa.Select[Any]] = {}


def _page_statement(shape: _PageShape) -> sa.Select[Any]:
    """The statement of every page of `shape`."""
    names = shape.names
    search = shape.search
    # What the page reads: `events`; or, on PostgreSQL with few candidates, those alone
    # (same columns). SQLite joins its candidates to `events` in _sqlite_search().
    rows: sa.FromClause = events_table
    if search == "few" and shape.dialect == "postgresql":
        rows = _pg_candidates(*_EVENT_COLUMNS)
        search = None  # every candidate holds it
    query = sa.select(*(rows.c[c.name] for c in _EVENT_COLUMNS))
    if rows is events_table:  # (the candidates are the tenant's already)
        query = query.where(events_table.c.tenant == sa.bindparam("tenant"))
    if search is not None:
        if shape.dialect == "postgresql":
            query = query.where(_pg_contains())  # the walk
        else:
            query = _sqlite_search(query, search)
    seq = rows.c.seq
    if "target_id" in names:
        # Driven by event_targets' key (tenant, target_id, seq): it yields the target's
        # events already in seq order, so a page reads no more rows than it returns.
        # (A correlated EXISTS would make SQLite walk every event of the tenant.)
        # One row per distinct target id per event, so the join repeats no event.
        # Few candidates are ordered by their own seq instead, and joined on it alone
        # (all are the tenant's): an equality on their tenant column, of which the
        # planner knows nothing, would make it expect 0.5% of them.
        same_event = event_targets.c.seq == rows.c.seq
        if rows is events_table:
            same_event = sa.and_(event_targets.c.tenant == rows.c.tenant, same_event)
            seq = event_targets.c.seq
        query = query.join(event_targets, same_event).where(
            event_targets.c.tenant == sa.bindparam("tenant"),
            event_targets.c.target_id == sa.bindparam("target_id"),
        )
    if "after_seq" in names:
        after: sa.BindParameter[int] = sa.bindparam("after_seq")
        query = query.where(seq > after if shape.order == "asc" else seq < after)
    if "through_seq" in names:
        query = query.where(seq <= sa.bindparam("through_seq"))
    conditions = _filter(names)
    if rows is not events_table:
        on_rows = ClauseAdapter(rows)  # the same conditions, on the candidates' columns
        conditions = [on_rows.traverse(condition) for condition in conditions]
    query = query.where(*conditions)
    if search == "few" and shape.dialect == "sqlite":
        # In the index's own order, which is the log's: the page ends with its last
        # event, instead of every candidate being read and sorted (bench/README.md has the
        # figures). events_trigrams's rowids are events' rowids, and
        # SQLite gives a new row the largest rowid yet; events are never deleted, and
        # each tenant's are inserted in seq order. So rowid order is seq order within a
        # tenant: the same invariant that makes the index's rowids name the right events.
        seq = events_trigrams.c.rowid
    elif search == "tail":
        seq = TAIL_ROWID  # the same order, read from the range of rowids
    order = seq.asc() if shape.order == "asc" else seq.desc()
    if shape.dialect == "postgresql":
        # Each row also carries the revocation epoch as this statement reads it (the same
        # for every row; None without the epoch's row), after the event's columns: a
        # request on a kept principal checks it without a round trip of its own
        # (StatementEpoch). SQLite's epoch is the beacon's, which reads no table.
        epoch = (
            sa.select(revocation_epoch.c.epoch)
            .where(revocation_epoch.c.id == EPOCH_ROW_ID)
            .scalar_subquery()
        )
        query = query.add_columns(epoch.label("revocation_epoch"))
    return query.order_by(order).limit(sa.bindparam("limit", type_=sa.Integer()))


# The event filters bound by name: column OP :name, with exactly the semantics of
# audit.domain.query.matches. All but `target_id`, which the page joins, and `q`.
_FILTERS: list[tuple[str, Callable[[sa.BindParameter[Any]], sa.ColumnElement[bool]]]] = [
    ("actor_id", lambda value: events_table.c.actor_id == value),
    ("action", lambda value: events_table.c.action == value),
    ("action_from", lambda value: events_table.c.action >= value),
    ("action_below", lambda value: events_table.c.action < value),
    ("outcome", lambda value: events_table.c.outcome == value),
    ("since_us", lambda value: events_table.c.occurred_at_us >= value),
    ("until_us", lambda value: events_table.c.occurred_at_us < value),
]


def _filter(names: frozenset[str]) -> list[sa.ColumnElement[bool]]:
    """The conditions of the filters among `names`."""
    return [condition(sa.bindparam(name)) for name, condition in _FILTERS if name in names]
