"""The event repository on one SQLAlchemy Connection; it never commits. Pages are built in
paging.py, text search in search.py, tokens in tokens.py."""

from __future__ import annotations

import builtins
from collections.abc import Collection, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from audit.adapters.sql.driver import IngestStatements, driver_rows
from audit.adapters.sql.paging import (
    _EVENT_COLUMNS,
    _PAGE_STATEMENTS,
    _page_parameters,
    _page_statement,
    _PageShape,
)
from audit.adapters.sql.rows import (
    row_event,
    row_json,
)
from audit.adapters.sql.schema import chain_heads
from audit.adapters.sql.schema import events as events_table
from audit.adapters.sql.search import (
    _PG_CANDIDATE_COUNT,
    _SQLITE_CANDIDATE_COUNT,
    TRIGRAM,
    candidates_bound,
    fts5_trigrams,
    like_escaped,
    prefix_upper_bound,
)
from audit.domain.chain import ChainHead
from audit.domain.events import Event, EventJson
from audit.domain.query import EventFilter, PageRequest
from audit.domain.validation import string_problem

__all__ = ["SqlEventRepository", "prefix_upper_bound"]

# Statements built once with bound parameters: building a SQLAlchemy expression per
# call cost more than running it.
_HEAD = sa.select(chain_heads.c.seq, chain_heads.c.hash).where(
    chain_heads.c.tenant == sa.bindparam("tenant")
)
_GET = sa.select(*_EVENT_COLUMNS).where(
    events_table.c.tenant == sa.bindparam("tenant"),
    events_table.c.id == sa.bindparam("event_id"),
)
_CHAIN_HASHES = sa.select(events_table.c.seq, events_table.c.hash).where(
    events_table.c.tenant == sa.bindparam("tenant"),
    events_table.c.seq.in_(sa.bindparam("seqs", expanding=True)),
)


