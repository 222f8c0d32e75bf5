"""The viewer's pages through Flask's test client: list, filters, paging, an event and its
proof, the log, exports, and hostile event data shown as text."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

import pytest
from dependency_injector import providers
from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from tests.integration.ui.conftest import MakeToken
from tests.integration.ui.support import csrf_of, sign_in

from audit.container import Container
from audit.domain.errors import StorageUnavailable

HOSTILE_SCRIPT = "<script>document.title='pwned'</script>"
HOSTILE_IMG = '<img src=x onerror="alert(1)">'
# The pages that read storage run on every storage; the rest on memory.
STORAGES = pytest.mark.parametrize(
    "settings",
    ["memory", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)],
    indirect=True,
)
LONG = "A" * 250  # the longest name the API takes, with no place to break


def post(client: FlaskClient, headers: dict[str, str], events: list[dict[str, Any]]) -> None:
    response = client.post("/v1/events", json={"events": events}, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "id": f"evt-{n}",
        "action": "document.update" if n % 2 else "user.login",
        "actor": {"id": f"user-{n % 3}", "name": "Alice"},
        "targets": [{"id": f"doc-{n % 4}"}],
        "outcome": "failure" if n % 5 == 0 else "success",
        "occurred_at": f"2026-11-{n:02d}T10:00:00Z",
        "metadata": {"n": n},
        **extra,
    }


def seqs(page: str) -> list[int]:
    """The seqs of the events listed, in the order shown."""
    return [int(s) for s in re.findall(r'aria-label="Event ([0-9]+):', page)]


@pytest.fixture
def viewer(client: FlaskClient, make_token: MakeToken, writer: dict[str, str]) -> FlaskClient:
    post(client, writer, [event(n) for n in range(1, 29)])
    sign_in(client, make_token())
    return client


@STORAGES
def test_the_list_shows_the_newest_first_and_pages_by_cursor(viewer: FlaskClient) -> None:
    first = viewer.get("/ui/?limit=25").get_data(as_text=True)
    assert seqs(first) == list(range(28, 3, -1))
    [older] = re.findall(r'rel="next" href="([^"]+)"', first)
    second = viewer.get(unescape(older)).get_data(as_text=True)
    assert seqs(second) == [3, 2, 1]
    assert 'rel="next"' not in second
    assert "Newest events" in second


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("actor_id=user-1", [n for n in range(28, 0, -1) if n % 3 == 1]),
        ("target_id=doc-2", [n for n in range(28, 0, -1) if n % 4 == 2]),
        ("action=user.*", [n for n in range(28, 0, -1) if n % 2 == 0]),
        ("action=document.update", [n for n in range(28, 0, -1) if n % 2]),
        ("outcome=failure", [25, 20, 15, 10, 5]),
        ("since=2026-11-20&until=2026-11-23", [22, 21, 20]),
        ("since=2026-11-27T10:00&until=", [28, 27]),
        ("since=2026-11-27T11:00:00%2B01:00", [28, 27]),
        ("q=alice&outcome=failure&actor_id=user-2", [20, 5]),
        ("actor_id=&target_id=&q=", list(range(28, 0, -1))),
    ],
)
def test_every_filter_of_the_api_narrows_the_list(
    viewer: FlaskClient, query: str, expected: list[int]
) -> None:
    response = viewer.get(f"/ui/?limit=50&{query}")
    assert response.status_code == 200
    assert seqs(response.get_data(as_text=True)) == expected


def test_the_form_keeps_the_filters_and_the_paging_keeps_them_too(viewer: FlaskClient) -> None:
    page = viewer.get("/ui/?actor_id=user-1&limit=25&outcome=success").get_data(as_text=True)
    assert 'name="actor_id" value="user-1"' in page
    assert '<option value="success" selected>' in page
    exports = re.findall(r'href="(/ui/export[^"]+)"', page)
    assert {unescape(h) for h in exports} == {
        "/ui/export?format=ndjson&actor_id=user-1&outcome=success",
        "/ui/export?format=csv&actor_id=user-1&outcome=success",
    }


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("since=yesterday", "since must be"),
        ("outcome=maybe", "outcome must be"),
        ("limit=7", "events per page"),
        ("cursor=not-a-cursor", "cursor"),
    ],
)
def test_a_bad_filter_shows_the_form_with_what_is_wrong(
    viewer: FlaskClient, query: str, words: str
) -> None:
    response = viewer.get(f"/ui/?{query}")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert words in page
    assert 'class="filters"' in page
    assert seqs(page) == []


@STORAGES
def test_an_event_page_shows_every_field_and_a_verified_proof(viewer: FlaskClient) -> None:
    response = viewer.get("/ui/events/evt-7")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert '<h2 id="proof-status">Verified</h2>' in page
    raw = re.search(r'<pre class="json" id="event-json">(.*?)</pre>', page, re.S)
    assert raw, "the page shows the event's JSON"
    document = json.loads(unescape(raw.group(1)))
    assert document["seq"] == 7
    shown = ["hash", "prev_hash", "received_at", "occurred_at", "action"]
    for value in [document[name] for name in shown] + ["user-1", "doc-3"]:
        assert value in page
    assert '<pre class="json">{\n  &#34;n&#34;: 7\n}</pre>' in page  # metadata, formatted
    assert "Tree size</dt><dd>28</dd>" in page


def test_another_tenants_event_is_not_found(
    client: FlaskClient, make_token: MakeToken, writer: dict[str, str]
) -> None:
    post(client, writer, [event(1)])
    sign_in(client, make_token(tenant="other"))
    assert client.get("/ui/events/evt-1").status_code == 404
    assert seqs(client.get("/ui/").get_data(as_text=True)) == []


@STORAGES
def test_the_log_page_shows_size_head_checkpoint_and_checks_the_chain(
    viewer: FlaskClient,
) -> None:
    page = viewer.get("/ui/log")
    text = page.get_data(as_text=True)
    head = json.loads(viewer.get("/ui/export?format=ndjson").get_data().splitlines()[-1])
    assert '<dd id="log-size">28 events</dd>' in text
    assert head["hash"] in text
    assert "localhost/audit/acme\n28\n" in unescape(text)
    checked = viewer.post("/ui/log/check", data={"csrf_token": csrf_of(page)})
    assert checked.status_code == 200
    assert "Chain intact: 28 events checked, head seq 28." in checked.get_data(as_text=True)


@STORAGES
def test_exports_follow_the_filter_through_the_session(viewer: FlaskClient) -> None:
    ndjson = viewer.get("/ui/export?format=ndjson&outcome=failure&q=")
    assert ndjson.mimetype == "application/x-ndjson"
    assert 'filename="events.ndjson"' in ndjson.headers["Content-Disposition"]
    lines = ndjson.get_data().splitlines()
    assert [json.loads(line)["seq"] for line in lines] == [5, 10, 15, 20, 25]
    csv = viewer.get("/ui/export?format=csv&actor_id=user-0")
    assert csv.mimetype == "text/csv"
    assert len(csv.get_data(as_text=True).splitlines()) == 1 + 9
    bad = viewer.get("/ui/export?format=xml")
    assert (bad.status_code, bad.mimetype) == (400, "text/html")
    assert "format must be one of ndjson, csv" in bad.get_data(as_text=True)


def test_an_export_storage_fails_before_streaming_is_an_error_page(
    viewer: FlaskClient, container: Container
) -> None:
    def unavailable(tenant: str, where: Any) -> Any:  # fails on the first event, as storage
        raise StorageUnavailable("the database is locked", retry_after=3)
        yield

    def counted() -> float:
        value = REGISTRY.get_sample_value("audit_storage_errors_total", {"reason": "unavailable"})
        return value or 0.0

    before = counted()
    with container.export_events.override(providers.Object(unavailable)):
        response = viewer.get("/ui/export?format=ndjson")
    assert counted() == before + 1  # counted as the API counts its 503s
    assert (response.status_code, response.mimetype) == (503, "text/html")
    assert response.headers["Retry-After"] == "3"
    assert "the database is locked" in response.get_data(as_text=True)


def test_the_viewer_writes_nothing(viewer: FlaskClient) -> None:
    before = viewer.get("/ui/export?format=ndjson").get_data()
    page = viewer.get("/ui/log")
    viewer.post("/ui/log/check", data={"csrf_token": csrf_of(page)})
    for path in ("/ui/", "/ui/events/evt-3", "/ui/?q=x"):
        viewer.get(path)
    assert viewer.get("/ui/export?format=ndjson").get_data() == before


def test_hostile_event_data_is_shown_as_text(
    client: FlaskClient, make_token: MakeToken, writer: dict[str, str]
) -> None:
    hostile = {
        "id": "evt-hostile",
        "action": "document.update",
        "actor": {"id": "javascript:alert(1)", "name": HOSTILE_SCRIPT, "type": HOSTILE_IMG},
        "targets": [{"id": '"><svg onload=alert(1)>', "name": LONG}],
        "description": HOSTILE_IMG + "B" * 990,
        "source": {"ip": "203.0.113.5", "user_agent": "</pre><script>alert(2)</script>"},
        "metadata": {"href": "javascript:alert(1)", "html": HOSTILE_SCRIPT, "long": "C" * 8000},
    }
    post(client, writer, [hostile])
    sign_in(client, make_token())
    for path in ("/ui/", "/ui/events/evt-hostile", "/ui/?actor_id=javascript:alert(1)"):
        page = client.get(path).get_data(as_text=True)
        for raw in (HOSTILE_SCRIPT, HOSTILE_IMG, "<svg", "</pre><script>"):
            assert raw not in page, (path, raw)
        assert "&lt;script&gt;document.title=&#39;pwned&#39;&lt;/script&gt;" in page
        assert not re.search(r'href="\s*javascript:', page, re.I)
        assert not re.search(r"<[a-z]+[^>]*\son[a-z]+=", page, re.I)  # no event handler attrs
    assert "Verified" in client.get("/ui/events/evt-hostile").get_data(as_text=True)


@pytest.mark.parametrize(
    "settings", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
def test_a_tampered_event_is_shown_not_verified_and_breaks_the_chain(
    client: FlaskClient,
    make_token: MakeToken,
    writer: dict[str, str],
    container: Container,
) -> None:
    post(client, writer, [event(n) for n in range(1, 6)])
    # Someone with the database edits an event behind the service's back.
    with container.engine().begin() as db:
        db.exec_driver_sql("UPDATE events SET description = 'edited later' WHERE seq = 3")
    sign_in(client, make_token())
    page = client.get("/ui/events/evt-3").get_data(as_text=True)
    assert '<h2 id="proof-status">Not verified</h2>' in page
    assert "does not match its content" in page
    assert "Verified</h2>" in client.get("/ui/events/evt-2").get_data(as_text=True)
    log = client.get("/ui/log")
    checked = client.post("/ui/log/check", data={"csrf_token": csrf_of(log)})
    assert "Chain broken at seq 3" in checked.get_data(as_text=True)


def test_a_cursor_with_other_filters_beside_it_is_refused(viewer: FlaskClient) -> None:
    first = viewer.get("/ui/?limit=25&actor_id=user-1").get_data(as_text=True)
    assert 'rel="next"' not in first  # 10 events: one page
    page = viewer.get("/ui/?limit=25").get_data(as_text=True)
    [older] = re.findall(r'rel="next" href="([^"]+)"', page)
    response = viewer.get(unescape(older) + "&actor_id=user-1")
    assert response.status_code == 400
    assert "filters changed" in response.get_data(as_text=True)
