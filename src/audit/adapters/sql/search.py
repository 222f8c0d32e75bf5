"""Searching events for text (`q`): SQLite's FTS5 trigram index (in a file of its own,
search_index.py) and PostgreSQL's pg_trgm, and the few-candidates-or-walk choice the page
statement makes from them."""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.selectable import Join

from audit.adapters.sql.schema import events as events_table
from audit.adapters.sql.search_index import events_trigrams, search_progress

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


# The most trigrams of a needle a search asks the index for: each is another list of
# rowids to intersect, and a few dozen already leave few candidates.
FTS_TRIGRAMS_MAX = 32


def fts5_trigrams(text: str) -> str:
    """An FTS5 query for the events whose text holds each 3-character run of `text` (at
    least 3 characters long), or FTS_TRIGRAMS_MAX of them spread over a longer text.

    The index keeps no positions (search_index.py), so it cannot match a phrase: it
    offers every event holding all these runs anywhere, a superset of those holding
    `text`, and the exact test decides. Each run is an FTS5 string: inside double quotes
    FTS5 syntax (AND, OR, NEAR, *, ^, -, :, parentheses) is plain text, and a double
    quote is written twice.
    """
    runs = list(dict.fromkeys(text[i : i + TRIGRAM] for i in range(len(text) - TRIGRAM + 1)))
    if len(runs) > FTS_TRIGRAMS_MAX:
        step = len(runs) / FTS_TRIGRAMS_MAX
        runs = [runs[int(n * step)] for n in range(FTS_TRIGRAMS_MAX)]
    return " AND ".join('"' + run.replace('"', '""') + '"' for run in runs)


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


# SQLite: the events' rowids the index holds (<= :upto), and the rowid of an event.
_UPTO = sa.bindparam("upto", type_=sa.Integer())
EVENTS_ROWID = sa.literal_column("events.rowid", sa.Integer())
# The events the index does not hold yet, by rowid.
_TAIL = events_table.alias("tail")
TAIL_ROWID = sa.literal_column("tail.rowid", sa.Integer())
# How far the index goes: no row (0) if the event it stopped at is not the one it indexed
# (the database was restored from a backup, say), until the indexer has rebuilt it.
_INDEXED_UPTO = sa.func.coalesce(
    sa.select(search_progress.c.indexed_upto)
    .select_from(
        search_progress.join(
            events_table,
            sa.and_(
                search_progress.c.indexed_upto == EVENTS_ROWID,
                events_table.c.hash == search_progress.c.last_hash,
            ),
        )
    )
    .correlate(None)
    .scalar_subquery(),
    0,
)

# _candidate_count's statements: SQLite's over every tenant, PostgreSQL's over the tenant's.
# SQLite's gives how far the index goes (bound as :upto in every statement of the page,
# so they all agree), the index's candidates up to there and, apart, how many events come
# after it (the tail), which a page with few candidates reads too.
_SQLITE_CANDIDATE_COUNT = sa.select(
    _INDEXED_UPTO,
    _count_of(
        sa.select(events_trigrams.c.rowid).where(
            events_trigrams.c.events_trigrams.match(sa.bindparam("q_trigrams")),
            events_trigrams.c.rowid <= _INDEXED_UPTO,
        )
    ).scalar_subquery(),
    _count_of(
        sa.select(EVENTS_ROWID).select_from(events_table).where(EVENTS_ROWID > _INDEXED_UPTO)
    ).scalar_subquery(),
)
_PG_CANDIDATES = _pg_candidates(events_table.c.seq)
_PG_CANDIDATE_COUNT = _count_of(sa.select(_PG_CANDIDATES.c.seq))


def _sqlite_search(query: sa.Select[Any], search: str) -> sa.Select[Any]:
    """`query` narrowed to events whose search_text holds :q_needle: with "few"
    candidates, driven by the trigram index, among the events it holds (rowid <= :upto);
    for the "tail", among the events it does not hold yet (rowid > :upto); for a "walk",
    among every event.

    search_text is stored lower-cased and the needle is lower-cased, so this is exactly
    the substring test of audit.domain.query.matches. Whatever narrows the rows, the exact
    test decides: FTS5 folds case its own way, so its candidates are only a superset.
    """
    query = query.where(sa.func.instr(events_table.c.search_text, sa.bindparam("q_needle")) > 0)
    if search == "walk":
        return query
    if search == "tail":
        # The events written since the indexer last caught up, few (_candidate_count
        # counted them): a range of rowids, looped over first as the index's candidates
        # are (on its own, `events` would be read through another filter's index, every
        # event of the tenant tested for its rowid), in rowid order (_page_statement).
        return query.select_from(
            _LeftFirstJoin(_TAIL, events_table, EVENTS_ROWID == TAIL_ROWID)
        ).where(TAIL_ROWID > _UPTO)
    # Few candidates: loop over them first (CROSS JOIN keeps SQLite from walking an
    # index of another filter instead) and fetch each event by rowid, in the index's
    # rowid order (_page_statement).
    hits = events_trigrams.c.rowid
    return query.select_from(
        _LeftFirstJoin(events_trigrams, events_table, hits == EVENTS_ROWID)
    ).where(events_trigrams.c.events_trigrams.match(sa.bindparam("q_trigrams")), hits <= _UPTO)
