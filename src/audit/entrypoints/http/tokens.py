"""The tokens API: a tenant's administrators issue, list and revoke its tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response

from audit.application.tokens import IssueToken, ListTokens, RevokeToken
from audit.container import Container
from audit.domain.errors import InvalidParameter, Problem, ValidationFailed
from audit.domain.time import parse_rfc3339
from audit.domain.tokens import TOKEN_NAME_MAX, Scope
from audit.entrypoints.formats import token_document
from audit.entrypoints.http.auth import current_principal, require
from audit.entrypoints.http.body import json_body
from audit.entrypoints.http.parameters import NO_PARAMETERS, query_arguments
from audit.entrypoints.http.responses import json_response

blueprint = Blueprint("tokens", __name__, url_prefix="/v1")

TOKEN_FIELDS = ("name", "scopes", "expires_at")
SCOPE_NAMES = tuple(str(scope) for scope in Scope)
INVALID = "the token request is invalid"


def _text_problem(value: str) -> str | None:
    if "\x00" in value:
        return "must not contain NUL characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "must not contain lone surrogates"
    return None


def _parse_new_token(body: Any) -> tuple[str, frozenset[Scope], datetime | None]:
    """Validate `{"name", "scopes", "expires_at"?}`, naming every problem."""
    if not isinstance(body, dict):
        raise ValidationFailed([Problem(field="", message="must be a JSON object")], INVALID)
    problems = [
        Problem(field=key, message="unknown field") for key in body if key not in TOKEN_FIELDS
    ]

    name = ""
    raw_name = body.get("name")
    if raw_name is None:
        problems.append(Problem(field="name", message="is required"))
    elif not isinstance(raw_name, str):
        problems.append(Problem(field="name", message="must be a string"))
    elif bad := _text_problem(raw_name):
        problems.append(Problem(field="name", message=bad))
    elif not 1 <= len(raw_name) <= TOKEN_NAME_MAX:
        problems.append(
            Problem(field="name", message=f"must be 1 to {TOKEN_NAME_MAX} characters long")
        )
    else:
        name = raw_name

    scopes: set[Scope] = set()
    raw_scopes = body.get("scopes")
    if not isinstance(raw_scopes, list) or not raw_scopes:
        problems.append(Problem(field="scopes", message="must be a non-empty list of scopes"))
    else:
        for i, item in enumerate(raw_scopes):
            if isinstance(item, str) and item in SCOPE_NAMES:
                scopes.add(Scope(item))
            else:
                problems.append(
                    Problem(
                        field=f"scopes[{i}]", message=f"must be one of {', '.join(SCOPE_NAMES)}"
                    )
                )

    expires_at = None
    raw_expiry = body.get("expires_at")
    if raw_expiry is not None:
        if not isinstance(raw_expiry, str):
            problems.append(Problem(field="expires_at", message="must be a string"))
        else:
            try:
                expires_at = parse_rfc3339(raw_expiry)
            except ValueError as exc:
                problems.append(Problem(field="expires_at", message=str(exc)))

    if problems:
        raise ValidationFailed(problems, INVALID)
    return name, frozenset(scopes), expires_at


@blueprint.post("/tokens")
@require(Scope.TOKENS_ADMIN)
@inject
def issue_token(issue: IssueToken = Provide[Container.issue_token]) -> Response:
    tenant = current_principal().tenant
    query_arguments(NO_PARAMETERS)
    name, scopes, expires_at = _parse_new_token(json_body())
    try:
        issued = issue(tenant, name, scopes, expires_at)
    except InvalidParameter as exc:
        # The body is checked above but for what needs the clock: an expiry in the past.
        raise ValidationFailed(
            [Problem(field="expires_at", message=exc.message)], INVALID
        ) from None
    return json_response(token_document(issued.token, issued.secret), 201)


@blueprint.get("/tokens")
@require(Scope.TOKENS_ADMIN)
@inject
def list_tokens(list_: ListTokens = Provide[Container.list_tokens]) -> Response:
    query_arguments(NO_PARAMETERS)
    tokens = list_(current_principal().tenant)
    return json_response({"tokens": [token_document(token) for token in tokens]})


@blueprint.delete("/tokens/<token_id>")
@require(Scope.TOKENS_ADMIN)
@inject
def revoke_token(token_id: str, revoke: RevokeToken = Provide[Container.revoke_token]) -> Response:
    query_arguments(NO_PARAMETERS)
    revoke(current_principal().tenant, token_id)
    return Response(status=204)
