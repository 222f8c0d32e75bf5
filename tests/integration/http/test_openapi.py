"""The OpenAPI document is true to the app: routes, parameters, statuses, rules, structure."""

from __future__ import annotations

import re
from typing import Any

import openapi_spec_validator
import orjson
import pytest
from flask import Flask
from flask.testing import FlaskClient
from tests.integration.http.support import AuthHeaders, Headers, event
from tests.openapi_check import ResponseChecker, ResponseMismatch

from audit.domain import rules
from audit.domain.query import FILTER_PARAMETERS
from audit.domain.shapes import EVENT
from audit.domain.tokens import Scope
from audit.entrypoints.http import parameters
from audit.entrypoints.http.openapi.schemas import component_schemas
from audit.entrypoints.http.ui import is_viewer_endpoint

AUTOMATIC_METHODS = {"HEAD", "OPTIONS"}

# What each operation can answer, kept here (not derived from the document or the code):
# the document must list every one.
STATUSES: dict[tuple[str, str], set[str]] = {
    ("post", "/v1/events"): {"200", "201", "400", "401", "403", "409", "413", "415", "422", "503"},
    ("get", "/v1/events"): {"200", "400", "401", "403", "503"},
    ("get", "/v1/events/{event_id}"): {"200", "400", "401", "403", "404", "503"},
    ("get", "/v1/export"): {"200", "400", "401", "403", "503"},
    ("get", "/v1/verify"): {"200", "400", "401", "403", "503"},
    ("post", "/v1/tokens"): {"201", "400", "401", "403", "413", "415", "422", "503"},
    ("get", "/v1/tokens"): {"200", "400", "401", "403", "503"},
    ("delete", "/v1/tokens/{token_id}"): {"204", "400", "401", "403", "404", "503"},
    ("get", "/v1/public-key"): {"200", "400"},
    ("get", "/v1/checkpoint"): {"200", "400", "401", "403", "503"},
    ("get", "/v1/events/{event_id}/proof"): {"200", "400", "401", "403", "404", "503"},
    ("get", "/v1/consistency"): {"200", "400", "401", "403", "503"},
    ("get", "/healthz"): {"200"},
    ("get", "/readyz"): {"200", "503"},
    ("get", "/metrics"): {"200", "401", "403"},
    ("get", "/openapi.json"): {"200"},
    ("post", "/save_logs"): {"200", "400", "401", "403", "413", "415", "422", "503"},
    ("get", "/get_logs"): {"200", "400", "401", "403", "503"},
}
PUBLIC = {"/healthz", "/readyz", "/openapi.json", "/v1/public-key"}

# Valid values of every query parameter a route takes, to show each is accepted.
EXAMPLES = {
    "actor_id": "u-1",
    "target_id": "doc-1",
    "action": "document.*",
    "outcome": "success",
    "since": "2026-01-01T00:00:00Z",
    "until": "2027-01-01T00:00:00Z",
    "q": "report",
    "limit": "10",
    "order": "asc",
    "format": "csv",
    "size": "1",
    "first": "1",
    "second": "1",
}


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    doc: dict[str, Any] = response.get_json()
    return doc


def openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def app_operations(app: Flask) -> set[tuple[str, str]]:
    """The API's operations: every route but the web viewer's HTML pages."""
    return {
        (method.lower(), openapi_path(rule.rule))
        for rule in app.url_map.iter_rules()
        if not is_viewer_endpoint(rule.endpoint)
        for method in (rule.methods or set()) - AUTOMATIC_METHODS
    }


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    op: dict[str, Any] = document["paths"][path][method]
    return op


def test_every_route_of_the_app_is_in_the_document(app: Flask, document: dict[str, Any]) -> None:
    undocumented = [
        (sorted(rule.methods or ()), rule.rule)
        for rule in app.url_map.iter_rules()
        if not is_viewer_endpoint(rule.endpoint)  # HTML pages, not the API
        and any(
            method.lower() not in document["paths"].get(openapi_path(rule.rule), {})
            for method in (rule.methods or set()) - AUTOMATIC_METHODS
        )
    ]
    assert undocumented == []


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    # openapi-spec-validator checks the whole document against the OpenAPI 3.1 schema,
    # every schema object against its JSON Schema dialect, and every $ref.
    openapi_spec_validator.validate(document)


