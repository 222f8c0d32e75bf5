"""The events the benchmark sends: one deterministic pool, shared by every load path.

The HTTP generators (wrk and Python), the raw-SQL baselines and the in-process loader all
build their events from the same templates, so every figure is about the same rows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

TEMPLATE_COUNT = 1000
ACTIONS = (
    "document.create",
    "document.update",
    "document.delete",
    "document.share",
    "user.login",
    "user.logout",
    "settings.change",
    "token.issue",
)
# Templates share an actor in groups of ACTOR_SHARE, so the `actor_id` filter matches
# 0.5% of the events: 50, a full page, in the smallest log (10^4), and so a page of the
# same size at every size. The `q` search matches one template, 0.1% of the events.
ACTORS = 200
ACTOR_SHARE = TEMPLATE_COUNT // ACTORS
FILTER_ACTOR_ID = "user-0123"
SEARCH_INDEX = 777
SEARCH_WORD = "quartz"
SEARCH_QUERY = "QUARTZ"  # upper case: `q` is case-insensitive
SELECTIVITY = 1 / TEMPLATE_COUNT
ACTOR_SELECTIVITY = ACTOR_SHARE / TEMPLATE_COUNT
NO_MATCH_QUERY = "no-such-phrase-7q"  # in no event

_ID_MARK = "@@EVENT-ID@@"
_BASE_TIME = datetime(2026, 11, 1, tzinfo=UTC)


def template_document(index: int, event_id: str = _ID_MARK) -> dict[str, Any]:
    """The client's JSON for template `index` (0 <= index < TEMPLATE_COUNT)."""
    i = index % TEMPLATE_COUNT
    occurred = _BASE_TIME + timedelta(seconds=37 * i)
    description = f"{ACTIONS[i % len(ACTIONS)]} of document {i * 7 % 5000} by user {i}"
    if i == SEARCH_INDEX:
        description += f", escalated to the {SEARCH_WORD} on-call team"
    return {
        "id": event_id,
        "action": ACTIONS[i % len(ACTIONS)],
        "actor": {"id": f"user-{i % ACTORS:04d}", "type": "user", "name": f"User Number {i}"},
        "targets": [{"id": f"doc-{i * 7 % 5000}", "type": "document", "name": f"Report {i % 97}"}],
        "outcome": "failure" if i % 10 == 9 else "success",
        "occurred_at": occurred.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "source": {"ip": f"203.0.113.{i % 250 + 1}", "user_agent": "audit-bench/1.0"},
        "description": description,
        "metadata": {"ticket": f"OPS-{i}", "attempt": i % 3, "tags": ["bench", "load"]},
    }


def template_parts() -> list[tuple[bytes, bytes]]:
    """Each template serialised and split around its id: body = before + id + after."""
    parts = []
    for i in range(TEMPLATE_COUNT):
        text = json.dumps(template_document(i), separators=(",", ":"))
        before, after = text.split(_ID_MARK)
        parts.append((before.encode(), after.encode()))
    return parts


def make_id(prefix: str, stream: int, n: int) -> str:
    """A unique event id: alphanumerics only, so wrk's Lua can find it in a response."""
    return f"{prefix}t{stream}n{n}"
