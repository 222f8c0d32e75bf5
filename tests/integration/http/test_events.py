"""The events API as a client uses it: ingest, retries, batches, reading, export, verify."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

import attrs
import orjson
import pytest
import rfc8785
from flask.testing import FlaskClient
from tests.integration.http.support import (
    AuthHeaders,
    Headers,
    assert_error,
    event,
    on_every_storage,
)

from audit.container import Container
from audit.domain.rules import EVENT_FIELDS

EVENT_KEYS = {
    "id",
    "seq",
    "tenant",
    "action",
    "actor",
    "targets",
    "outcome",
    "occurred_at",
    "received_at",
    "source",
    "description",
    "metadata",
    "prev_hash",
    "hash",
}
FULL_EVENT: dict[str, Any] = {
    "id": "evt-7f3a",
    "action": "document.update",
    "actor": {"id": "u-1", "type": "user", "name": "Alice"},
    "targets": [{"id": "doc-9", "type": "document"}],
    "occurred_at": "2026-11-28T12:00:00+02:00",
    "outcome": "failure",
    "source": {"ip": "203.0.113.5", "user_agent": "curl/8.5"},
    "description": "Changed the title",
    "metadata": {"ticket": "OPS-7", "n": 3, "nested": {"ok": True}},
}


def expected_hash(doc: dict[str, Any]) -> str:
    """API.md's formula, computed here rather than by the service's own code."""
    content = {k: v for k, v in doc.items() if k not in ("hash", "prev_hash")}
    return hashlib.sha256(bytes.fromhex(doc["prev_hash"]) + rfc8785.dumps(content)).hexdigest()


def post(client: FlaskClient, headers: Headers, body: Any) -> Any:
    return client.post("/v1/events", json=body, headers=headers)


def read_all(client: FlaskClient, headers: Headers, query: str = "") -> list[dict[str, Any]]:
    """Every page of GET /v1/events, following next_cursor."""
    events: list[dict[str, Any]] = []
    url = f"/v1/events?{query}"
    for _ in range(1000):
        response = client.get(url, headers=headers)
        assert response.status_code == 200, response.get_json()
        page = response.get_json()
        events += page["events"]
        if page["next_cursor"] is None:
            return events
        url = f"/v1/events?{query}&cursor={page['next_cursor']}"
    raise AssertionError("paging did not end")


@on_every_storage
def test_an_event_is_stored_and_returned_in_full(client: FlaskClient, headers: Headers) -> None:
    assert set(FULL_EVENT) == EVENT_FIELDS
    response = post(client, headers, FULL_EVENT)
    assert response.status_code == 201, response.get_json()
    doc = response.get_json()
    assert set(doc) == EVENT_KEYS
    assert doc["id"] == "evt-7f3a"
    assert doc["seq"] == 1
    assert doc["tenant"] == "acme"
    assert doc["actor"] == {"id": "u-1", "type": "user", "name": "Alice"}
    assert doc["targets"] == [{"id": "doc-9", "type": "document", "name": None}]
    assert doc["occurred_at"] == "2026-11-28T10:00:00.000000Z"
    assert doc["received_at"].endswith("Z")
    assert len(doc["received_at"]) == len("2026-11-28T10:00:00.000000Z")
    assert doc["source"] == {"ip": "203.0.113.5", "user_agent": "curl/8.5"}
    assert doc["metadata"] == FULL_EVENT["metadata"]
    assert doc["prev_hash"] == "0" * 64
    assert doc["hash"] == expected_hash(doc)
    assert response.headers["Location"] == "/v1/events/evt-7f3a"
    assert response.headers["Cache-Control"] == "no-store"
    assert client.get("/v1/events/evt-7f3a", headers=headers).get_json() == doc


@on_every_storage
def test_a_page_is_compact_json_of_the_events_documents(
    client: FlaskClient, headers: Headers
) -> None:
    """The list answer is written from each event's JSON text: the same bytes as the
    document serialised whole, and each event as GET /v1/events/{id} gives it."""
    floats = {"f": [0.1, -0.0, 1e300, 5e-324], "text": 'é \u2028 "q" \u0001'}
    for n in range(3):
        body = {**FULL_EVENT, "id": f"evt-{n}", "metadata": {**floats, "n": n}}
        assert post(client, headers, body).status_code == 201
    response = client.get("/v1/events?limit=2", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    page = response.get_json()
    assert response.data == orjson.dumps(page)
    assert [e["id"] for e in page["events"]] == ["evt-2", "evt-1"]
    for doc in page["events"]:
        assert client.get(f"/v1/events/{doc['id']}", headers=headers).get_json() == doc
    last = client.get(f"/v1/events?cursor={page['next_cursor']}", headers=headers)
    [oldest] = last.get_json()["events"]
    assert last.data == orjson.dumps({"events": [oldest], "next_cursor": None})


@on_every_storage
def test_absent_values_are_null_and_ids_are_made(client: FlaskClient, headers: Headers) -> None:
    first = post(client, headers, {"action": "a.b", "actor": {"id": "u"}}).get_json()
    assert first["actor"] == {"id": "u", "type": None, "name": None}
    assert first["targets"] == []
    assert first["outcome"] == "success"
    assert first["source"] == {"ip": None, "user_agent": None}
    assert first["description"] is None
    assert first["metadata"] == {}
    assert first["occurred_at"] == first["received_at"]
    second = post(client, headers, {"action": "a.b", "actor": {"id": "u"}}).get_json()
    assert second["id"] != first["id"]
    assert second["id"] > first["id"]  # time-ordered
    assert (second["seq"], second["prev_hash"]) == (2, first["hash"])
    assert second["hash"] == expected_hash(second)


@on_every_storage
def test_a_retry_is_answered_with_the_stored_event(client: FlaskClient, headers: Headers) -> None:
    stored = post(client, headers, FULL_EVENT).get_json()
    again = post(client, headers, FULL_EVENT)
    assert again.status_code == 200
    assert again.get_json() == stored
    # The same content written differently is the same event.
    same = {
        **FULL_EVENT,
        "occurred_at": "2026-11-28T10:00:00.000Z",
        "actor": {**FULL_EVENT["actor"], "type": "user"},
        "targets": [{"id": "doc-9", "type": "document", "name": None}],
    }
    assert post(client, headers, same).status_code == 200
    minimal = {"id": "m1", "action": "a.b", "actor": {"id": "u"}}
    assert post(client, headers, minimal).status_code == 201
    spelled_out = {
        **minimal,
        "outcome": "success",
        "targets": [],
        "metadata": {},
        "description": None,
        "source": {"ip": None},
    }
    assert post(client, headers, spelled_out).status_code == 200
    assert_error(post(client, headers, {**minimal, "outcome": "failure"}), 409, "conflict")
    assert [e["id"] for e in read_all(client, headers, "order=asc")] == ["evt-7f3a", "m1"]


@on_every_storage
def test_a_batch_is_stored_in_order_with_each_status(client: FlaskClient, headers: Headers) -> None:
    post(client, headers, event(id="old"))
    batch = {
        "events": [
            event(id="b1"),
            event(id="old"),
            event(id="b2", outcome="failure"),
            event(id="b1"),
            event(),
        ]
    }
    response = post(client, headers, batch)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["count"] == 5
    items = body["events"]
    assert [i["status"] for i in items] == [
        "created",
        "duplicate",
        "created",
        "duplicate",
        "created",
    ]
    assert [i["seq"] for i in items] == [2, 1, 3, 2, 4]
    assert items[0]["id"] == "b1"
    assert items[3] == items[0] | {"status": "duplicate"}
    stored = {e["id"]: e for e in read_all(client, headers)}
    assert len(stored) == 4
    for item in items:
        assert stored[item["id"]]["hash"] == item["hash"]
    # A batch of duplicates only stores nothing and still answers 201.
    again = post(client, headers, {"events": [event(id="b1"), event(id="b2", outcome="failure")]})
    assert again.status_code == 201
    assert [i["status"] for i in again.get_json()["events"]] == ["duplicate", "duplicate"]


def test_the_tenant_comes_from_the_token(client: FlaskClient, auth_headers: AuthHeaders) -> None:
    globex = auth_headers(tenant="globex")
    doc = post(client, globex, event(id="e1")).get_json()
    assert doc["tenant"] == "globex"
    assert doc["seq"] == 1
    assert_error(post(client, globex, event(tenant="acme")), 422, "validation_error")


@on_every_storage
def test_every_read_route_sees_only_its_tenant(
    client: FlaskClient, auth_headers: AuthHeaders
) -> None:
    acme, globex = auth_headers(tenant="acme"), auth_headers(tenant="globex")
    post(client, acme, {"events": [event(id="a1"), event(id="shared")]})
    post(client, globex, {"events": [event(id="g1"), event(id="shared", description="theirs")]})

    assert [e["id"] for e in read_all(client, acme, "order=asc")] == ["a1", "shared"]
    assert {e["tenant"] for e in read_all(client, globex)} == {"globex"}
    assert client.get("/v1/events/shared", headers=acme).get_json()["description"] is None
    assert client.get("/v1/events/shared", headers=globex).get_json()["description"] == "theirs"
    assert_error(client.get("/v1/events/g1", headers=acme), 404, "not_found")
    lines = client.get("/v1/export?format=ndjson", headers=acme).get_data(as_text=True)
    assert [json.loads(line)["id"] for line in lines.splitlines()] == ["a1", "shared"]
    rows = list(csv.DictReader(io.StringIO(client.get("/v1/export?format=csv", headers=acme).text)))
    assert [r["tenant"] for r in rows] == ["acme", "acme"]
    verified = client.get("/v1/verify", headers=acme).get_json()
    assert verified["checked"] == 2
    shared = client.get("/v1/events/shared", headers=acme).get_json()
    assert verified["head"]["hash"] == shared["hash"]
    assert client.get("/v1/events?q=theirs", headers=acme).get_json()["events"] == []


@on_every_storage
@pytest.mark.parametrize("order", ["desc", "asc"])
def test_following_cursors_yields_every_event_once(
    client: FlaskClient, headers: Headers, order: str
) -> None:
    post(client, headers, {"events": [event(id=f"e{i:02d}") for i in range(7)]})
    events = read_all(client, headers, f"limit=2&order={order}")
    seqs = [e["seq"] for e in events]
    assert seqs == (list(range(1, 8)) if order == "asc" else list(range(7, 0, -1)))
    first = client.get(f"/v1/events?limit=7&order={order}", headers=headers).get_json()
    assert first["next_cursor"] is None


def test_paging_newest_first_is_stable_while_events_arrive(
    client: FlaskClient, headers: Headers
) -> None:
    post(client, headers, {"events": [event(id=f"e{i}") for i in range(5)]})
    page = client.get("/v1/events?limit=2", headers=headers).get_json()
    seen = [e["seq"] for e in page["events"]]
    post(client, headers, {"events": [event(id=f"new{i}") for i in range(3)]})
    cursor = page["next_cursor"]
    while cursor:
        page = client.get(f"/v1/events?limit=2&cursor={cursor}", headers=headers).get_json()
        seen += [e["seq"] for e in page["events"]]
        cursor = page["next_cursor"]
    assert seen == [5, 4, 3, 2, 1]


def test_the_default_page_is_50_newest_first(client: FlaskClient, headers: Headers) -> None:
    post(client, headers, {"events": [event() for _ in range(60)]})
    page = client.get("/v1/events", headers=headers).get_json()
    assert [e["seq"] for e in page["events"]] == list(range(60, 10, -1))
    assert page["next_cursor"]
    page = client.get("/v1/events?limit=1000", headers=headers).get_json()
    assert len(page["events"]) == 60


@on_every_storage
def test_filters_combine_with_and(client: FlaskClient, headers: Headers) -> None:
    post(
        client,
        headers,
        {
            "events": [
                event(id="1", action="document.update", occurred_at="2026-01-01T00:00:00Z"),
                event(
                    id="2",
                    action="document.delete",
                    outcome="failure",
                    occurred_at="2026-02-01T00:00:00Z",
                    targets=[{"id": "doc-1", "name": "Quarterly Report"}],
                ),
                event(
                    id="3",
                    action="user.login",
                    actor={"id": "u-2", "name": "Bob"},
                    occurred_at="2026-03-01T00:00:00Z",
                    metadata={"ticket": "OPS-77"},
                ),
                event(
                    id="4",
                    action="documents.list",
                    description="Listed REPORTS",
                    occurred_at="2026-04-01T00:00:00+02:00",
                ),
            ]
        },
    )

    def ids(query: str) -> list[str]:
        return sorted(e["id"] for e in read_all(client, headers, query))

    assert ids("actor_id=u-2") == ["3"]
    assert ids("target_id=doc-1") == ["2"]
    assert ids("action=document.update") == ["1"]
    assert ids("action=document.*") == ["1", "2"]
    assert ids("action=document*") == ["1", "2", "4"]
    assert ids("outcome=failure") == ["2"]
    assert ids("since=2026-02-01T00:00:00Z") == ["2", "3", "4"]
    assert ids("until=2026-02-01T00:00:00Z") == ["1"]
    # Times are instants: 01:00+01:00 is midnight UTC; event 4 is 22:00Z on March 31.
    assert ids("since=2026-02-01T01:00:00%2B01:00&until=2026-03-31T22:00:00Z") == ["2", "3"]
    assert ids("since=2026-02-01T01:00:00%2B01:00&until=2026-03-31T22:00:01Z") == ["2", "3", "4"]
    assert ids("q=report") == ["2", "4"]
    assert ids("q=ops-77") == ["3"]
    assert ids("q=bob") == ["3"]
    assert ids("action=document.*&outcome=success") == ["1"]
    assert ids("action=nothing.*") == []
    # Wildcards of SQL LIKE are plain characters here.
    assert ids("action=document_*") == []
    assert ids("q=%25") == []
    assert ids("q=_") == []


@on_every_storage
def test_export_ndjson_is_every_match_ascending(client: FlaskClient, headers: Headers) -> None:
    post(
        client,
        headers,
        {
            "events": [
                event(id=f"e{i}", outcome="failure" if i % 2 else "success") for i in range(5)
            ]
        },
    )
    response = client.get("/v1/export?format=ndjson", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    assert response.is_streamed
    lines = response.get_data(as_text=True).splitlines()
    docs = [json.loads(line) for line in lines]
    assert [d["seq"] for d in docs] == [1, 2, 3, 4, 5]
    assert docs[2] == client.get("/v1/events/e2", headers=headers).get_json()
    filtered = client.get("/v1/export?outcome=failure", headers=headers).get_data(as_text=True)
    assert [json.loads(line)["id"] for line in filtered.splitlines()] == ["e1", "e3"]


@on_every_storage
def test_export_csv_has_a_header_and_json_nested_fields(
    client: FlaskClient, headers: Headers
) -> None:
    post(client, headers, FULL_EVENT)
    post(client, headers, event(id="plain"))
    response = client.get("/v1/export?format=csv", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    header, first, second = rows
    assert set(header) == EVENT_KEYS
    full = dict(zip(header, first, strict=True))
    stored = client.get("/v1/events/evt-7f3a", headers=headers).get_json()
    assert json.loads(full["actor"]) == stored["actor"]
    assert json.loads(full["targets"]) == stored["targets"]
    assert json.loads(full["source"]) == stored["source"]
    assert json.loads(full["metadata"]) == stored["metadata"]
    assert full["seq"] == "1"
    assert full["hash"] == stored["hash"]
    assert full["description"] == "Changed the title"
    assert dict(zip(header, second, strict=True))["id"] == "plain"


def test_export_of_an_empty_log(client: FlaskClient, headers: Headers) -> None:
    assert client.get("/v1/export", headers=headers).get_data() == b""
    rows = list(csv.reader(io.StringIO(client.get("/v1/export?format=csv", headers=headers).text)))
    assert len(rows) == 1


def test_export_streams_past_one_chunk(client: FlaskClient, headers: Headers) -> None:
    for start in range(0, 2500, 250):
        batch = {"events": [event(id=f"e{i}") for i in range(start, start + 250)]}
        assert post(client, headers, batch).status_code == 201
    lines = client.get("/v1/export", headers=headers).get_data().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == list(range(1, 2501))


@on_every_storage
def test_verify_reports_the_head(client: FlaskClient, headers: Headers) -> None:
    assert client.get("/v1/verify", headers=headers).get_json() == {
        "valid": True,
        "checked": 0,
        "head": None,
    }
    post(client, headers, {"events": [event(), event(), event()]})
    last = client.get("/v1/events?limit=1", headers=headers).get_json()["events"][0]
    assert client.get("/v1/verify", headers=headers).get_json() == {
        "valid": True,
        "checked": 3,
        "head": {"seq": 3, "hash": last["hash"]},
    }


def test_verify_finds_an_altered_event(
    client: FlaskClient, headers: Headers, container: Container
) -> None:
    post(client, headers, {"events": [event(id=f"e{i}") for i in range(4)]})
    store = container.uow().store
    log = store.logs["acme"]
    log[2] = attrs.evolve(log[2], description="rewritten")
    report = client.get("/v1/verify", headers=headers).get_json()
    assert report.pop("reason")
    assert report == {"valid": False, "checked": 2, "first_invalid_seq": 3}
