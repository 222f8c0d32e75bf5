"""The component schemas of the OpenAPI document.

The event's (`NewEvent`, `Event` and their parties and sources) are generated from its one
declaration, `audit.domain.shapes`; the others are declared here, once, and every
response of the test suite is validated against them (tests/openapi_check.py). Limits
and patterns come from `audit.domain.rules` and the modules that enforce them: no number
is restated.

It stays one module (a little over 350 lines) because it is one table read top to bottom:
splitting the event's schemas from the rest would scatter the `ref` names between files.
"""

from __future__ import annotations

from typing import Any

from audit.domain import rules
from audit.domain.chain import GENESIS_HASH
from audit.domain.shapes import EVENT, Field, Kind, Sent, Shape
from audit.domain.tokens import (
    TENANT_PATTERN,
    TOKEN_NAME_MAX,
    TOKEN_NAME_PATTERN,
    TOKEN_PREFIX,
    Scope,
)
from audit.entrypoints.http.errors import ERROR_CODES
from audit.entrypoints.http.proofs import ALGORITHM

Schema = dict[str, Any]


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def closed(properties: dict[str, Any], required: list[str]) -> Schema:
    """An object with exactly these properties, `required` always present."""
    return {
        "type": "object",
        "additionalProperties": False,
        "required": required,
        "properties": properties,
    }


# Free text: the parser refuses NUL characters (and lone surrogates, which JSON Schema
# strings cannot hold).
_NO_NUL = "^[^\\u0000]*$"


def _text(max_len: int, *, min_len: int = 1) -> Schema:
    return {"type": "string", "minLength": min_len, "maxLength": max_len, "pattern": _NO_NUL}


HASH: Schema = {"type": "string", "pattern": f"^[0-9a-f]{{{len(GENESIS_HASH)}}}$"}
# A Merkle tree node (SHA-256, 32 bytes) in standard base64.
NODE_HASH: Schema = {
    "type": "string",
    "contentEncoding": "base64",
    "pattern": "^[A-Za-z0-9+/]{43}=$",
}
SIGNED_CHECKPOINT: Schema = {
    "type": "string",
    "description": (
        "A C2SP signed note (tlog-checkpoint): `<origin>\\n<tree size>\\n<base64 root>\\n`, "
        "a blank line, then `— <key name> <base64 signature>`; the origin is "
        "`<origin prefix>/<tenant>`."
    ),
}
TIME_IN: Schema = {
    "type": "string",
    "format": "date-time",
    "pattern": rules.RFC3339_PATTERN,
    "description": "RFC 3339 with an offset (`Z` or `+02:00`).",
}
TIME_OUT: Schema = {
    "type": "string",
    "format": "date-time",
    "description": "RFC 3339 in UTC with six fractional digits, ending in `Z`.",
}
_SCOPE: Schema = {"type": "string", "enum": [str(scope) for scope in Scope]}


def _nullable(schema: Schema) -> Schema:
    """`schema`, or null."""
    if "$ref" in schema:
        return {"oneOf": [schema, {"type": "null"}]}
    kind = schema["type"]
    result = {**schema, "type": [kind, "null"]}
    if "enum" in schema:
        result["enum"] = [*schema["enum"], None]
    return result


