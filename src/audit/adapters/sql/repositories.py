"""The event and token repositories on one SQLAlchemy Connection. They never commit."""

from __future__ import annotations

import builtins
import functools
import math
from collections.abc import Callable, Collection, Sequence
from typing import Any

import attrs
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Join
from sqlalchemy.sql.util import ClauseAdapter

from audit.adapters.sql.rows import (
    EVENT_COLUMNS,
    event_row,
    event_target_rows,
    row_event,
    row_json,
)
from audit.adapters.sql.schema import chain_heads, event_targets, events_fts, merkle_nodes
from audit.adapters.sql.schema import events as events_table
from audit.domain.chain import GENESIS_HASH, ChainHead
from audit.domain.events import Event, EventJson
from audit.domain.query import EventFilter, PageRequest
from audit.domain.time import to_micros
from audit.domain.validation import string_problem

# Everything an Event is made of, in the order row_event reads; search_text and
# fingerprint stay in the database.
_EVENT_COLUMNS = [events_table.c[name] for name in EVENT_COLUMNS]

# SQLite's trigram index holds every 3-character run of the text: a shorter needle
# contains no trigram, so the index cannot narrow the search for it.
TRIGRAM = 3
# Above a bound of candidates from the trigram index, a page of `q` walks the tenant's
# events in seq order instead: collecting and sorting every candidate would cost more
# than reading the rows a page needs when the needle is that common. Collecting c
# candidates reads about c rows; a walk about limit x size / c. They break even near
# sqrt(limit x size): about 700 at 10^4 events, 7,000 at 10^6. The bound is that, kept
# between these two.
FTS_CANDIDATES_MAX = 1000
FTS_CANDIDATES_CEILING = 20_000


def candidates_bound(size: int, limit: int) -> int:
    """How many candidates a page of `limit` from a log of `size` events may collect."""
    return min(max(FTS_CANDIDATES_MAX, math.isqrt(limit * size)), FTS_CANDIDATES_CEILING)


