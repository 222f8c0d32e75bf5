"""The tokens API: a tenant's administrators issue, list and revoke its tokens."""

from __future__ import annotations

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response

from audit.application.tokens import IssueToken, ListTokens, RevokeToken
from audit.container import Container
from audit.domain.tokens import Scope
from audit.domain.validation import parse_token_request
from audit.entrypoints.formats import token_document
from audit.entrypoints.http.auth import current_principal, require
from audit.entrypoints.http.body import json_body
from audit.entrypoints.http.parameters import NO_PARAMETERS, query_arguments
from audit.entrypoints.http.responses import json_response

blueprint = Blueprint("tokens", __name__, url_prefix="/v1")


@blueprint.post("/tokens")
@require(Scope.TOKENS_ADMIN)
@inject
def issue_token(issue: IssueToken = Provide[Container.issue_token]) -> Response:
    tenant = current_principal().tenant
    query_arguments(NO_PARAMETERS)
    name, scopes, expires_at = parse_token_request(json_body())
    caller = current_principal()
    issued = issue(
        tenant,
        name,
        scopes,
        expires_at,
        granted_by=caller.scopes,
        granted_until=caller.expires_at,
    )
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