class StatementEpoch:
    """The revocation epoch as the last page statement of a unit of work read it (on
    PostgreSQL), shared by its two repositories: the token repository answers
    `revocation_epoch()` from it rather than read it again, a round trip a page less.
    Each statement begins after the call that made the unit of work, so the epoch it read
    is as current as a read of its own would be. None until a page statement returned a
    row."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: int | None = None


class SqlEventRepository:
    """Events in the `events` table, their target ids in `event_targets`, heads in `chain_heads`."""

    def __init__(self, connection: Connection, epoch: StatementEpoch | None = None) -> None:
        self._conn = connection
        self._epoch = StatementEpoch() if epoch is None else epoch
        # The append's statements, on the driver (driver.py says why).
        self._ingest = IngestStatements(connection)

    def head(self, tenant: str) -> ChainHead:
        rows = driver_rows(self._conn, _HEAD, {"tenant": tenant})
        return ChainHead(*rows[0]) if rows else ChainHead()

    def lock_head(self, tenant: str) -> ChainHead:
        found = self._ingest.lock_head(tenant)
        return ChainHead() if found is None else ChainHead(*found)

    def existing(self, tenant: str, ids: Collection[str]) -> dict[str, tuple[Event, str]]:
        if not ids:
            return {}
        found = {}
        for fingerprint, *columns in self._ingest.existing(tenant, ids):
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
        if events:
            self._ingest.add(tenant, events, fingerprints, subtrees)

    def subtree_hashes(
        self, tenant: str, coords: Collection[tuple[int, int]]
    ) -> dict[tuple[int, int], bytes]:
        if not coords:
            return {}
        return self._ingest.subtree_hashes(tenant, coords)

    def chain_hashes(self, tenant: str, seqs: Collection[int]) -> dict[int, str]:
        if not seqs:
            return {}
        rows = self._conn.execute(_CHAIN_HASHES, {"tenant": tenant, "seqs": builtins.list(seqs)})
        return {row.seq: row.hash for row in rows}

    def get(self, tenant: str, event_id: str) -> Event | None:
        rows = driver_rows(self._conn, _GET, {"tenant": tenant, "event_id": event_id})
        return row_event(rows[0]) if rows else None

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
        upto = tail = 0
        if needle is not None:
            if string_problem(needle) is not None:
                return ()  # stored text holds no NUL or lone surrogate
            candidates, upto, tail = self._candidate_count(tenant, needle, page.limit)
            if candidates == 0:
                return ()  # whatever the other filters
            search = "walk" if candidates is None else "few"
        params = _page_parameters(tenant, where, page, needle)
        if search != "few" or self._conn.dialect.name != "sqlite":
            return self._rows(search, page, params)
        # SQLite: the index holds the events up to rowid `upto`; those after it (the tail,
        # not indexed yet) are read apart. Within a tenant rowid order is seq order
        # (paging.py), so every event of the tail comes after every indexed one: a page
        # is the first part's events, then the second's, up to the limit.
        params["upto"] = upto
        parts = ["few", "tail"] if page.order == "asc" else ["tail", "few"]
        rows: list[Sequence[Any]] = []
        for part in parts:
            if part == "tail" and tail == 0:
                continue
            rows += self._rows(part, page, {**params, "limit": page.limit - len(rows)})
            if len(rows) >= page.limit:
                break
        return rows

    def _rows(
        self, search: str | None, page: PageRequest, params: dict[str, Any]
    ) -> Sequence[Sequence[Any]]:
        """The rows of the page statement of `search`, with `params`: the event's columns,
        the epoch the statement read noted in StatementEpoch."""
        shape = _PageShape(self._conn.dialect.name, page.order, search, frozenset(params))
        statement = _PAGE_STATEMENTS.get(shape)
        if statement is None:
            statement = _PAGE_STATEMENTS[shape] = _page_statement(shape)
        rows = driver_rows(self._conn, statement, params)
        if not rows or shape.dialect != "postgresql":
            return rows
        # No row: the migration's row was removed; the first revocation makes it again.
        self._epoch.value = rows[0][-1] or 0
        return [row[:-1] for row in rows]

    def _candidate_count(self, tenant: str, needle: str, limit: int) -> tuple[int | None, int, int]:
        """How many events the trigram index offers for `needle`, counted no further than
        the bound a page of `limit` may collect (see candidates_bound): None where the
        index cannot narrow the search, or holds more than that. With it, on SQLite, how
        far the index goes (the rowid of the last event it holds) and how many events
        come after that, which count as candidates too (0 and 0 on PostgreSQL).

        A needle shorter than 3 characters has no trigram; pg_trgm takes trigrams from
        the words (letters and digits) of a needle only, so without any its index would
        hand over every event; and no stored text holds a NUL or a lone surrogate, which
        _page_rows() answers without looking.

        SQLite counts over every tenant: a cheap look at the index (search_index.py), and
        at the range of rowids it does not hold yet. PostgreSQL counts the
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
            return None, 0, 0
        postgres = self._conn.dialect.name == "postgresql"
        if postgres and not any(c.isalnum() for c in needle):
            return None, 0, 0
        bound = candidates_bound(self.head(tenant).seq, limit)
        params: dict[str, Any] = {"tenant": tenant, "bound": bound + 1}
        if postgres:
            params["q_escaped"] = like_escaped(needle)
            count = int(driver_rows(self._conn, _PG_CANDIDATE_COUNT, params)[0][0])
            return None if count > bound else count, 0, 0
        params["q_trigrams"] = fts5_trigrams(needle)
        [(upto, hits, tail)] = driver_rows(self._conn, _SQLITE_CANDIDATE_COUNT, params)
        count = int(hits) + int(tail)
        return None if count > bound else count, int(upto), int(tail)

    def tenants(self) -> list[str]:
        rows = self._conn.execute(sa.select(chain_heads.c.tenant).where(chain_heads.c.seq > 0))
        return sorted(row.tenant for row in rows)
