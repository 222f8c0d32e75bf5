"""Raw-driver baselines: the same rows written with no HTTP, no Python service code.

The tables mirror the service's schema (src/audit/adapters/sql/schema.py): `events` with
its primary key, unique id and four indexes, `event_targets`, and the `chain_heads` row
each write moves. The statements are the ones the service's adapter issues, minus
everything else it does (validation, hashing, SQLAlchemy, the HTTP round trip). SQLite
uses the service's pragmas: WAL and synchronous=FULL. Only the database work is timed;
building the rows is not.

With `search_index=True` the tables also carry the index that backs `q`, as migrations
0003 and 0004 make it: an FTS5 trigram table kept by a trigger on SQLite, a pg_trgm GIN index
on PostgreSQL. Batch ingest is measured against both, so the table shows how much of
the gap is the index itself.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.events import TEMPLATE_COUNT, make_id, template_document

_TENANT = "default"
_EVENT_COLUMNS = (
    "tenant, seq, id, action, actor_id, actor_type, actor_name, targets, outcome, "
    "occurred_at_us, received_at_us, source_ip, source_user_agent, description, metadata, "
    "search_text, prev_hash, hash, fingerprint"
)


def _ddl(action_type: str, hash_type: str) -> list[str]:
    return [
        f"""CREATE TABLE baseline_events (
            tenant TEXT NOT NULL, seq BIGINT NOT NULL, id TEXT NOT NULL,
            action {action_type} NOT NULL, actor_id TEXT NOT NULL, actor_type TEXT,
            actor_name TEXT, targets TEXT NOT NULL, outcome TEXT NOT NULL,
            occurred_at_us BIGINT NOT NULL, received_at_us BIGINT NOT NULL, source_ip TEXT,
            source_user_agent TEXT, description TEXT, metadata TEXT NOT NULL,
            search_text TEXT NOT NULL, prev_hash {hash_type} NOT NULL,
            hash {hash_type} NOT NULL, fingerprint {hash_type} NOT NULL,
            CONSTRAINT pk_baseline_events PRIMARY KEY (tenant, seq),
            CONSTRAINT uq_baseline_events_tenant_id UNIQUE (tenant, id))""",
        "CREATE INDEX ix_baseline_actor ON baseline_events (tenant, actor_id, seq)",
        "CREATE INDEX ix_baseline_action ON baseline_events (tenant, action, seq)",
        "CREATE INDEX ix_baseline_outcome ON baseline_events (tenant, outcome, seq)",
        "CREATE INDEX ix_baseline_occurred ON baseline_events (tenant, occurred_at_us)",
        """CREATE TABLE baseline_event_targets (
            tenant TEXT NOT NULL, target_id TEXT NOT NULL, seq BIGINT NOT NULL,
            PRIMARY KEY (tenant, target_id, seq),
            FOREIGN KEY (tenant, seq) REFERENCES baseline_events (tenant, seq))""",
        f"""CREATE TABLE baseline_chain_heads (
            tenant TEXT PRIMARY KEY, seq BIGINT NOT NULL, hash {hash_type} NOT NULL)""",
    ]


# The search index of migrations 0003 (the index) and 0004 (its pending list).
_SQLITE_SEARCH_INDEX = [
    "CREATE VIRTUAL TABLE baseline_events_fts USING fts5(search_text, "
    "content='baseline_events', content_rowid='rowid', tokenize='trigram')",
    "CREATE TRIGGER baseline_events_fts_insert AFTER INSERT ON baseline_events BEGIN"
    " INSERT INTO baseline_events_fts(rowid, search_text) VALUES (new.rowid, new.search_text);"
    " END",
]
_POSTGRES_SEARCH_INDEX = [
    "CREATE EXTENSION IF NOT EXISTS pg_trgm",
    "CREATE INDEX ix_baseline_search ON baseline_events USING gin (search_text gin_trgm_ops)"
    " WITH (gin_pending_list_limit = 1024)",
]


@dataclass(frozen=True)
class BaselineResult:
    """`count` events written in `seconds` of database time."""

    name: str
    count: int
    seconds: float
    commits: int

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def _rows(prefix: str, first_seq: int, count: int) -> tuple[list[tuple[Any, ...]], list[Any]]:
    """The events and event_targets rows of `count` events from seq `first_seq`."""
    events, targets = [], []
    now_us = int(time.time() * 1_000_000)
    for seq in range(first_seq, first_seq + count):
        event_id = make_id(prefix, 0, seq)
        doc = template_document(seq % TEMPLATE_COUNT, event_id)
        actor, target = doc["actor"], doc["targets"][0]
        metadata = json.dumps(doc["metadata"], separators=(",", ":"))
        digest = hashlib.sha256(event_id.encode()).hexdigest()
        search = "\n".join([doc["description"], metadata, actor["name"], target["name"]]).lower()
        events.append(
            (
                _TENANT,
                seq,
                event_id,
                doc["action"],
                actor["id"],
                actor["type"],
                actor["name"],
                json.dumps(doc["targets"], separators=(",", ":")),
                doc["outcome"],
                now_us - 1000,
                now_us,
                doc["source"]["ip"],
                doc["source"]["user_agent"],
                doc["description"],
                metadata,
                search,
                digest,
                digest,
                digest,
            )
        )
        targets.append((_TENANT, target["id"], seq))
    return events, targets


def _timed_batches(
    write: Callable[[list[tuple[Any, ...]], list[Any], int], None],
    prefix: str,
    batch: int,
    duration_s: float,
    max_events: int,
) -> tuple[int, float, int]:
    """Write batches until `duration_s` of wall time or `max_events`; time `write` only."""
    written, db_seconds, commits = 0, 0.0, 0
    stop_at = time.perf_counter() + duration_s
    while written < max_events and time.perf_counter() < stop_at:
        count = min(batch, max_events - written)
        events, targets = _rows(prefix, written + 1, count)
        started = time.perf_counter()
        write(events, targets, written + count)
        db_seconds += time.perf_counter() - started
        written += count
        commits += 1
    return written, db_seconds, commits


def _placeholders(style: str, n: int) -> str:
    return ", ".join([style] * n)


def _sqlite_connect(path: Path, search_index: bool = False) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    for statement in _ddl("TEXT", "VARCHAR(64)") + (_SQLITE_SEARCH_INDEX if search_index else []):
        conn.execute(statement)
    conn.execute("INSERT INTO baseline_chain_heads VALUES (?, 0, '')", (_TENANT,))
    return conn


def _sqlite_writer(
    conn: sqlite3.Connection,
) -> Callable[[list[tuple[Any, ...]], list[Any], int], None]:
    # Built from constants of this module only.
    insert_event = (
        f"INSERT INTO baseline_events ({_EVENT_COLUMNS}) VALUES ({_placeholders('?', 19)})"  # noqa: S608
    )
    insert_target = "INSERT INTO baseline_event_targets VALUES (?, ?, ?)"
    move_head = "UPDATE baseline_chain_heads SET seq = ?, hash = ? WHERE tenant = ?"

    def write(events: list[tuple[Any, ...]], targets: list[Any], last_seq: int) -> None:
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(insert_event, events)
        conn.executemany(insert_target, targets)
        conn.execute(move_head, (last_seq, events[-1][17], _TENANT))
        conn.execute("COMMIT")

    return write


def _with_index(name: str, search_index: bool) -> str:
    return f"{name} + search index" if search_index else name


def sqlite_executemany(
    path: Path,
    *,
    duration_s: float,
    max_events: int,
    batch: int = 1000,
    search_index: bool = False,
) -> BaselineResult:
    """Raw sqlite3: `executemany` of `batch` rows in one transaction, WAL + synchronous=FULL."""
    conn = _sqlite_connect(path, search_index)
    try:
        count, seconds, commits = _timed_batches(
            _sqlite_writer(conn), "sqlbatch", batch, duration_s, max_events
        )
    finally:
        conn.close()
    name = _with_index("raw sqlite3 executemany", search_index)
    return BaselineResult(name, count, seconds, commits)


def sqlite_commit_per_event(path: Path, *, duration_s: float, max_events: int) -> BaselineResult:
    """Raw sqlite3, one thread: one transaction and one commit per event, WAL + FULL."""
    conn = _sqlite_connect(path)
    try:
        count, seconds, commits = _timed_batches(
            _sqlite_writer(conn), "sqlone", 1, duration_s, max_events
        )
    finally:
        conn.close()
    return BaselineResult("raw sqlite3, 1 commit/event", count, seconds, commits)


def _postgres_writer(
    url: str, search_index: bool = False
) -> tuple[Any, Callable[[list[tuple[Any, ...]], list[Any], int], None]]:
    import psycopg

    conn = psycopg.connect(url)
    statements = _ddl('TEXT COLLATE "C"', "VARCHAR(64)")
    for statement in statements + (_POSTGRES_SEARCH_INDEX if search_index else []):
        conn.execute(statement)
    conn.execute("INSERT INTO baseline_chain_heads VALUES (%s, 0, '')", (_TENANT,))
    conn.commit()
    insert_event = (
        f"INSERT INTO baseline_events ({_EVENT_COLUMNS}) VALUES ({_placeholders('%s', 19)})"  # noqa: S608
    )
    insert_target = "INSERT INTO baseline_event_targets VALUES (%s, %s, %s)"
    move_head = "UPDATE baseline_chain_heads SET seq = %s, hash = %s WHERE tenant = %s"

    def write(events: list[tuple[Any, ...]], targets: list[Any], last_seq: int) -> None:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT seq FROM baseline_chain_heads WHERE tenant = %s FOR UPDATE", (_TENANT,)
            )
            cur.executemany(insert_event, events)
            cur.executemany(insert_target, targets)
            cur.execute(move_head, (last_seq, events[-1][17], _TENANT))
        conn.commit()

    return conn, write


def _drop_postgres_tables(url: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for table in ("baseline_event_targets", "baseline_chain_heads", "baseline_events"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")


def postgres_executemany(
    url: str,
    *,
    duration_s: float,
    max_events: int,
    batch: int = 1000,
    search_index: bool = False,
) -> BaselineResult:
    """Raw psycopg: `executemany` of `batch` rows in one transaction (the head row locked)."""
    _drop_postgres_tables(url)
    conn, write = _postgres_writer(url, search_index)
    try:
        count, seconds, commits = _timed_batches(write, "pgbatch", batch, duration_s, max_events)
    finally:
        conn.close()
        _drop_postgres_tables(url)
    name = _with_index("raw psycopg executemany", search_index)
    return BaselineResult(name, count, seconds, commits)


def postgres_commit_per_event(url: str, *, duration_s: float, max_events: int) -> BaselineResult:
    """Raw psycopg, one thread: one transaction and one commit per event."""
    _drop_postgres_tables(url)
    conn, write = _postgres_writer(url)
    try:
        count, seconds, commits = _timed_batches(write, "pgone", 1, duration_s, max_events)
    finally:
        conn.close()
        _drop_postgres_tables(url)
    return BaselineResult("raw psycopg, 1 commit/event", count, seconds, commits)


# The columns an export writes: every one an event document is made of.
_EXPORTED_COLUMNS = (
    "id, seq, tenant, action, actor_id, actor_type, actor_name, targets, outcome, "
    "occurred_at_us, received_at_us, source_ip, source_user_agent, description, metadata, "
    "prev_hash, hash"
)
_EXPORTED_NAMES = tuple(name.strip() for name in _EXPORTED_COLUMNS.split(","))


def raw_export(database_url: str, tenant: str = _TENANT, chunk: int = 1000) -> BaselineResult:
    """The floor under an export, read from the service's own database: the raw driver
    reads the tenant's events in keyset chunks of `chunk`, as the service does, and writes
    each row as one JSON line with orjson (its columns by name, times left as integers).
    No Event, no HTTP; the lines are counted, not kept. Timed whole.
    """
    import orjson

    placeholder = "%s" if database_url.startswith("postgresql") else "?"
    # Built from constants of this module only.
    query = (
        f"SELECT {_EXPORTED_COLUMNS} FROM events WHERE tenant = {placeholder}"  # noqa: S608
        f" AND seq > {placeholder} ORDER BY seq LIMIT {chunk}"
    )
    names = _EXPORTED_NAMES
    dumps = orjson.dumps
    newline = orjson.OPT_APPEND_NEWLINE
    if database_url.startswith("postgresql"):
        import psycopg

        conn: Any = psycopg.connect(database_url, autocommit=True)
    else:
        conn = sqlite3.connect(database_url.removeprefix("sqlite:///"))
    count = size = 0
    after = 0
    started = time.perf_counter()
    try:
        while True:
            rows = conn.execute(query, (tenant, after)).fetchall()
            for row in rows:
                size += len(dumps(dict(zip(names, row, strict=True)), option=newline))
            count += len(rows)
            if len(rows) < chunk:
                break
            after = rows[-1][1]
    finally:
        conn.close()
    seconds = time.perf_counter() - started
    return BaselineResult("raw driver read + orjson line per row", count, seconds, 0)
