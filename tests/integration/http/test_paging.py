"""A cursor continues the listing it was issued for: its order and its filters."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from tests.integration.http.support import Headers, assert_error, event, on_every_storage


def _seed(client: FlaskClient, headers: Headers) -> None:
    batch = [
        event(
            id=f"e{i}",
            action="document.update" if i % 2 else "user.login",
            actor={"id": "u-1" if i % 3 else "u-2"},
            occurred_at=f"2026-01-{i + 1:02d}T00:00:00Z",
        )
        for i in range(12)
    ]
    assert client.post("/v1/events", json={"events": batch}, headers=headers).status_code == 201


def _page(client: FlaskClient, headers: Headers, query: str) -> dict[str, Any]:
    response = client.get(f"/v1/events?{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    page: dict[str, Any] = response.get_json()
    return page


def _follow_cursor_only(client: FlaskClient, headers: Headers, first: str) -> list[str]:
    """Every page: the first with `first`, the rest with nothing but cursor and limit."""
    page = _page(client, headers, first)
    ids = [e["id"] for e in page["events"]]
    while page["next_cursor"] is not None:
        page = _page(client, headers, f"limit=2&cursor={page['next_cursor']}")
        ids += [e["id"] for e in page["events"]]
    return ids


@on_every_storage
@pytest.mark.parametrize("order", ["asc", "desc"])
def test_a_cursor_alone_continues_in_its_order(
    client: FlaskClient, headers: Headers, order: str
) -> None:
    _seed(client, headers)
    ids = _follow_cursor_only(client, headers, f"limit=2&order={order}")
    expected = [f"e{i}" for i in range(12)]
    assert ids == (expected if order == "asc" else expected[::-1])


@on_every_storage
def test_a_cursor_alone_keeps_its_filters(client: FlaskClient, headers: Headers) -> None:
    _seed(client, headers)
    query = "limit=2&order=asc&action=document.*&actor_id=u-1&since=2026-01-02T00:00:00%2B01:00"
    ids = _follow_cursor_only(client, headers, query)
    # Odd i (document.update), i not a multiple of 3 (u-1), on or after Jan 1 23:00Z.
    assert ids == [f"e{i}" for i in range(1, 12) if i % 2 and i % 3]


def test_the_cursors_own_filters_and_order_may_be_repeated(
    client: FlaskClient, headers: Headers
) -> None:
    _seed(client, headers)
    query = "limit=2&order=asc&action=document.*&since=2026-01-02T00:00:00Z"
    cursor = _page(client, headers, query)["next_cursor"]
    # The same instant written another way is the same filter.
    again = "limit=2&order=asc&action=document.*&since=2026-01-02T01:00:00%2B01:00"
    page = _page(client, headers, f"{again}&cursor={cursor}")
    assert [e["id"] for e in page["events"]] == ["e5", "e7"]


@pytest.mark.parametrize(
    ("first", "beside"),
    [
        ("order=asc", "order=desc"),
        ("order=desc", "order=asc"),
        ("", "order=asc"),
        ("action=document.*", "action=user.*"),
        ("action=document.*", "action=document.update"),
        ("actor_id=u-1", "actor_id=u-2"),
        ("actor_id=u-1&q=x", "actor_id=u-1"),
        ("", "actor_id=u-1"),
        ("since=2026-01-02T00:00:00Z", "since=2026-01-03T00:00:00Z"),
    ],
)
def test_filters_or_an_order_other_than_the_cursors_are_refused(
    client: FlaskClient, headers: Headers, first: str, beside: str
) -> None:
    _seed(client, headers)
    for n in range(12):  # enough for a second page whatever the filter
        event_doc = event(id=f"x{n}", actor={"id": "u-1"}, description="x")
        client.post("/v1/events", json={**event_doc, "action": "document.update"}, headers=headers)
    cursor = _page(client, headers, f"limit=1&{first}")["next_cursor"]
    assert cursor is not None
    response = client.get(f"/v1/events?limit=1&{beside}&cursor={cursor}", headers=headers)
    assert_error(response, 400, "invalid_parameter")


@pytest.mark.parametrize(
    "data",
    [
        {"s": 1, "o": "asc", "f": {"actor_id": "a\u0000b"}},
        {"s": 1, "o": "asc", "f": {"nosuch": "a"}},
        {"s": 1, "o": "asc", "f": {"since": "yesterday"}},
        {"s": 1, "o": "asc", "f": {"outcome": "maybe"}},
        {"s": 1, "o": "asc", "f": {"q": 5}},
        {"s": 1, "o": "asc", "f": ["q"]},
    ],
)
@on_every_storage
def test_a_forged_cursors_filters_are_refused(
    client: FlaskClient, headers: Headers, data: dict[str, Any]
) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    response = client.get(f"/v1/events?cursor={cursor}", headers=headers)
    assert_error(response, 400, "invalid_parameter")


@pytest.mark.parametrize(
    ("seq", "status"), [(2**63 - 1, 200), (2**63, 400), (10**30, 400)], ids=["max", "2^63", "10^30"]
)
@pytest.mark.parametrize("order", ["asc", "desc"])
@on_every_storage
def test_a_forged_cursors_seq_is_bound_by_what_a_table_holds(
    client: FlaskClient, headers: Headers, seq: int, status: int, order: str
) -> None:
    """A seq no table can hold is the cursor's fault (400), never the driver's (500)."""
    _seed(client, headers)
    data = {"s": seq, "o": order}
    cursor = base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")
    response = client.get(f"/v1/events?cursor={cursor}", headers=headers)
    if status == 400:
        assert_error(response, 400, "invalid_parameter")
    else:
        assert response.status_code == 200, response.get_data(as_text=True)
        # After the largest seq in ascending order nothing is left; before it, everything.
        assert len(response.get_json()["events"]) == (0 if order == "asc" else 12)
