"""What each operation of the HTTP API takes and answers, by its view (Flask endpoint).

Besides the errors of authentication, which `auth.require` on the view implies (the
document adds them). Query parameters come from `parameters`, schemas from `schemas`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.domain import rules
from audit.entrypoints.formats import CSV_COLUMNS, EXPORT_FORMATS
from audit.entrypoints.http.openapi.schemas import SIGNED_CHECKPOINT, ref
from audit.entrypoints.http.parameters import (
    CHECKPOINT_PARAMETERS,
    CONSISTENCY_PARAMETERS,
    EXPORT_PARAMETERS,
    LIST_PARAMETERS,
    PROOF_PARAMETERS,
)
from audit.entrypoints.http.proofs import CHECKPOINT_MEDIA_TYPE
from audit.entrypoints.http.responses import JSON
from audit.entrypoints.http.seed import SAVED as SEED_SAVED


def response_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/responses/{name}"}


def _error(description: str, headers: Mapping[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {JSON: {"schema": ref("Error")}},
    }
    if headers:
        response["headers"] = dict(headers)
    return response


_RETRY_AFTER = {
    "description": "Seconds to wait before trying again.",
    "required": True,
    "schema": {"type": "integer", "minimum": 1},
}

RESPONSES: dict[str, Any] = {
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
    "LogDamaged": _error(
        "`log_damaged`: the stored log was changed outside the service (a row removed, or "
        "edited into what cannot be read), so this answer cannot be made; nothing is "
        "signed over it. `GET /v1/verify` and `audit verify` name the first broken seq."
    ),
    "Unavailable": _error(
        "`unavailable`: storage cannot answer now; nothing was half-written.",
        {"Retry-After": _RETRY_AFTER},
    ),
}

ERROR_RESPONSE_BY_STATUS = {
    "400": "BadRequest",
    "401": "Unauthorized",
    "403": "Forbidden",
    "404": "NotFound",
    "409": "Conflict",
    "413": "PayloadTooLarge",
    "415": "UnsupportedMediaType",
    "422": "ValidationError",
    "429": "TooManyRequests",
    "500": "LogDamaged",
    "503": "Unavailable",
}


def _json(description: str, schema: Mapping[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": dict(schema)}}}


PATH_PARAMETERS: dict[str, dict[str, Any]] = {
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
OPERATIONS: dict[str, dict[str, Any]] = {
    "events.record_events": {
        "summary": "Record one event, or a batch of 1 to the batch limit, all or nothing.",
        "requestBody": _body({"oneOf": [ref("NewEvent"), ref("Batch")]}),
        "responses": {
            "201": {
                **_json(
                    "Stored: the event, or for a batch the result of each event in order.",
                    {"oneOf": [ref("Event"), ref("BatchResult")]},
                ),
                "headers": {
                    "Location": {
                        "description": "For a single event: where to GET it.",
                        "schema": {"type": "string"},
                    }
                },
            },
            "200": _json("A single event already stored with this content.", ref("Event")),
        },
        # 500: an id matching a stored row that was made unreadable (LogDamaged).
        "errors": ["400", "409", "413", "415", "422", "500", "503"],
    },
    "events.list_events": {
        "summary": "A page of the tenant's events matching every filter given.",
        "parameters": [p.document() for p in LIST_PARAMETERS],
        "responses": {"200": _json("A page, and the cursor to the next.", ref("EventPage"))},
        "errors": ["400", "503"],
    },
    "events.get_event": {
        "summary": "One event of the tenant.",
        "responses": {"200": _json("The event.", ref("Event"))},
        "errors": ["400", "404", "500", "503"],
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
            "200": _json("Valid with its head, or the first bad seq.", ref("ChainReport"))
        },
        "errors": ["400", "503"],
    },
    "proofs.public_key": {
        "summary": "The verifier key of the log's signed checkpoints; needs no token.",
        "responses": {"200": _json("The key.", ref("PublicKey"))},
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
                "content": {CHECKPOINT_MEDIA_TYPE.split(";")[0]: {"schema": SIGNED_CHECKPOINT}},
            }
        },
        "errors": ["400", "500", "503"],
    },
    "proofs.event_proof": {
        "summary": "An inclusion proof of one event in a signed tree of the tenant's log.",
        "parameters": [p.document() for p in PROOF_PARAMETERS],
        "responses": {
            "200": _json(
                "The proof and the checkpoint it leads to. A size of 0, beyond the log or "
                "not holding the event is a 400.",
                ref("InclusionProof"),
            )
        },
        "errors": ["400", "404", "500", "503"],
    },
    "proofs.consistency": {
        "summary": "A consistency proof that the tree of size `second` extends that of `first`.",
        "parameters": [p.document() for p in CONSISTENCY_PARAMETERS],
        "responses": {
            "200": _json(
                "The proof. A size of 0 or beyond the log, or first > second, is a 400.",
                ref("ConsistencyProof"),
            )
        },
        "errors": ["400", "500", "503"],
    },
    "tokens.issue_token": {
        "summary": "Make a token in the caller's tenant; its secret is shown this once.",
        "requestBody": _body(ref("NewToken")),
        "responses": {"201": _json("The token, with its secret.", ref("IssuedToken"))},
        "errors": ["400", "413", "415", "422", "503"],
    },
    "tokens.list_tokens": {
        "summary": "The tenant's tokens, without secrets.",
        "responses": {"200": _json("The tokens.", ref("TokenList"))},
        "errors": ["400", "503"],
    },
    "tokens.revoke_token": {
        "summary": "Revoke a token of the tenant: it fails with 401 from now on.",
        "responses": {"204": {"description": "Revoked."}},
        "errors": ["400", "404", "503"],
    },
    "operations.healthz": {
        "summary": "Liveness: the process runs.",
        "responses": {"200": _json("Running.", ref("Status"))},
        "errors": [],
    },
    "operations.readyz": {
        "summary": "Readiness: storage answers.",
        "responses": {"200": _json("Ready.", ref("Status"))},
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
