"""Tokens: issue, list and revoke a tenant's tokens (authenticating is in authentication)."""

from __future__ import annotations

from datetime import datetime

import attrs

from audit.application.authentication import TokenUses
from audit.application.ports import Clock, UnitOfWorkFactory
from audit.domain.errors import Forbidden, InvalidParameter, NotFound, Problem, ValidationFailed
from audit.domain.time import format_time
from audit.domain.tokens import (
    ALL_SCOPES,
    TENANT_RE,
    TOKEN_NAME_MAX,
    IssuedToken,
    Scope,
    Token,
    hash_secret,
    new_secret,
    new_token_id,
)

BOOTSTRAP_TENANT = "default"


class IssueToken:
    """Make a token for a tenant; the secret is returned this once and stored only hashed."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(
        self,
        tenant: str,
        name: str,
        scopes: frozenset[Scope],
        expires_at: datetime | None = None,
        granted_by: frozenset[Scope] | None = None,
        granted_until: datetime | None = None,
    ) -> IssuedToken:
        """`granted_by`, `granted_until`: the scopes and the expiry of the token asking; a
        token grants no more than it holds, for no longer than it lasts itself (a token of
        an hour cannot make one for ever)."""
        if not TENANT_RE.fullmatch(tenant):
            raise InvalidParameter("tenant must be 1-64 characters of A-Z a-z 0-9 . _ -")
        problems = []
        if not 1 <= len(name) <= TOKEN_NAME_MAX:
            problems.append(Problem("name", f"must be 1 to {TOKEN_NAME_MAX} characters long"))
        if not scopes:
            problems.append(Problem("scopes", "a token needs at least one scope"))
        now = self._clock.now()
        if expires_at is not None and expires_at <= now:
            problems.append(Problem("expires_at", "must be in the future"))
        if problems:
            raise ValidationFailed(problems, "the token request is invalid")
        if granted_by is not None and not scopes <= granted_by:
            missing = ", ".join(sorted(scopes - granted_by))
            raise Forbidden(f"a token cannot grant scopes it does not hold: {missing}")
        if granted_until is not None and (expires_at is None or expires_at > granted_until):
            raise Forbidden(
                "a token cannot grant beyond its own expiry: set expires_at no later than "
                f"{format_time(granted_until)}"
            )
        with self._uow(write=True) as uow:
            issued = _new_token(tenant, name, scopes, now, expires_at)
            uow.tokens.add(issued.token)
            uow.commit()
        return issued


def _new_token(
    tenant: str, name: str, scopes: frozenset[Scope], now: datetime, expires_at: datetime | None
) -> IssuedToken:
    secret = new_secret()
    token = Token(
        id=new_token_id(),
        tenant=tenant,
        name=name,
        scopes=scopes,
        secret_hash=hash_secret(secret),
        created_at=now,
        expires_at=expires_at,
    )
    return IssuedToken(token=token, secret=secret)


class BootstrapToken:
    """On a store with no token at all, make one for tenant `default` with every scope."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self) -> IssuedToken | None:
        with self._uow(write=True) as uow:
            # Servers starting together on one database take turns on this lock, so only
            # the first of them finds no token.
            uow.events.lock_head(BOOTSTRAP_TENANT)
            if uow.tokens.any():
                return None
            issued = _new_token(BOOTSTRAP_TENANT, "bootstrap", ALL_SCOPES, self._clock.now(), None)
            uow.tokens.add(issued.token)
            uow.commit()
        return issued


class ListTokens:
    """The tokens of one tenant (or of all, for the operator's command line), with the
    uses this process noted but has not written yet."""

    def __init__(self, uow: UnitOfWorkFactory, uses: TokenUses | None = None) -> None:
        self._uow = uow
        self._uses = uses

    def __call__(self, tenant: str | None) -> list[Token]:
        with self._uow() as uow:
            listed = uow.tokens.list(tenant)
        uses = self._uses
        return listed if uses is None else [uses.last_used(token) for token in listed]


class RevokeToken:
    """Revoke a token so it fails from now on. `tenant=None` only for the operator's CLI."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, tenant: str | None, token_id: str) -> Token:
        with self._uow(write=True) as uow:
            token = uow.tokens.get(token_id)
            if token is None or (tenant is not None and token.tenant != tenant):
                raise NotFound(f"no token {token_id!r}")
            if token.revoked_at is None:
                now = self._clock.now()
                uow.tokens.revoke(token_id, now)
                token = attrs.evolve(token, revoked_at=now)
                uow.commit()
        return token
