"""The original service's endpoints, as its own clients call them (its curl lines)."""

from __future__ import annotations

from flask.testing import FlaskClient
from tests.integration.http.support import (
    AuthHeaders,
    Headers,
    MakeToken,
    assert_error,
    bearer,
    on_every_storage,
)

from audit.domain.tokens import Scope

FORM = "application/x-www-form-urlencoded"
SAVED = "Logs successfully saved to database!"


def save(client: FlaskClient, body: str, headers: Headers) -> str:
    # What `curl -X POST -d 'user=alice&action=login' URL/save_logs` sends.
    response = client.post("/save_logs", data=body, content_type=FORM, headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    text: str = response.get_data(as_text=True)
    return text


def lines(client: FlaskClient, query: str, headers: Headers) -> list[str]:
    response = client.get(f"/get_logs?{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True).splitlines()


@on_every_storage
def test_the_seeds_curl_lines_save_and_find_an_event(client: FlaskClient, headers: Headers) -> None:
    assert save(client, "user=alice&action=login", headers) == SAVED
    assert save(client, "user=bob&action=logout", headers) == SAVED
    [line] = lines(client, "user=alice", headers)
    assert line.startswith("action:login,user:alice,id:")
    assert ",seq:1,actor_id:alice,occurred_at:" in line
    assert line.endswith(",")
    # Stored as an event like any other: in the chain, found by the v1 API.
    [stored] = client.get("/v1/events?actor_id=alice", headers=headers).get_json()["events"]
    assert stored["action"] == "login"
    assert stored["actor"] == {"id": "alice", "type": None, "name": None}
    assert stored["metadata"] == {"user": "alice", "action": "login"}
    assert client.get("/v1/verify", headers=headers).get_json()["valid"] is True


def test_actor_id_wins_over_user_and_the_token_name_is_the_last_resort(
    client: FlaskClient, make_token: MakeToken
) -> None:
    headers = bearer(make_token(Scope.EVENTS_WRITE, Scope.EVENTS_READ, name="billing-app"))
    save(client, "actor_id=svc-1&user=alice&amount=3", headers)
    save(client, "amount=4", headers)
    events = client.get("/v1/events?order=asc", headers=headers).get_json()["events"]
    assert [e["actor"]["id"] for e in events] == ["svc-1", "billing-app"]
    assert [e["action"] for e in events] == ["log.saved", "log.saved"]
    assert events[0]["metadata"] == {"actor_id": "svc-1", "user": "alice", "amount": "3"}


def test_an_action_that_is_no_valid_action_is_kept_as_metadata_only(
    client: FlaskClient, headers: Headers
) -> None:
    save(client, "action=two%20words&user=carol", headers)
    [stored] = client.get("/v1/events", headers=headers).get_json()["events"]
    assert stored["action"] == "log.saved"
    assert stored["metadata"]["action"] == "two words"


def test_a_field_given_twice_keeps_both_values(client: FlaskClient, headers: Headers) -> None:
    save(client, "tag=a&tag=b&user=dan", headers)
    [stored] = client.get("/v1/events", headers=headers).get_json()["events"]
    assert stored["metadata"]["tag"] == ["a", "b"]


def test_get_logs_finds_any_of_the_values_newest_first(
    client: FlaskClient, headers: Headers
) -> None:
    save(client, "user=alice&note=first", headers)
    save(client, "user=bob&note=second", headers)
    save(client, "user=carol&note=third", headers)
    found = lines(client, "user=alice&who=carol", headers)
    assert [line.split(",")[0] for line in found] == ["note:third", "note:first"]
    # The keywords may come as form fields too, and no keyword lists everything.
    response = client.get("/get_logs", data="x=bob", content_type=FORM, headers=headers)
    assert response.get_data(as_text=True).startswith("note:second,user:bob,")
    assert len(lines(client, "", headers)) == 3


def test_get_logs_sees_only_the_tokens_tenant(
    client: FlaskClient, auth_headers: AuthHeaders
) -> None:
    save(client, "user=alice", auth_headers(tenant="acme"))
    assert lines(client, "user=alice", auth_headers(tenant="globex")) == []
    assert len(lines(client, "user=alice", auth_headers(tenant="acme"))) == 1


def test_a_value_with_a_line_break_stays_on_its_line(client: FlaskClient, headers: Headers) -> None:
    save(client, "user=eve&note=a%0Afake:line,", headers)
    [line] = lines(client, "user=eve", headers)
    assert line.startswith("note:a\\nfake:line,,user:eve,")


def test_errors_are_the_json_errors_of_the_api(
    client: FlaskClient, auth_headers: AuthHeaders
) -> None:
    assert_error(client.post("/save_logs", data="user=a", content_type=FORM), 401, "unauthorized")
    read_only = auth_headers(Scope.EVENTS_READ)
    response = client.post("/save_logs", data="user=a", content_type=FORM, headers=read_only)
    assert_error(response, 403, "forbidden")
    assert_error(
        client.get("/get_logs?user=a", headers=auth_headers(Scope.EVENTS_WRITE)), 403, "forbidden"
    )
    headers = auth_headers()
    response = client.post("/save_logs", json={"user": "a"}, headers=headers)
    assert_error(response, 415, "unsupported_media_type")
    response = client.post("/save_logs", data="", content_type=FORM, headers=headers)
    assert_error(response, 422, "validation_error")
    response = client.post("/save_logs", data="user=a%00b", content_type=FORM, headers=headers)
    error = assert_error(response, 422, "validation_error")
    assert {d["field"] for d in error["details"]} == {"actor.id", "metadata.user"}
    response = client.post(
        "/save_logs", data="big=" + "x" * 20_000, content_type=FORM, headers=headers
    )
    assert_error(response, 422, "validation_error")
    assert_error(client.get("/save_logs", headers=headers), 405, "method_not_allowed")
    many = "&".join(f"k{i}=v{i}" for i in range(21))
    assert_error(client.get(f"/get_logs?{many}", headers=headers), 400, "invalid_parameter")
    assert client.get("/v1/events", headers=headers).get_json()["events"] == []