def test_the_served_schemas_are_the_generated_ones(document: dict[str, Any]) -> None:
    # tests/unit/test_request_schema.py checks the parser against component_schemas().
    assert document["components"]["schemas"] == component_schemas()
    assert set(document["components"]["schemas"]["NewEvent"]["properties"]) == EVENT.sent_names
    assert tuple(document["components"]["schemas"]["Event"]["required"]) == EVENT.names


def test_every_route_and_method_is_documented(app: Flask, document: dict[str, Any]) -> None:
    documented = {
        (method, path)
        for path, item in document["paths"].items()
        for method in item
        if method in {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    }
    assert app_operations(app) == documented
    # The list of statuses below covers every route too, so a new route needs a line there.
    assert app_operations(app) == set(STATUSES)


@pytest.mark.parametrize(("method", "path"), sorted(STATUSES))
def test_every_status_an_operation_can_answer_is_documented(
    document: dict[str, Any], method: str, path: str
) -> None:
    responses = operation(document, method, path)["responses"]
    assert STATUSES[(method, path)] <= set(responses), sorted(
        STATUSES[(method, path)] - set(responses)
    )


def test_security_is_bearer_except_on_public_routes(document: dict[str, Any]) -> None:
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    scopes = {str(s) for s in Scope}
    for path, item in document["paths"].items():
        for op in item.values():
            if path in PUBLIC:
                assert op["security"] == []
            else:
                [requirement] = op["security"]
                [needed] = requirement["bearerAuth"]
                assert needed in scopes


def test_the_documented_scope_is_the_one_the_route_enforces(
    client: FlaskClient, document: dict[str, Any], auth_headers: AuthHeaders
) -> None:
    for path, item in document["paths"].items():
        for method, op in item.items():
            if path in PUBLIC:
                continue
            [needed] = op["security"][0]["bearerAuth"]
            url = path.replace("{event_id}", "e1").replace("{token_id}", "tok_1")
            others = auth_headers(*(set(Scope) - {Scope(needed)}))
            response = client.open(url, method=method.upper(), headers=others, json={})
            assert response.status_code == 403, (method, path)


def query_parameters(document: dict[str, Any], method: str, path: str) -> set[str]:
    return {
        p["name"]
        for p in operation(document, method, path).get("parameters", [])
        if p["in"] == "query"
    }


def test_every_query_parameter_the_views_accept_is_documented(document: dict[str, Any]) -> None:
    listed = query_parameters(document, "get", "/v1/events")
    assert listed == {*FILTER_PARAMETERS, "limit", "order", "cursor"}
    assert listed == {p.name for p in parameters.LIST_PARAMETERS}
    exported = query_parameters(document, "get", "/v1/export")
    assert exported == {*FILTER_PARAMETERS, "format"}
    assert exported == {p.name for p in parameters.EXPORT_PARAMETERS}
    for path, names in [
        ("/v1/checkpoint", {"size"}),
        ("/v1/events/{event_id}/proof", {"size"}),
        ("/v1/consistency", {"first", "second"}),
    ]:
        assert query_parameters(document, "get", path) == names, path


def test_the_consistency_sizes_are_documented_as_required(document: dict[str, Any]) -> None:
    required = {
        (path, p["name"]): p["required"]
        for path in ("/v1/checkpoint", "/v1/events/{event_id}/proof", "/v1/consistency")
        for p in operation(document, "get", path)["parameters"]
        if p["in"] == "query"
    }
    assert required == {
        ("/v1/checkpoint", "size"): False,
        ("/v1/events/{event_id}/proof", "size"): False,
        ("/v1/consistency", "first"): True,
        ("/v1/consistency", "second"): True,
    }


@pytest.mark.parametrize(
    "path", ["/v1/checkpoint", "/v1/events/{event_id}/proof", "/v1/consistency"]
)
def test_documented_proof_parameters_are_accepted_and_no_others(
    client: FlaskClient, document: dict[str, Any], headers: Headers, path: str
) -> None:
    assert (
        client.post("/v1/events", json={"id": "e1", **event()}, headers=headers).status_code == 201
    )
    url = path.replace("{event_id}", "e1")
    # Together, since a consistency proof needs both of its sizes.
    given = "&".join(f"{n}={EXAMPLES[n]}" for n in sorted(query_parameters(document, "get", path)))
    response = client.get(f"{url}?{given}", headers=headers)
    assert response.status_code == 200, (given, response.get_data(as_text=True))
    response = client.get(f"{url}?{given}&undocumented=1", headers=headers)
    assert response.status_code == 400


@pytest.mark.parametrize(("path", "method"), [("/v1/events", "get"), ("/v1/export", "get")])
def test_documented_parameters_are_accepted_and_no_others(
    client: FlaskClient, document: dict[str, Any], headers: Headers, path: str, method: str
) -> None:
    for name in query_parameters(document, method, path) - {"cursor"}:
        response = client.get(f"{path}?{name}={EXAMPLES[name]}", headers=headers)
        assert response.status_code == 200, (name, response.get_json())
    response = client.get(f"{path}?undocumented=1", headers=headers)
    assert response.status_code == 400
    for op_path, item in document["paths"].items():
        for op_method, op in item.items():
            if op_method == "get" and op_path.startswith("/v1/") and "parameters" not in op:
                url = op_path.replace("{event_id}", "e1")
                assert client.get(f"{url}?undocumented=1", headers=headers).status_code == 400


def test_the_event_schema_comes_from_the_rules(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    new_event = schemas["NewEvent"]
    assert set(new_event["properties"]) == rules.EVENT_FIELDS
    assert new_event["additionalProperties"] is False
    assert set(new_event["required"]) == {"action", "actor"}
    props = new_event["properties"]
    assert props["id"]["pattern"] == rules.ID_PATTERN
    assert props["action"]["pattern"] == rules.ACTION_PATTERN
    assert props["action"]["maxLength"] == rules.ACTION_MAX
    assert props["targets"]["maxItems"] == rules.MAX_TARGETS
    assert props["description"]["maxLength"] == rules.DESCRIPTION_MAX
    assert props["occurred_at"]["pattern"] == rules.RFC3339_PATTERN
    assert str(rules.METADATA_MAX_BYTES) in props["metadata"]["description"]
    assert set(schemas["NewParty"]["properties"]) == rules.PARTY_FIELDS
    assert schemas["NewParty"]["properties"]["id"]["maxLength"] == rules.PARTY_ID_MAX
    assert set(schemas["NewSource"]["properties"]) == rules.SOURCE_FIELDS
    assert schemas["Batch"]["properties"]["events"]["maxItems"] == rules.MAX_BATCH
    limit = {p["name"]: p for p in operation(document, "get", "/v1/events")["parameters"]}["limit"]
    assert limit["schema"]["maximum"] == rules.PAGE_LIMIT_MAX
    assert limit["schema"]["default"] == rules.PAGE_LIMIT_DEFAULT
    outcome = {p["name"]: p for p in operation(document, "get", "/v1/events")["parameters"]}
    assert outcome["outcome"]["schema"]["enum"] == list(rules.OUTCOMES)


def test_the_stored_event_schema_matches_a_stored_event(
    client: FlaskClient, document: dict[str, Any], headers: Headers
) -> None:
    stored = client.post(
        "/v1/events", json={"action": "a.b", "actor": {"id": "u"}}, headers=headers
    ).get_json()
    schema = document["components"]["schemas"]["Event"]
    assert set(schema["properties"]) == set(stored)
    assert set(schema["required"]) == set(stored)


def walk(node: Any) -> Any:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), ref
        assert part in node, ref
        node = node[part]
    return node


def test_the_document_is_structurally_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"]
    assert document["info"]["version"]
    refs = [node["$ref"] for node in walk(document) if "$ref" in node]
    assert refs
    for ref in refs:
        resolve(document, ref)
    operation_ids = []
    for path, item in document["paths"].items():
        assert path.startswith("/")
        declared = set(re.findall(r"{([^}]+)}", path))
        for op in item.values():
            operation_ids.append(op["operationId"])
            assert op["responses"]
            for status, response in op["responses"].items():
                assert re.fullmatch(r"[1-5][0-9][0-9]", status)
                if "$ref" in response:
                    response = resolve(document, response["$ref"])
                assert response["description"]
            in_path = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
            assert in_path == declared, path
            for p in op.get("parameters", []):
                assert p["in"] in {"query", "path", "header", "cookie"}
                assert "schema" in p
                if p["in"] == "path":
                    assert p["required"] is True
    assert len(operation_ids) == len(set(operation_ids))
    # Every error response uses the one error schema.
    for response in document["components"]["responses"].values():
        assert response["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"
        }


def test_error_codes_in_the_schema_cover_the_api(document: dict[str, Any]) -> None:
    codes = set(
        document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"][
            "enum"
        ]
    )
    assert codes >= {
        "malformed_json",
        "invalid_parameter",
        "unauthorized",
        "forbidden",
        "not_found",
        "method_not_allowed",
        "conflict",
        "payload_too_large",
        "unsupported_media_type",
        "validation_error",
        "unavailable",
    }