def _value(field: Field, *, sent: bool) -> Schema:
    """The JSON Schema of one field's value, as sent (`sent`) or as stored."""
    kind = field.kind
    if kind is Kind.IDENTIFIER:
        schema: Schema = {"type": "string", "pattern": rules.ID_PATTERN}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
    elif kind is Kind.TEXT:
        schema = {"type": "string", "minLength": field.min_length, "pattern": _NO_NUL}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
    elif kind is Kind.IP:
        schema = {"type": "string", "anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
        if field.max_length is not None:
            schema["maxLength"] = field.max_length
    elif kind is Kind.TIME:
        schema = dict(TIME_IN if sent else TIME_OUT)
    elif kind is Kind.CHOICE:
        schema = {"type": "string", "enum": list(field.choices)}
    elif kind is Kind.COUNT:
        schema = {"type": "integer", "minimum": field.minimum}
    elif kind is Kind.HASH:
        schema = dict(HASH)
    elif kind is Kind.TENANT:
        schema = {"type": "string", "pattern": TENANT_PATTERN}
    elif kind is Kind.OBJECT:
        schema = ref(_component(_shape_of(field), sent=sent))
    elif kind is Kind.LIST:
        schema = {"type": "array", "items": ref(_component(_shape_of(field), sent=sent))}
        if field.max_items is not None:
            schema["maxItems"] = field.max_items
    else:
        schema = {
            "type": "object",
            "description": (
                f"Any JSON object of at most {rules.METADATA_MAX_BYTES} bytes once "
                f"serialised (RFC 8785), nested at most {rules.METADATA_MAX_DEPTH} deep; "
                f"integers within ±{rules.MAX_SAFE_INTEGER}."
            ),
        }
    return schema


def _shape_of(field: Field) -> Shape:
    if field.shape is None:
        raise RuntimeError(f"{field.name}: an {field.kind.value} field needs its shape")
    return field.shape


def _component(shape: Shape, *, sent: bool) -> str:
    return f"New{shape.name}" if sent else shape.name


def _property(field: Field, *, sent: bool) -> Schema:
    schema = _value(field, sent=sent)
    # Sent, an optional field may be null (the same as absent); stored, only some are.
    if (field.sent is Sent.OPTIONAL) if sent else field.nullable:
        schema = _nullable(schema)
    if sent and field.default is not None:
        schema["default"] = field.default
    if field.example is not None:
        schema["examples"] = [field.example]
    if field.description and "$ref" not in schema and "oneOf" not in schema:
        schema.setdefault("description", field.description)
    return schema


def shape_schemas(shape: Shape) -> dict[str, Schema]:
    """The request (`New<name>`) and stored (`<name>`) schemas of `shape` and the shapes
    inside it, by component name."""
    result: dict[str, Schema] = {}
    sent_fields = [f for f in shape.fields if f.sent is not Sent.NEVER]
    result[_component(shape, sent=True)] = {
        **closed(
            {f.name: _property(f, sent=True) for f in sent_fields},
            [f.name for f in sent_fields if f.sent is Sent.REQUIRED],
        ),
        "description": f"{shape.description} As a client sends it.",
    }
    result[_component(shape, sent=False)] = {
        **closed({f.name: _property(f, sent=False) for f in shape.fields}, list(shape.names)),
        "description": f"{shape.description} As the service returns it: every key present.",
    }
    for field in shape.fields:
        if field.shape is not None:
            result.update(shape_schemas(field.shape))
    return result


def _event_schemas() -> dict[str, Schema]:
    schemas = shape_schemas(EVENT)
    schemas["NewEvent"]["description"] = (
        "An event as a client sends it. Strings must not hold NUL characters or lone "
        "surrogates; `tenant` comes from the token, never from the body."
    )
    return schemas


_TOKEN_NAME: Schema = {
    **_text(TOKEN_NAME_MAX),
    "pattern": TOKEN_NAME_PATTERN,
    "description": "For people: no control characters or line breaks.",
}
_TOKEN_PROPERTIES: dict[str, Any] = {
    "id": {"type": "string"},
    "name": _TOKEN_NAME,
    "tenant": {"type": "string", "pattern": TENANT_PATTERN},
    "scopes": {"type": "array", "items": _SCOPE},
    "created_at": TIME_OUT,
    "expires_at": _nullable(TIME_OUT),
}


def component_schemas() -> dict[str, Schema]:
    """Every schema of the document's `components`."""
    return {
        "Error": closed(
            {
                "error": closed(
                    {
                        "code": {"type": "string", "enum": list(ERROR_CODES)},
                        "message": {"type": "string"},
                        "details": {"type": "array", "items": ref("Problem")},
                    },
                    ["code", "message"],
                )
            },
            ["error"],
        ),
        "Problem": closed(
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
        **_event_schemas(),
        "Batch": closed(
            {
                "events": {
                    "type": "array",
                    "minItems": 1,
                    "maxItems": rules.MAX_BATCH,
                    "items": ref("NewEvent"),
                    "description": f"More than {rules.MAX_BATCH} events is a 413.",
                }
            },
            ["events"],
        ),
        "BatchItem": closed(
            {
                "id": {"type": "string"},
                "seq": {"type": "integer", "minimum": 1},
                "hash": HASH,
                "status": {"type": "string", "enum": ["created", "duplicate"]},
            },
            ["id", "seq", "hash", "status"],
        ),
        "BatchResult": closed(
            {
                "count": {"type": "integer", "minimum": 1},
                "events": {"type": "array", "items": ref("BatchItem")},
            },
            ["count", "events"],
        ),
        "EventPage": closed(
            {
                "events": {"type": "array", "items": ref("Event")},
                "next_cursor": {"type": ["string", "null"]},
            },
            ["events", "next_cursor"],
        ),
        "ChainValid": closed(
            {
                "valid": {"const": True},
                "checked": {"type": "integer", "minimum": 0},
                "head": {
                    "oneOf": [
                        closed(
                            {"seq": {"type": "integer", "minimum": 1}, "hash": HASH},
                            ["seq", "hash"],
                        ),
                        {"type": "null"},
                    ]
                },
            },
            ["valid", "checked", "head"],
        ),
        "ChainInvalid": closed(
            {
                "valid": {"const": False},
                "checked": {"type": "integer", "minimum": 0},
                "first_invalid_seq": {"type": "integer", "minimum": 1},
                "reason": {"type": "string"},
            },
            ["valid", "checked", "first_invalid_seq", "reason"],
        ),
        "ChainReport": {"oneOf": [ref("ChainValid"), ref("ChainInvalid")]},
        "NewToken": closed(
            {
                "name": _TOKEN_NAME,
                "scopes": {"type": "array", "minItems": 1, "items": _SCOPE},
                "expires_at": {
                    **_nullable(TIME_IN),
                    "description": "In the future; absent: never.",
                },
            },
            ["name", "scopes"],
        ),
        "IssuedToken": closed(
            {
                **_TOKEN_PROPERTIES,
                "token": {
                    "type": "string",
                    "pattern": f"^{TOKEN_PREFIX}",
                    "description": "The secret, shown this once.",
                },
            },
            [*_TOKEN_PROPERTIES, "token"],
        ),
        "Token": closed(
            {
                **_TOKEN_PROPERTIES,
                "revoked_at": _nullable(TIME_OUT),
                "last_used_at": _nullable(TIME_OUT),
            },
            [*_TOKEN_PROPERTIES, "revoked_at", "last_used_at"],
        ),
        "TokenList": closed({"tokens": {"type": "array", "items": ref("Token")}}, ["tokens"]),
        "Status": closed({"status": {"type": "string"}}, ["status"]),
        "PublicKey": closed(
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
        "InclusionProof": closed(
            {
                "leaf_index": {
                    "type": "integer",
                    "minimum": 0,
                    "description": "The event's `seq` - 1.",
                },
                "tree_size": {"type": "integer", "minimum": 1},
                "hashes": {
                    "type": "array",
                    "items": NODE_HASH,
                    "description": "The RFC 9162 inclusion proof, leaf to root.",
                },
                "checkpoint": {
                    **SIGNED_CHECKPOINT,
                    "description": "The signed checkpoint of the tree of `tree_size`.",
                },
            },
            ["leaf_index", "tree_size", "hashes", "checkpoint"],
        ),
        "ConsistencyProof": closed(
            {
                "first": {"type": "integer", "minimum": 1},
                "second": {"type": "integer", "minimum": 1},
                "hashes": {
                    "type": "array",
                    "items": NODE_HASH,
                    "description": "The RFC 9162 consistency proof; empty when first = second.",
                },
            },
            ["first", "second", "hashes"],
        ),
    }
