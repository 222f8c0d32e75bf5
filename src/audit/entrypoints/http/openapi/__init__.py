"""GET /openapi.json: the OpenAPI 3.1 document of the HTTP API, built from its sources.

Paths and methods come from the app's URL map, the scope of each operation from the view
(`auth.require`), what each operation takes and answers from `operations` (its query
parameters from `http.parameters`), the schemas from `schemas` (the event's generated
from its declaration, `audit.domain.shapes`): the document restates no number.
tests/integration/http/test_openapi.py holds it to the routes and the statuses each can
answer, and every response of the HTTP tests is validated against it.
"""

from __future__ import annotations

import re
from importlib import metadata
from typing import Any

from flask import Blueprint, Flask, Response, current_app

from audit.domain.tokens import TOKEN_PREFIX
from audit.entrypoints.http.auth import required_scope
from audit.entrypoints.http.openapi.operations import (
    ERROR_RESPONSE_BY_STATUS,
    OPERATIONS,
    PATH_PARAMETERS,
    RESPONSES,
    response_ref,
)
from audit.entrypoints.http.openapi.schemas import component_schemas
from audit.entrypoints.http.responses import json_response

blueprint = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "bearerAuth"
_EXTENSION_KEY = "audit.openapi"
_AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _path(rule: str) -> str:
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def _operation(app: Flask, endpoint: str, arguments: list[str]) -> dict[str, Any]:
    spec = OPERATIONS[endpoint]
    operation: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": spec["summary"],
    }
    operation["tags"] = [endpoint.split(".")[0]]
    parameters = [
        {"name": name, "in": "path", "required": True, **PATH_PARAMETERS[name]}
        for name in arguments
    ]
    parameters += spec.get("parameters", [])
    if parameters:
        operation["parameters"] = parameters
    if "requestBody" in spec:
        operation["requestBody"] = spec["requestBody"]
    errors = list(spec["errors"])
    scope = required_scope(app.view_functions[endpoint])
    if scope is None:
        operation["security"] = []
    else:
        operation["security"] = [{SECURITY_SCHEME: [scope]}]
        operation["description"] = f"Needs a token with the scope `{scope}`."
        # Authentication reads storage too, so it can answer 503 as well; an address with
        # too many failed authentications is answered 429 before its token is read.
        errors += ["401", "403", "429", "503"]
    responses = dict(spec["responses"])
    for status in sorted(set(errors)):
        responses[status] = response_ref(ERROR_RESPONSE_BY_STATUS[status])
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of `app`'s routes."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint not in OPERATIONS:
            continue  # undocumented routes are caught by test_openapi.py
        item = paths.setdefault(_path(rule.rule), {})
        arguments = [name for name in _RULE_ARGUMENT.findall(rule.rule)]
        for method in sorted((rule.methods or set()) - _AUTOMATIC_METHODS):
            item[method.lower()] = _operation(app, rule.endpoint, arguments)
    try:
        version = metadata.version("audit-log-service")
    except metadata.PackageNotFoundError:
        version = "0.0.0"
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Audit log service",
            "version": version,
            "description": (
                "A tamper-evident, multi-tenant audit log. Every error is "
                '`{"error": {"code", "message", "details"?}}`.'
            ),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "paths": paths,
        "components": {
            "schemas": component_schemas(),
            "responses": RESPONSES,
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "http",
                    "scheme": "bearer",
                    "description": f"A token made by POST /v1/tokens or `audit tokens create` "
                    f"(`{TOKEN_PREFIX}...`). The requirement lists the scope needed.",
                }
            },
        },
    }


@blueprint.get("/openapi.json")
def openapi_json() -> Response:
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    document = app.extensions.get(_EXTENSION_KEY)
    if document is None:
        document = app.extensions[_EXTENSION_KEY] = build_document(app)
    return json_response(document)
