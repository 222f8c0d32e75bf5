"""GET /openapi.json: the OpenAPI 3.1 document of the HTTP API, built from its sources.

Paths and methods come from the app's URL map, the scope of each operation from the view
(`auth.require`), query parameters from `parameters`, limits and patterns from
`audit.domain.rules`: the document restates no number. tests/integration/http/
test_openapi.py holds it to the routes and to the statuses each can answer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from flask import Blueprint, Flask, Response, current_app

from audit.domain import rules
from audit.domain.chain import GENESIS_HASH
from audit.domain.tokens import TENANT_PATTERN, TOKEN_NAME_MAX, TOKEN_PREFIX, Scope
from audit.entrypoints.formats import CSV_COLUMNS, EXPORT_FORMATS
from audit.entrypoints.http.auth import required_scope
from audit.entrypoints.http.errors import ERROR_CODES
from audit.entrypoints.http.parameters import (
    CHECKPOINT_PARAMETERS,
    CONSISTENCY_PARAMETERS,
    EXPORT_PARAMETERS,
    LIST_PARAMETERS,
    PROOF_PARAMETERS,
)
from audit.entrypoints.http.proofs import ALGORITHM, CHECKPOINT_MEDIA_TYPE
from audit.entrypoints.http.responses import JSON, json_response
from audit.entrypoints.http.seed import SAVED as SEED_SAVED

blueprint = Blueprint("openapi", __name__)

OPENAPI_VERSION = "3.1.0"
SECURITY_SCHEME = "bearerAuth"
_EXTENSION_KEY = "audit.openapi"
_AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})
_RULE_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _response_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _text(max_len: int, *, min_len: int = 1, nullable: bool = True) -> dict[str, Any]:
    return {
        "type": ["string", "null"] if nullable else "string",
        "minLength": min_len,
        "maxLength": max_len,
    }


def _exactly(fields: frozenset[str], schemas: Mapping[str, Any]) -> dict[str, Any]:
    """The properties of an object whose allowed fields the rules list: no more, no fewer."""
    missing, extra = fields - schemas.keys(), schemas.keys() - fields
    if missing or extra:
        raise RuntimeError(f"schema out of step with the rules: missing {missing}, extra {extra}")
    return dict(schemas)


def _closed(properties: Mapping[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": dict(properties),
    }


_HASH = {"type": "string", "pattern": f"^[0-9a-f]{{{len(GENESIS_HASH)}}}$"}
# A Merkle tree node (SHA-256, 32 bytes) in standard base64.
_NODE_HASH = {
    "type": "string",
    "contentEncoding": "base64",
    "pattern": "^[A-Za-z0-9+/]{43}=$",
}
_SIGNED_CHECKPOINT = {
    "type": "string",
    "description": (
        "A C2SP signed note (tlog-checkpoint): `<origin>\\n<tree size>\\n<base64 root>\\n`, "
        "a blank line, then `— <key name> <base64 signature>`; the origin is "
        "`<origin prefix>/<tenant>`."
    ),
}
_TIME_IN = {
    "type": ["string", "null"],
    "format": "date-time",
    "pattern": rules.RFC3339_PATTERN,
    "description": "RFC 3339 with an offset (`Z` or `+02:00`).",
}
_TIME_OUT = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 in UTC with six fractional digits, ending in `Z`.",
}
_NULLABLE_TIME_OUT = {**_TIME_OUT, "type": ["string", "null"]}
_SCOPE = {"type": "string", "enum": [str(scope) for scope in Scope]}
_METADATA = {
    "type": "object",
    "description": (
        f"Any JSON object of at most {rules.METADATA_MAX_BYTES} bytes once serialised "
        f"(RFC 8785), nested at most {rules.METADATA_MAX_DEPTH} deep; integers within "
        f"±{rules.MAX_SAFE_INTEGER}."
    ),
}


def _party_properties() -> dict[str, Any]:
    return _exactly(
        rules.PARTY_FIELDS,
        {
            "id": _text(rules.PARTY_ID_MAX, nullable=False),
            "type": _text(rules.PARTY_TYPE_MAX),
            "name": _text(rules.PARTY_NAME_MAX),
        },
    )


def _source_properties() -> dict[str, Any]:
    return _exactly(
        rules.SOURCE_FIELDS,
        {
            "ip": {"type": ["string", "null"], "description": "An IPv4 or IPv6 address."},
            "user_agent": _text(rules.USER_AGENT_MAX, min_len=0),
        },
    )


def _new_event_properties() -> dict[str, Any]:
    identifier = {"type": "string", "pattern": rules.ID_PATTERN, "maxLength": rules.ID_MAX}
    return _exactly(
        rules.EVENT_FIELDS,
        {
            "id": {
                **identifier,
                "type": ["string", "null"],
                "description": "Makes retries safe; absent, the service makes a UUIDv7.",
            },
            "action": {
                "type": "string",
                "pattern": rules.ACTION_PATTERN,
                "maxLength": rules.ACTION_MAX,
                "examples": ["document.update"],
            },
            "actor": _ref("NewParty"),
            "targets": {
                "type": ["array", "null"],
                "maxItems": rules.MAX_TARGETS,
                "items": _ref("NewParty"),
            },
            "occurred_at": {**_TIME_IN, "description": "Absent: the time the service got it."},
            "outcome": {
                "type": ["string", "null"],
                "enum": [*rules.OUTCOMES, None],
                "default": rules.DEFAULT_OUTCOME,
            },
            "source": {"oneOf": [_ref("NewSource"), {"type": "null"}]},
            "description": _text(rules.DESCRIPTION_MAX, min_len=0),
            "metadata": {**_METADATA, "type": ["object", "null"]},
        },
    )


def _schemas() -> dict[str, Any]:
    stored_party = _party_properties()
    stored_source = _source_properties()
    event_properties = {
        "id": {"type": "string", "pattern": rules.ID_PATTERN},
        "seq": {"type": "integer", "minimum": 1},
        "tenant": {"type": "string", "pattern": TENANT_PATTERN},
        "action": {"type": "string", "pattern": rules.ACTION_PATTERN},
        "actor": _ref("Party"),
        "targets": {"type": "array", "maxItems": rules.MAX_TARGETS, "items": _ref("Party")},
        "outcome": {"type": "string", "enum": list(rules.OUTCOMES)},
        "occurred_at": _TIME_OUT,
        "received_at": _TIME_OUT,
        "source": _ref("Source"),
        "description": _text(rules.DESCRIPTION_MAX, min_len=0),
        "metadata": _METADATA,
        "prev_hash": _HASH,
        "hash": {
            **_HASH,
            "description": (
                "hex(SHA-256(unhex(prev_hash) || RFC 8785 of the event less its hashes))."
            ),
        },
    }
    token_properties = {
        "id": {"type": "string"},
        "name": _text(TOKEN_NAME_MAX, nullable=False),
        "tenant": {"type": "string", "pattern": TENANT_PATTERN},
        "scopes": {"type": "array", "items": _SCOPE},
        "created_at": _TIME_OUT,
        "expires_at": _NULLABLE_TIME_OUT,
    }
    return {
        "Error": _closed(
            {
                "error": _closed(
                    {
                        "code": {"type": "string", "enum": list(ERROR_CODES)},
                        "message": {"type": "string"},
                        "details": {"type": "array", "items": _ref("Problem")},
                    },
                    ["code", "message"],
                )
            },
            ["error"],
        ),
        "Problem": _closed(
            {
                "index": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The event's place in a batch; only for batches.",
                },
                "field": {"type": "string", "examples": ["actor.id"]},
                "message": {"type": "string"},
            },
            ["field", "message"],
        ),
        "NewParty": _closed(_party_properties(), ["id"]),
        "NewSource": _closed(_source_properties(), []),
        "NewEvent": {
            **_closed(_new_event_properties(), ["action", "actor"]),
            "description": (
                "An event as a client sends it. Strings must not hold NUL characters or "
                "lone surrogates; `tenant` comes from the token, never from the body."
            ),
        },
        "Batch": _closed(
            {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": rules.MAX_BATCH,
                    "items": _ref("NewEvent"),
                    "description": f"More than {rules.MAX_BATCH} events is a 413.",
                }
            },
            ["events"],
        ),
        "Party": _closed(stored_party, sorted(stored_party)),
        "Source": _closed(stored_source, sorted(stored_source)),
        "Event": _closed(event_properties, list(event_properties)),
        "BatchItem": _closed(
            {
                "id": {"type": "string"},
                "seq": {"type": "integer", "minimum": 1},
                "hash": _HASH,
                "status": {"type": "string", "enum": ["created", "duplicate"]},
            },
            ["id", "seq", "hash", "status"],
        ),
        "BatchResult": _closed(
            {
                "count": {"type": "integer", "minimum": 1},
                "events": {"type": "array", "items": _ref("BatchItem")},
            },
            ["count", "events"],
        ),
        "EventPage": _closed(
            {
                "events": {"type": "array", "items": _ref("Event")},
                "next_cursor": {"type": ["string", "null"]},
            },
            ["events", "next_cursor"],
        ),
        "ChainValid": _closed(
            {
                "valid": {"const": True},
                "checked": {"type": "integer", "minimum": 0},
                "head": {
                    "oneOf": [
                        _closed(
                            {"seq": {"type": "integer", "minimum": 1}, "hash": _HASH},
                            ["seq", "hash"],
                        ),
                        {"type": "null"},
                    ]
                },
            },
            ["valid", "checked", "head"],
        ),
        "ChainInvalid": _closed(
            {
                "valid": {"const": False},
                "checked": {"type": "integer", "minimum": 0},
                "first_invalid_seq": {"type": "integer", "minimum": 1},
                "reason": {"type": "string"},
            },
            ["valid", "checked", "first_invalid_seq", "reason"],
        ),
        "ChainReport": {"oneOf": [_ref("ChainValid"), _ref("ChainInvalid")]},
        "NewToken": _closed(
            {
                "name": _text(TOKEN_NAME_MAX, nullable=False),
                "scopes": {"type": "array", "minItems": 1, "items": _SCOPE},
                "expires_at": {**_TIME_IN, "description": "In the future; absent: never."},
            },
            ["name", "scopes"],
        ),
        "IssuedToken": _closed(
            {
                **token_properties,
                "token": {
                    "type": "string",
                    "pattern": f"^{TOKEN_PREFIX}",
                    "description": "The secret, shown this once.",
                },
            },
            [*token_properties, "token"],
        ),
        "Token": _closed(
            {
                **token_properties,
                "revoked_at": _NULLABLE_TIME_OUT,
                "last_used_at": _NULLABLE_TIME_OUT,
            },
            [*token_properties, "revoked_at", "last_used_at"],
        ),
        "TokenList": _closed({"tokens": {"type": "array", "items": _ref("Token")}}, ["tokens"]),
        "Status": _closed({"status": {"type": "string"}}, ["status"]),
        "PublicKey": _closed(
            {
                "key_name": {
                    "type": "string",
                    "description": "The origin prefix; checkpoints' origins are "
                    "`<key name>/<tenant>`.",
                },
                "algorithm": {"const": ALGORITHM},
                "vkey": {
                    "type": "string",
                    "description": "The signed-note verifier key: `<key name>+<8 hex of key "
                    "hash>+<base64(0x01 || Ed25519 public key)>`.",
                },
            },
            ["key_name", "algorithm", "vkey"],
        ),
        "InclusionProof": _closed(
            {
                "leaf_index": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The event's `seq` - 1.",
                },
                "tree_size": {"type": "integer", "minimum": 1},
                "hashes": {
                    "type": "array",
                    "items": _NODE_HASH,
                    "description": "The RFC 9162 inclusion proof, leaf to root.",
                },
                "checkpoint": {
                    **_SIGNED_CHECKPOINT,
                    "description": "The signed checkpoint of the tree of `tree_size`.",
                },
            },
            ["leaf_index", "tree_size", "hashes", "checkpoint"],
        ),
        "ConsistencyProof": _closed(
            {
                "first": {"type": "integer", "minimum": 1},
                "second": {"type": "integer", "minimum": 1},
                "hashes": {
                    "type": "array",
                    "items": _NODE_HASH,
                    "description": "The RFC 9162 consistency proof; empty when first = second.",
                },
            },
            ["first", "second", "hashes"],
        ),
    }


def _error(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": _ref("Error")}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

_RESPONSES: dict[str, Any] = {
    "BadRequest": _error(
        "`malformed_json`: the body is not JSON or not UTF-8 (NaN, Infinity and repeated "
        "keys are not JSON here); `invalid_parameter`: a query parameter is unknown, "
        "repeated, empty or wrong."
    ),
    "Unauthorized": _error(
        "`unauthorized`: the token is missing, unknown, expired or revoked.",
        {
            "WWW-Authenticate": {
                "description": "`Bearer realm=...`",
                "required": True,
                "schema": {"type": "string", "pattern": "^Bearer "},
            }
        },
    ),
    "Forbidden": _error("`forbidden`: the token lacks the scope."),
    "NotFound": _error("`not_found`: no such item in this tenant."),
    "Conflict": _error("`conflict`: an event id is stored in this tenant with other content."),
    "PayloadTooLarge": _error(
        f"`payload_too_large`: the body is over the limit (default {rules.MAX_BODY_BYTES} "
        f"bytes, chunked bodies included), or a batch holds over {rules.MAX_BATCH} events."
    ),
    "UnsupportedMediaType": _error("`unsupported_media_type`: the body is not application/json."),
    "ValidationError": _error(
        "`validation_error`: well-formed JSON that is invalid; `details` names every "
        "problem (with its `index` in a batch)."
    ),
    "TooManyRequests": _error(
        "`too_many_requests`: too many failed authentications from this address; a token "
        "already known to be valid is still served.",
        {"Retry-After": _RETRY_AFTER},
    ),
    "Unavailable": _error(
        "`unavailable`: storage cannot answer now; nothing was half-written.",
        {"Retry-After": _RETRY_AFTER},
    ),
}

_ERROR_RESPONSE_BY_STATUS = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "PayloadTooLarge",
    "415": "UnsupportedMediaType",
    "422": "ValidationError",
    "429": "TooManyRequests",
    "503": "Unavailable",
}


def _json(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": dict(schema)}}}


_PATH_PARAMETERS: dict[str, dict[str, Any]] = {
    "event_id": {
        "description": "The event's id.",
        "schema": {"type": "string", "pattern": rules.ID_PATTERN},
    },
    "token_id": {"description": "The token's id.", "schema": {"type": "string"}},
}


def _body(schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"required": True, "content": {JSON: {"schema": dict(schema)}}}


# Per view (Flask endpoint): what the operation is, takes and answers besides the errors
# of authentication, which `require` implies.
_OPERATIONS: dict[str, dict[str, Any]] = {
    "events.record_events": {
        "summary": "Record one event, or a batch of 1 to the batch limit, all or nothing.",
        "requestBody": _body({"oneOf": [_ref("NewEvent"), _ref("Batch")]}),
        "responses": {
            "201": {
                **_json(
                    "Stored: the event, or for a batch the result of each event in order.",
                    {"oneOf": [_ref("Event"), _ref("BatchResult")]},
                ),
                "headers": {
                    "Location": {
                        "description": "For a single event: where to GET it.",
                        "schema": {"type": "string"},
                    }
                },
            },
            "200": _json("A single event already stored with this content.", _ref("Event")),
        },
        "errors": ["400", "409", "413", "415", "422", "503"],
    },
    "events.list_events": {
        "summary": "A page of the tenant's events matching every filter given.",
        "parameters": [p.document() for p in LIST_PARAMETERS],
        "responses": {"200": _json("A page, and the cursor to the next.", _ref("EventPage"))},
        "errors": ["400", "503"],
    },
    "events.get_event": {
        "summary": "One event of the tenant.",
        "responses": {"200": _json("The event.", _ref("Event"))},
        "errors": ["400", "404", "503"],
    },
    "events.export_events": {
        "summary": "Every matching event in ascending seq, streamed.",
        "parameters": [p.document() for p in EXPORT_PARAMETERS],
        "responses": {
            "200": {
                "description": (
                    "NDJSON: one Event per line. CSV: a header row "
                    f"({', '.join(CSV_COLUMNS)}), nested fields as JSON."
                ),
                "content": {
                    media_type.split(";")[0]: {"schema": {"type": "string"}}
                    for media_type, _ in EXPORT_FORMATS.values()
                },
            }
        },
        "errors": ["400", "503"],
    },
    "events.verify_chain": {
        "summary": "Recompute the tenant's hash chain.",
        "responses": {
            "200": _json("Valid with its head, or the first bad seq.", _ref("ChainReport"))
        },
        "errors": ["400", "503"],
    },
    "proofs.public_key": {
        "summary": "The verifier key of the log's signed checkpoints; needs no token.",
        "responses": {"200": _json("The key.", _ref("PublicKey"))},
        "errors": ["400"],
    },
    "proofs.checkpoint": {
        "summary": "A signed checkpoint of the tenant's Merkle tree: now, or at an earlier size.",
        "parameters": [p.document() for p in CHECKPOINT_PARAMETERS],
        "responses": {
            "200": {
                "description": (
                    "The signed note. Of an empty log: size 0 and the empty tree's root. "
                    "A size of 0 or beyond the log is a 400."
                ),
                "content": {CHECKPOINT_MEDIA_TYPE.split(";")[0]: {"schema": _SIGNED_CHECKPOINT}},
            }
        },
        "errors": ["400", "503"],
    },
    "proofs.event_proof": {
        "summary": "An inclusion proof of one event in a signed tree of the tenant's log.",
        "parameters": [p.document() for p in PROOF_PARAMETERS],
        "responses": {
            "200": _json(
                "The proof and the checkpoint it leads to. A size of 0, beyond the log or "
                "not holding the event is a 400.",
                _ref("InclusionProof"),
            )
        },
        "errors": ["400", "404", "503"],
    },
    "proofs.consistency": {
        "summary": "A consistency proof that the tree of size `second` extends that of `first`.",
        "parameters": [p.document() for p in CONSISTENCY_PARAMETERS],
        "responses": {
            "200": _json(
                "The proof. A size of 0 or beyond the log, or first > second, is a 400.",
                _ref("ConsistencyProof"),
            )
        },
        "errors": ["400", "503"],
    },
    "tokens.issue_token": {
        "summary": "Make a token in the caller's tenant; its secret is shown this once.",
        "requestBody": _body(_ref("NewToken")),
        "responses": {"201": _json("The token, with its secret.", _ref("IssuedToken"))},
        "errors": ["400", "413", "415", "422", "503"],
    },
    "tokens.list_tokens": {
        "summary": "The tenant's tokens, without secrets.",
        "responses": {"200": _json("The tokens.", _ref("TokenList"))},
        "errors": ["400", "503"],
    },
    "tokens.revoke_token": {
        "summary": "Revoke a token of the tenant: it fails with 401 from now on.",
        "responses": {"204": {"description": "Revoked."}},
        "errors": ["400", "404", "503"],
    },
    "operations.healthz": {
        "summary": "Liveness: the process runs.",
        "responses": {"200": _json("Running.", _ref("Status"))},
        "errors": [],
    },
    "operations.readyz": {
        "summary": "Readiness: storage answers.",
        "responses": {"200": _json("Ready.", _ref("Status"))},
        "errors": ["503"],
    },
    "operations.metrics": {
        "summary": "Prometheus metrics of this service.",
        "responses": {
            "200": {
                "description": "Prometheus text exposition format.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        "errors": [],
    },
    "seed.save_logs": {
        "summary": "The original service's ingest: form fields stored as one event.",
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"type": "object", "additionalProperties": {"type": "string"}}
                }
            },
        },
        "responses": {
            "200": {
                "description": "Stored.",
                "content": {"text/plain": {"schema": {"type": "string", "const": SEED_SAVED}}},
            }
        },
        "errors": ["400", "413", "415", "422", "503"],
    },
    "seed.get_logs": {
        "summary": (
            "The original service's search: the events whose text holds any value of the "
            "query's fields, newest first, one per line as `key:value,` pairs."
        ),
        "responses": {
            "200": {
                "description": "One event per line.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        },
        "errors": ["400", "503"],
    },
    "openapi.openapi_json": {
        "summary": "This document.",
        "responses": {"200": _json("OpenAPI 3.1.", {"type": "object"})},
        "errors": [],
    },
}


def _path(rule: str) -> str:
    return _RULE_ARGUMENT.sub(r"{\1}", rule)


def _operation(app: Flask, endpoint: str, arguments: list[str]) -> dict[str, Any]:
    spec = _OPERATIONS[endpoint]
    operation: dict[str, Any] = {
        "operationId": endpoint.replace(".", "_"),
        "summary": spec["summary"],
    }
    operation["tags"] = [endpoint.split(".")[0]]
    parameters = [
        {"name": name, "in": "path", "required": True, **_PATH_PARAMETERS[name]}
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
        responses[status] = _response_ref(_ERROR_RESPONSE_BY_STATUS[status])
    operation["responses"] = dict(sorted(responses.items()))
    return operation


def build_document(app: Flask) -> dict[str, Any]:
    """The OpenAPI document of `app`'s routes."""
    paths: dict[str, dict[str, Any]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint not in _OPERATIONS:
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
            "schemas": _schemas(),
            "responses": _RESPONSES,
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