# The checker every HTTP test's client runs (tests/openapi_check.py) must itself catch a
# response the document does not describe.


def stored_event(client: FlaskClient, headers: Headers) -> tuple[dict[str, Any], dict[str, str]]:
    response = client.post("/v1/events", json=event(), headers=headers)
    assert response.status_code == 201
    return response.get_json(), dict(response.headers)


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e.pop("hash"),
        lambda e: e.update(seq=0),
        lambda e: e.update(extra=1),
        lambda e: e["actor"].pop("name"),
        lambda e: e.update(occurred_at="yesterday"),
        lambda e: e.update(outcome="maybe"),
        lambda e: e.update(targets=None),
    ],
    ids=["missing", "below-minimum", "extra", "nested-missing", "format", "enum", "null"],
)
def test_the_checker_refuses_a_body_its_schema_refuses(
    client: FlaskClient, document: dict[str, Any], headers: Headers, change: Any
) -> None:
    body, response_headers = stored_event(client, headers)
    checker = ResponseChecker(document)
    checker.check("POST", "/v1/events", 201, response_headers, orjson.dumps(body))
    change(body)
    with pytest.raises(ResponseMismatch):
        checker.check("POST", "/v1/events", 201, response_headers, orjson.dumps(body))


def test_the_checker_refuses_undocumented_statuses_types_and_headers(
    document: dict[str, Any],
) -> None:
    checker = ResponseChecker(document)
    error = orjson.dumps({"error": {"code": "unavailable", "message": "m"}})
    json_type = {"Content-Type": "application/json"}
    checker.check("GET", "/v1/verify", 503, {**json_type, "Retry-After": "1"}, error)
    bad = [
        ("GET", "/v1/verify", 418, {**json_type, "Retry-After": "1"}, error),
        ("GET", "/v1/verify", 503, json_type, error),  # no Retry-After
        ("GET", "/v1/verify", 503, {**json_type, "Retry-After": "soon"}, error),
        ("GET", "/v1/verify", 503, {"Content-Type": "text/html", "Retry-After": "1"}, error),
        ("GET", "/v1/verify", 503, {**json_type, "Retry-After": "1"}, b'{"error": {}}'),
        ("GET", "/v1/nowhere", 200, json_type, b"{}"),  # an undocumented path is a 404
        ("PUT", "/v1/verify", 200, json_type, b"{}"),  # an undocumented method is a 405
        ("DELETE", "/v1/tokens/t1", 204, json_type, b"{}"),  # 204 has no body
    ]
    for method, path, status, headers, body in bad:
        with pytest.raises(ResponseMismatch):
            checker.check(method, path, status, headers, body)
    not_found = orjson.dumps({"error": {"code": "not_found", "message": "m"}})
    checker.check("GET", "/v1/nowhere", 404, json_type, not_found)


def test_statuses_that_ask_clients_to_wait_say_how_long(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    for name in ("TooManyRequests", "Unavailable"):
        retry_after = responses[name]["headers"]["Retry-After"]
        assert retry_after["required"] is True
        assert retry_after["schema"]["type"] == "integer"
    for item in document["paths"].values():
        for op in item.values():
            for status, name in (("429", "TooManyRequests"), ("503", "Unavailable")):
                if status in op["responses"]:
                    assert op["responses"][status] == {"$ref": f"#/components/responses/{name}"}
            if op["security"]:  # a throttled address is refused before its token is read
                assert "429" in op["responses"]
