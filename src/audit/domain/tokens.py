"""API tokens: random prefixed secrets, stored only as hashes, scoped to one tenant."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from datetime import datetime

import attrs

TOKEN_PREFIX = "als_"  # noqa: S105 - a public prefix, not a secret
TENANT_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
TENANT_RE = re.compile(TENANT_PATTERN)
TOKEN_NAME_MAX = 128
# A token's name is shown to people, one to a line (`audit tokens list`): no control
# character (C0, DEL, C1) or line break, which could make it pass for a row of its own.
TOKEN_NAME_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029]*$"  # noqa: S105 - a pattern, not a secret
TOKEN_NAME_RE = re.compile(TOKEN_NAME_PATTERN)


class Scope(enum.StrEnum):
    EVENTS_WRITE = "events:write"
    EVENTS_READ = "events:read"
    TOKENS_ADMIN = "tokens:admin"
    METRICS_READ = "metrics:read"


ALL_SCOPES = frozenset(Scope)


def new_secret() -> str:
    """A new token secret: a recognisable prefix and 256 random bits."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> str:
    """The only form in which a secret is stored. SHA-256 suffices for 256-bit secrets."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token_id() -> str:
    return "tok_" + secrets.token_hex(8)


@attrs.frozen
class Token:
    """A stored token: everything but the secret itself."""

    id: str
    tenant: str
    name: str
    scopes: frozenset[Scope]
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def matches(self, secret: str) -> bool:
        return hmac.compare_digest(self.secret_hash, hash_secret(secret))

    def usable_at(self, now: datetime) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or now < self.expires_at


@attrs.frozen
class IssuedToken:
    """A token just made, with its secret: shown once, never stored."""

    token: Token
    secret: str


@attrs.frozen
class Principal:
    """Who is calling: the token's id, its tenant and its scopes (and the token's name,
    which transports may show as the actor when a request names none)."""

    token_id: str
    tenant: str
    scopes: frozenset[Scope]
    name: str = ""
    expires_at: datetime | None = None  # the token's end: what it grants ends there too