def prefix_upper_bound(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (None: no such bound).

    In code point order, which is SQLite's BINARY and PostgreSQL's "C" collation on
    UTF-8: `s.startswith(p)` exactly when `p <= s < prefix_upper_bound(p)`.
    """
    chars = list(prefix)
    while chars:
        following = ord(chars.pop()) + 1
        if 0xD800 <= following <= 0xDFFF:  # surrogates are not characters of stored text
            following = 0xE000
        if following <= 0x10FFFF:
            return "".join(chars) + chr(following)
    return None


def fts5_phrase(text: str) -> str:
    """`text` as an FTS5 string: one phrase whose every character is literal.

    Inside double quotes FTS5 syntax (AND, OR, NEAR, *, ^, -, :, parentheses) is
    plain text, and a double quote is written twice.
    """
    return '"' + text.replace('"', '""') + '"'


def like_escaped(text: str) -> str:
    """`text` with LIKE's wildcards made literal, for `LIKE ... ESCAPE '\\'`."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


class _LeftFirstJoin(Join):
    """An inner join that SQLite must run with its left side as the outer loop.

    SQLite's planner never reorders the two sides of a CROSS JOIN (its documented way of
    fixing a plan); other engines see a plain JOIN.
    """

    inherit_cache = True


@compiles(_LeftFirstJoin, "sqlite")
def _cross_join(join: _LeftFirstJoin, compiler: SQLCompiler, **kw: Any) -> str:
    # Rendered as the plain join it is; its left side is a table, so the first " JOIN "
    # is this join's own.
    rendered = compiler.process(Join(join.left, join.right, join.onclause), **kw)
    return rendered.replace(" JOIN ", " CROSS JOIN ", 1)


# The statements of the ingest and authentication paths, built once with bound
# parameters: building a SQLAlchemy expression per call cost more than running it.
_HEAD = sa.select(chain_heads.c.seq, chain_heads.c.hash).where(
    chain_heads.c.tenant == sa.bindparam("tenant")
)
_LOCK_HEAD = _HEAD.with_for_update()
_ENSURE_HEAD = (
    postgresql.insert(chain_heads)
    .values(tenant=sa.bindparam("head_tenant"), seq=0, hash=GENESIS_HASH)
    .on_conflict_do_nothing(index_elements=[chain_heads.c.tenant])
)
_MOVE_HEAD = (
    sa.update(chain_heads)
    .where(chain_heads.c.tenant == sa.bindparam("head_tenant"))
    .values(seq=sa.bindparam("new_seq"), hash=sa.bindparam("new_hash"))
)
_EXISTING = sa.select(events_table.c.fingerprint, *_EVENT_COLUMNS).where(
    events_table.c.tenant == sa.bindparam("tenant"),
    events_table.c.id.in_(sa.bindparam("ids", expanding=True)),
)
_GET = sa.select(*_EVENT_COLUMNS).where(
    events_table.c.tenant == sa.bindparam("tenant"),
    events_table.c.id == sa.bindparam("event_id"),
)
_CHAIN_HASHES = sa.select(events_table.c.seq, events_table.c.hash).where(
    events_table.c.tenant == sa.bindparam("tenant"),
    events_table.c.seq.in_(sa.bindparam("seqs", expanding=True)),
)
_INSERT_EVENTS = sa.insert(events_table)
_INSERT_TARGETS = sa.insert(event_targets)
_INSERT_NODES = sa.insert(merkle_nodes)


@functools.lru_cache(maxsize=256)
def _subtree_lookups(count: int) -> sa.Executable:
    c = merkle_nodes.c
    lookups = [
        sa.select(c.level, c.idx, c.hash).where(
            c.tenant == sa.bindparam("tenant"),
            c.level == sa.bindparam(f"level_{k}"),
            c.idx == sa.bindparam(f"idx_{k}"),
        )
        for k in range(count)
    ]
    return lookups[0] if count == 1 else sa.union_all(*lookups)


def subtree_query(
    tenant: str, coords: Collection[tuple[int, int]]
) -> tuple[sa.Executable, dict[str, Any]]:
    """One primary-key lookup per subtree, in one statement, and its parameters.

    Not `tenant = ? AND ((level = ? AND idx = ?) OR ...)`: SQLite plans that as a walk of
    every node of the tenant, which made each append cost O(size), not O(log size).
    """
    params: dict[str, Any] = {"tenant": tenant}
    for k, (level, index) in enumerate(coords):
        params[f"level_{k}"] = level
        params[f"idx_{k}"] = index
    return _subtree_lookups(len(coords)), params


def _pg_contains() -> sa.ColumnElement[bool]:
    """`search_text LIKE '%' || :q_escaped || '%'`, the needle made literal by like_escaped:
    a test pg_trgm's GIN answers.

    LIKE rather than strpos: the index answers LIKE when the needle has 3 characters or
    more. search_text is stored lower-cased; the needle must be lower-cased already.
    """
    percent = sa.literal_column("'%'", sa.Text())
    escaped = sa.bindparam("q_escaped", type_=sa.Text())
    return events_table.c.search_text.like(percent.concat(escaped).concat(percent), escape="\\")


def _pg_candidates(*columns: sa.ColumnElement[Any]) -> sa.CTE:
    """The events of :tenant holding the needle (_pg_contains), as a MATERIALIZED CTE of
    `columns`.

    PostgreSQL plans a CTE for reading all of its rows, whatever LIMIT its reader has,
    and runs it only as far as it is read: for a needle not estimated to be common that
    plan is a bitmap scan of the trigram index, where a LIMIT seen by the planner made
    it walk the primary key (or the table) hoping to meet enough matches early.

    The tenant is tested on the rows the trigram index finds, never through an index of
    its own (`tenant || ''` has none): with statistics from when the log was small, right
    after a bulk load, PostgreSQL ANDed the trigram bitmap with one of every event of the
    tenant from ix_events_tenant_occurred_at_us, 31 ms of a 34 ms count at 10^6 events.
    """
    tenant_of_row = events_table.c.tenant.concat("")
    found = sa.select(*columns).where(tenant_of_row == sa.bindparam("tenant"), _pg_contains())
    return found.cte("hits").prefix_with("MATERIALIZED", dialect="postgresql")


def _count_of(candidates: sa.Select[Any]) -> sa.Select[Any]:
    """How many rows `candidates` has, up to :bound."""
    first = candidates.limit(sa.bindparam("bound", type_=sa.Integer())).subquery()
    return sa.select(sa.func.count()).select_from(first)


# _candidate_count's statements: SQLite's over every tenant, PostgreSQL's over the tenant's.
_SQLITE_CANDIDATE_COUNT = _count_of(
    sa.select(events_fts.c.rowid).where(events_fts.c.events_fts.match(sa.bindparam("q_phrase")))
)
_PG_CANDIDATES = _pg_candidates(events_table.c.seq)
_PG_CANDIDATE_COUNT = _count_of(sa.select(_PG_CANDIDATES.c.seq))


def _page_parameters(
    tenant: str, where: EventFilter, page: PageRequest, needle: str | None
) -> dict[str, Any]:
    """The values of a page's statement, by bound parameter name. Which names are here
    (with the dialect, the order and how `q` is searched) decides the statement."""
    params: dict[str, Any] = {"tenant": tenant, "limit": page.limit}
    if needle is not None:
        params["q_needle"] = needle
        params["q_escaped"] = like_escaped(needle)
        params["q_phrase"] = fts5_phrase(needle)
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
    search: str | None  # how `q` is searched: None (no q), "few" candidates, or "walk"
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
            query = _sqlite_search(query, few=search == "few")
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
        # figures). events_fts's rowids are events' rowids, and
        # SQLite gives a new row the largest rowid yet; events are never deleted, and
        # each tenant's are inserted in seq order. So rowid order is seq order within a
        # tenant: the same invariant that makes the index's rowids name the right events.
        seq = events_fts.c.rowid
    order = seq.asc() if shape.order == "asc" else seq.desc()
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


def _sqlite_search(query: sa.Select[Any], few: bool) -> sa.Select[Any]:
    """`query` narrowed to events whose search_text holds :q_needle; with `few`
    candidates, driven by the trigram index.

    search_text is stored lower-cased and the needle is lower-cased, so this is exactly
    the substring test of audit.domain.query.matches. Whatever narrows the rows, the exact
    test decides: FTS5 folds case its own way, so its candidates are only a superset.
    """
    query = query.where(sa.func.instr(events_table.c.search_text, sa.bindparam("q_needle")) > 0)
    if not few:
        return query
    # Few candidates: loop over them first (CROSS JOIN keeps SQLite from walking an
    # index of another filter instead) and fetch each event by rowid, in the index's
    # rowid order (_page_statement).
    hits = events_fts.c.rowid
    return query.select_from(
        _LeftFirstJoin(events_fts, events_table, sa.literal_column("events.rowid") == hits)
    ).where(events_fts.c.events_fts.match(sa.bindparam("q_phrase")))


class SqlEventRepository:
    """Events in the `events` table, their target ids in `event_targets`, heads in `chain_heads`."""

    def __init__(self, connection: Connection) -> None:
        self._conn = connection

    def head(self, tenant: str) -> ChainHead:
        row = self._conn.execute(_HEAD, {"tenant": tenant}).first()
        return ChainHead() if row is None else ChainHead(row.seq, row.hash)

    def lock_head(self, tenant: str) -> ChainHead:
        if self._conn.dialect.name != "postgresql":
            # SQLite: the unit of work began with BEGIN IMMEDIATE, so this transaction
            # already holds the database's only write lock.
            return self.head(tenant)
        # Make sure the row exists, then lock it: a tenant's first writers queue too.
        self._conn.execute(_ENSURE_HEAD, {"head_tenant": tenant})
        row = self._conn.execute(_LOCK_HEAD, {"tenant": tenant}).one()
        return ChainHead(row.seq, row.hash)

    def existing(self, tenant: str, ids: Collection[str]) -> dict[str, tuple[Event, str]]:
        if not ids:
            return {}
        rows = self._conn.execute(_EXISTING, {"tenant": tenant, "ids": builtins.list(ids)})
        found = {}
        for fingerprint, *columns in rows:
            event = row_event(columns)
            found[event.id] = (event, fingerprint)
        return found

    def add(
        self,
        tenant: str,
        events: Sequence[Event],
        fingerprints: Sequence[str],
        subtrees: Sequence[tuple[int, int, bytes]],
    ) -> None:
        if not events:
            return
        if subtrees:
            self._conn.execute(
                _INSERT_NODES,
                [{"tenant": tenant, "level": lv, "idx": ix, "hash": h} for lv, ix, h in subtrees],
            )
        self._conn.execute(
            _INSERT_EVENTS,
            [event_row(tenant, e, fp) for e, fp in zip(events, fingerprints, strict=True)],
        )
        targets = [row for e in events for row in event_target_rows(tenant, e)]
        if targets:
            self._conn.execute(_INSERT_TARGETS, targets)
        last = events[-1]
        moved = self._conn.execute(
            _MOVE_HEAD, {"head_tenant": tenant, "new_seq": last.seq, "new_hash": last.hash}
        )
        if moved.rowcount == 0:
            self._conn.execute(
                sa.insert(chain_heads).values(tenant=tenant, seq=last.seq, hash=last.hash)
            )

    def subtree_hashes(
        self, tenant: str, coords: Collection[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        if not coords:
            return {}
        rows = self._conn.execute(*subtree_query(tenant, coords))
        return {(row.level, row.idx): bytes(row.hash) for row in rows}

    def chain_hashes(self, tenant: str, seqs: Collection[int]) -> dict[int, str]:
        if not seqs:
            return {}
        rows = self._conn.execute(_CHAIN_HASHES, {"tenant": tenant, "seqs": builtins.list(seqs)})
        return {row.seq: row.hash for row in rows}

    def get(self, tenant: str, event_id: str) -> Event | None:
        row = self._conn.execute(_GET, {"tenant": tenant, "event_id": event_id}).first()
        return None if row is None else row_event(row)

    def page(self, tenant: str, where: EventFilter, page: PageRequest) -> list[Event]:
        return [row_event(row) for row in self._page_rows(tenant, where, page)]

    def page_json(self, tenant: str, where: EventFilter, page: PageRequest) -> list[EventJson]:
        # Straight from the row, building no Event: an export's CPU is mostly building
        # objects (bench/README.md).
        rows = self._page_rows(tenant, where, page)
        return [EventJson(row[1], row_json(row)) for row in rows]

    def _page_rows(
        self, tenant: str, where: EventFilter, page: PageRequest
    ) -> Sequence[Sequence[Any]]:
        """The `events` rows (_EVENT_COLUMNS) of page()."""
        needle = where.q.lower() if where.q else None
        # With few candidates in the trigram index the page is read from them; with many
        # (or a needle the index cannot narrow) by a walk of the tenant's events in seq
        # order, which LIMIT and the keyset end as soon as a page is found.
        search = None
        if needle is not None:
            if string_problem(needle) is not None:
                return ()  # stored text holds no NUL or lone surrogate
            candidates = self._candidate_count(tenant, needle, page.limit)
            if candidates == 0:
                return ()  # whatever the other filters
            search = "walk" if candidates is None else "few"
        params = _page_parameters(tenant, where, page, needle)
        shape = _PageShape(self._conn.dialect.name, page.order, search, frozenset(params))
        statement = _PAGE_STATEMENTS.get(shape)
        if statement is None:
            statement = _PAGE_STATEMENTS[shape] = _page_statement(shape)
        return self._conn.execute(statement, params).all()

    def _candidate_count(self, tenant: str, needle: str, limit: int) -> int | None:
        """How many events the trigram index offers for `needle`, counted no further than
        the bound a page of `limit` may collect (see candidates_bound): None where the
        index cannot narrow the search, or holds more than that.

        A needle shorter than 3 characters has no trigram; pg_trgm takes trigrams from
        the words (letters and digits) of a needle only, so without any its index would
        hand over every event; and no stored text holds a NUL or a lone surrogate, which
        _page_rows() answers without looking.

        SQLite counts over every tenant: a cheap look at events_fts. PostgreSQL counts the
        tenant's events (`_pg_candidates`): how far the walk reads depends on how common
        the needle is in this tenant's log, and a needle common in another tenant must not
        send this one's search on a walk of its whole log. Its index holds every tenant's
        text, so a needle rare here but common elsewhere still costs a look at the other
        tenants' matches, up to the first `bound` + 1 of this tenant's.

        Before PostgreSQL counted, its planner chose between the index and the walk from
        its estimate of how rare the needle is, and a needle of 0.1% of 10^6 events,
        estimated at 0.16% (or 1%, after another ANALYZE), made it walk the primary key
        backwards, reading 50,000 rows for a page of 50. The count's bitmap scan reads the
        index entries of each trigram of the needle whatever the count: a few milliseconds
        at 10^6 events for rare trigrams, 25 ms or more for common words ("document 98"),
        where the walk alone took 6 ms. And a page from few candidates reads them twice:
        once counted, once filtered and sorted.
        """
        if len(needle) < TRIGRAM or string_problem(needle) is not None:
            return None
        postgres = self._conn.dialect.name == "postgresql"
        if postgres and not any(c.isalnum() for c in needle):
            return None
        bound = candidates_bound(self.head(tenant).seq, limit)
        params: dict[str, Any] = {"tenant": tenant, "bound": bound + 1}
        if postgres:
            params["q_escaped"] = like_escaped(needle)
        else:
            params["q_phrase"] = fts5_phrase(needle)
        statement = _PG_CANDIDATE_COUNT if postgres else _SQLITE_CANDIDATE_COUNT
        count = int(self._conn.execute(statement, params).scalar_one())
        return None if count > bound else count

    def tenants(self) -> list[str]:
        rows = self._conn.execute(sa.select(chain_heads.c.tenant).where(chain_heads.c.seq > 0))
        return sorted(row.tenant for row in rows)
