"""Tokens: issued once, stored hashed, checked on every call, revoked for good."""

from __future__ import annotations

import hashlib
import threading
import time
from datetime import UTC, datetime, timedelta

import attrs
import pytest

from audit.adapters.clock import FixedClock
from audit.adapters.memory import (
    InMemoryRevocationEpoch,
    InMemoryStore,
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
)
from audit.application.authentication import (
    CACHE_TTL_S,
    KNOWN_FOR,
    Authenticate,
    FailureThrottle,
    TokenUses,
)
from audit.application.tokens import (
    BootstrapToken,
    IssueToken,
    ListTokens,
    RevokeToken,
)
from audit.domain.errors import (
    Forbidden,
    InvalidParameter,
    NotFound,
    StorageUnavailable,
    ValidationFailed,
)
from audit.domain.tokens import Principal, Scope
from audit.domain.validation import parse_token_request

NOW = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
READ = frozenset({Scope.EVENTS_READ})
WRITE_READ = frozenset({Scope.EVENTS_WRITE, Scope.EVENTS_READ})


# --- IssueToken ------------------------------------------------------------------------------


def test_an_issued_token_is_a_prefixed_secret_shown_once(
    issue: IssueToken, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", WRITE_READ)
    assert issued.secret.startswith("als_")
    assert len(issued.secret) >= 4 + 43  # 256 random bits, URL-safe base64
    assert issued.token.tenant == "acme"
    assert issued.token.name == "ci"
    assert issued.token.scopes == WRITE_READ
    assert issued.token.created_at == NOW
    assert issued.token.expires_at is None
    assert issued.token.revoked_at is None
    assert store.tokens == {issued.token.id: issued.token}


def test_the_store_holds_only_the_sha256_of_the_secret(
    issue: IssueToken, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    [stored] = store.tokens.values()
    assert stored.secret_hash == hashlib.sha256(issued.secret.encode()).hexdigest()
    values = attrs.asdict(stored, recurse=True)
    assert all(issued.secret not in str(v) for v in values.values())
    assert issued.secret not in repr(store.tokens)
    assert issued.secret.removeprefix("als_") not in repr(store.tokens)


def test_every_token_gets_its_own_id_and_secret(issue: IssueToken) -> None:
    issued = [issue("acme", "ci", READ) for _ in range(50)]
    assert len({i.secret for i in issued}) == 50
    assert len({i.token.id for i in issued}) == 50


@pytest.mark.parametrize(
    ("tenant", "name", "scopes"),
    [
        ("", "ci", READ),
        ("a b", "ci", READ),
        ("acme/x", "ci", READ),
        ("t" * 65, "ci", READ),
        ("acme", "", READ),
        ("acme", "n" * 129, READ),
        ("acme", "ci", frozenset()),
    ],
)
def test_a_bad_tenant_name_or_scope_set_is_refused_and_nothing_stored(
    issue: IssueToken, store: InMemoryStore, tenant: str, name: str, scopes: frozenset[Scope]
) -> None:
    # The tenant comes from the operator or the caller's token; name and scopes from a body.
    with pytest.raises(InvalidParameter if tenant != "acme" else ValidationFailed):
        issue(tenant, name, scopes)
    assert store.tokens == {}


def test_the_longest_tenant_and_name_are_accepted(issue: IssueToken) -> None:
    issued = issue("t" * 64, "n" * 128, READ)
    assert (issued.token.tenant, issued.token.name) == ("t" * 64, "n" * 128)


def test_a_tenant_with_a_trailing_newline_is_refused(
    issue: IssueToken, store: InMemoryStore
) -> None:
    with pytest.raises(InvalidParameter):
        issue("acme\n", "ci", READ)


@pytest.mark.parametrize("delta", [timedelta(0), timedelta(seconds=-1)])
def test_an_expiry_that_is_not_in_the_future_is_refused(
    issue: IssueToken, store: InMemoryStore, delta: timedelta
) -> None:
    with pytest.raises(ValidationFailed) as info:
        issue("acme", "ci", READ, expires_at=NOW + delta)
    assert [p.field for p in info.value.problems] == ["expires_at"]
    assert store.tokens == {}


def test_a_token_grants_no_scope_it_does_not_hold(issue: IssueToken, store: InMemoryStore) -> None:
    admin_only = frozenset({Scope.TOKENS_ADMIN})
    with pytest.raises(Forbidden, match="events:write"):
        issue("acme", "ci", frozenset({Scope.EVENTS_WRITE}), granted_by=admin_only)
    assert store.tokens == {}
    both = frozenset({Scope.TOKENS_ADMIN, Scope.EVENTS_WRITE})
    assert issue("acme", "ci", frozenset({Scope.EVENTS_WRITE}), granted_by=both).token.scopes == {
        Scope.EVENTS_WRITE
    }


# --- the token request: one parser for the API and the command line --------------------------


def test_scope_names_parse_to_scopes() -> None:
    def scopes(names: list[str]) -> frozenset[Scope]:
        return parse_token_request({"name": "n", "scopes": names})[1]

    assert scopes(["events:write", "events:read", "events:write"]) == WRITE_READ
    assert scopes(["tokens:admin", "metrics:read"]) == {Scope.TOKENS_ADMIN, Scope.METRICS_READ}


@pytest.mark.parametrize(
    "names", [["events:delete"], ["events:read", "Events:Write"], ["events"], [""], ["*"]]
)
def test_an_unknown_scope_is_refused_naming_the_known_ones(names: list[str]) -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_token_request({"name": "n", "scopes": names})
    (problem,) = info.value.problems
    assert problem.field == f"scopes[{len(names) - 1}]"
    assert "events:read" in problem.message


def test_no_scope_at_all_is_refused() -> None:
    with pytest.raises(ValidationFailed) as info:
        parse_token_request({"name": "n", "scopes": []})
    assert [problem.field for problem in info.value.problems] == ["scopes"]


# --- Authenticate ----------------------------------------------------------------------------


def test_the_secret_authenticates_as_its_tenant_and_scopes(
    issue: IssueToken, authenticate: Authenticate
) -> None:
    issued = issue("acme", "ci", WRITE_READ)
    issue("globex", "other", READ)
    assert authenticate(issued.secret) == Principal(
        token_id=issued.token.id, tenant="acme", scopes=WRITE_READ, name="ci"
    )


def test_unknown_secrets_are_refused(issue: IssueToken, authenticate: Authenticate) -> None:
    issued = issue("acme", "ci", READ)
    body = issued.secret.removeprefix("als_")
    flipped = issued.secret[:-1] + ("A" if issued.secret[-1] != "A" else "B")
    for secret in [
        "",
        "als_",
        "als_" + "A" * 43,
        flipped,
        issued.secret + "x",
        issued.secret[:-1],
        issued.secret.upper(),
        body,
        "xyz_" + body,
        "ALS_" + body,
        "Bearer " + issued.secret,
        " " + issued.secret,
        issued.token.secret_hash,
        issued.token.id,
    ]:
        assert authenticate(secret) is None, secret


def test_a_token_of_another_prefix_is_refused_even_if_its_hash_is_stored(
    issue: IssueToken, authenticate: Authenticate, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    other = "sk_" + issued.secret.removeprefix("als_")
    forged = attrs.evolve(issued.token, secret_hash=hashlib.sha256(other.encode()).hexdigest())
    store.tokens = {forged.id: forged}
    assert authenticate(other) is None


def test_a_token_works_until_it_expires(
    issue: IssueToken, authenticate: Authenticate, clock: FixedClock
) -> None:
    issued = issue("acme", "ci", READ, expires_at=NOW + timedelta(hours=1))
    clock.advance(timedelta(hours=1) - timedelta(microseconds=1))
    assert authenticate(issued.secret) is not None
    clock.advance(timedelta(microseconds=1))
    assert authenticate(issued.secret) is None
    clock.advance(timedelta(days=365))
    assert authenticate(issued.secret) is None


def test_a_revoked_token_is_refused_from_then_on(
    issue: IssueToken, authenticate: Authenticate, revoke: RevokeToken
) -> None:
    issued = issue("acme", "ci", READ)
    kept = issue("acme", "kept", READ)
    assert authenticate(issued.secret) is not None
    revoke("acme", issued.token.id)
    assert authenticate(issued.secret) is None
    assert authenticate(kept.secret) is not None


def last_used(store: InMemoryStore, token_id: str) -> datetime | None:
    return store.tokens[token_id].last_used_at


def test_last_used_is_noted_in_memory_and_written_in_one_batch(
    issue: IssueToken,
    authenticate: Authenticate,
    token_uses: TokenUses,
    list_tokens: ListTokens,
    clock: FixedClock,
    store: InMemoryStore,
) -> None:
    one, two = issue("acme", "one", READ), issue("acme", "two", READ)
    assert authenticate(one.secret) is not None
    clock.advance(timedelta(seconds=30))
    assert authenticate(one.secret) is not None
    assert authenticate(two.secret) is not None
    # Nothing written by the requests themselves...
    assert last_used(store, one.token.id) is None
    # ...but this process lists what it noted.
    listed = {t.id: t.last_used_at for t in list_tokens("acme")}
    assert listed == {one.token.id: NOW + timedelta(seconds=30), two.token.id: listed[two.token.id]}
    token_uses.flush()
    assert last_used(store, one.token.id) == NOW + timedelta(seconds=30)
    assert last_used(store, two.token.id) == NOW + timedelta(seconds=30)
    token_uses.flush()  # nothing new: nothing written
    assert last_used(store, one.token.id) == NOW + timedelta(seconds=30)


def test_an_earlier_use_never_overwrites_a_later_one(
    issue: IssueToken, uow: InMemoryUnitOfWorkFactory, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    first, second = TokenUses(uow, background=False), TokenUses(uow, background=False)
    first(issued.token.id, NOW + timedelta(minutes=5))
    second(issued.token.id, NOW)
    first.flush()
    second.flush()
    assert last_used(store, issued.token.id) == NOW + timedelta(minutes=5)


def test_a_failed_write_of_uses_is_retried_and_never_reaches_the_request(
    issue: IssueToken, clock: FixedClock, uow: InMemoryUnitOfWorkFactory, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)

    class Full(InMemoryUnitOfWorkFactory):
        full = True

        def __call__(self, write: bool = False) -> InMemoryUnitOfWork:
            if write and self.full:
                raise StorageUnavailable("the database's disk is full", 30, "disk_full")
            return super().__call__(write)

    storage = Full(store)
    uses = TokenUses(storage, background=False)
    authenticate = Authenticate(storage, clock, InMemoryRevocationEpoch(storage), uses)
    assert authenticate(issued.secret) is not None  # reads need no write
    uses.flush()  # logged, kept
    assert last_used(store, issued.token.id) is None
    storage.full = False
    uses.flush()
    assert last_used(store, issued.token.id) == NOW


def test_the_background_writer_writes_noted_uses_by_itself(
    issue: IssueToken, uow: InMemoryUnitOfWorkFactory, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    uses = TokenUses(uow, interval_s=0.01)
    uses(issued.token.id, NOW)
    deadline = time.monotonic() + 10
    while last_used(store, issued.token.id) is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert last_used(store, issued.token.id) == NOW


def test_a_refused_token_is_not_marked_as_used(
    issue: IssueToken,
    authenticate: Authenticate,
    revoke: RevokeToken,
    token_uses: TokenUses,
    store: InMemoryStore,
) -> None:
    issued = issue("acme", "ci", READ)
    revoke("acme", issued.token.id)
    assert authenticate(issued.secret) is None
    token_uses.flush()
    assert last_used(store, issued.token.id) is None


def test_marking_a_token_used_keeps_its_revocation(
    issue: IssueToken, clock: FixedClock, uow: InMemoryUnitOfWorkFactory, store: InMemoryStore
) -> None:
    """A revocation committed before the uses are written must survive that write."""
    issued = issue("acme", "ci", READ)
    uses = TokenUses(uow, background=False)
    uses(issued.token.id, NOW)
    RevokeToken(uow, clock)("acme", issued.token.id)
    uses.flush()
    assert store.tokens[issued.token.id].revoked_at == NOW
    assert store.tokens[issued.token.id].last_used_at == NOW


# --- the principals Authenticate keeps -------------------------------------------------------


class CountingStorage(InMemoryUnitOfWorkFactory):
    """Counts the units of work opened: a kept principal opens none."""

    opened = 0

    def __call__(self, write: bool = False) -> InMemoryUnitOfWork:
        self.opened += 1
        return super().__call__(write)


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def kept(
    store: InMemoryStore, clock: FixedClock, ticks: Ticks | None = None
) -> tuple[Authenticate, CountingStorage]:
    storage = CountingStorage(store)
    authenticate = Authenticate(
        storage, clock, InMemoryRevocationEpoch(storage), monotonic=ticks or Ticks()
    )
    return authenticate, storage


def test_a_known_token_is_answered_without_opening_storage(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    authenticate, storage = kept(store, clock)
    first = authenticate(issued.secret)
    assert first is not None
    assert storage.opened == 1
    for _ in range(50):
        assert authenticate(issued.secret) == first
    assert storage.opened == 1


def test_a_revocation_anywhere_is_seen_by_the_next_call(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore, uow: InMemoryUnitOfWorkFactory
) -> None:
    issued, other = issue("acme", "ci", READ), issue("acme", "other", READ)
    authenticate, _ = kept(store, clock)
    assert authenticate(issued.secret) is not None
    assert authenticate(other.secret) is not None
    # Revoked through another factory over the same store, as another worker would.
    RevokeToken(InMemoryUnitOfWorkFactory(store), clock)("acme", issued.token.id)
    assert authenticate(issued.secret) is None
    assert authenticate(other.secret) is not None  # reloaded, still valid
    assert not authenticate.knows(issued.secret)
    assert authenticate.knows(other.secret)


def test_a_revocation_rolled_back_changes_nothing(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore, uow: InMemoryUnitOfWorkFactory
) -> None:
    issued = issue("acme", "ci", READ)
    before = store.revocation_epoch
    with uow(write=True) as work:
        work.tokens.revoke(issued.token.id, NOW)
    assert store.revocation_epoch == before
    authenticate, _ = kept(store, clock)
    assert authenticate(issued.secret) is not None


def test_expiry_is_checked_on_every_call_of_a_kept_token(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ, expires_at=NOW + timedelta(seconds=5))
    authenticate, storage = kept(store, clock)
    assert authenticate(issued.secret) is not None
    assert authenticate.knows(issued.secret)
    clock.advance(timedelta(seconds=5))
    assert authenticate(issued.secret) is None
    assert not authenticate.knows(issued.secret)
    assert storage.opened == 1


def test_a_kept_principal_is_reloaded_after_its_time_to_live(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    ticks = Ticks()
    authenticate, storage = kept(store, clock, ticks)
    assert authenticate(issued.secret) is not None
    # Changed behind the epoch's back (by hand in the database): seen after the TTL.
    store.tokens = {issued.token.id: attrs.evolve(issued.token, revoked_at=NOW)}
    ticks.now = CACHE_TTL_S - 0.001
    assert authenticate(issued.secret) is not None
    ticks.now = CACHE_TTL_S
    assert authenticate(issued.secret) is None
    assert storage.opened == 2


def test_kept_answers_a_loaded_principal_and_its_epoch_without_any_read(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", WRITE_READ)
    ticks = Ticks()
    authenticate, storage = kept(store, clock, ticks)
    assert authenticate.kept(issued.secret) is None  # never loaded here
    principal = authenticate(issued.secret)
    assert principal is not None
    epoch = store.revocation_epoch
    assert authenticate.kept(issued.secret) == (principal, epoch)
    # A revocation elsewhere is not seen: the epoch it gives is the one the operation
    # must check in its own transaction (RecordEvents.commit_group).
    RevokeToken(InMemoryUnitOfWorkFactory(store), clock)("acme", issued.token.id)
    assert store.revocation_epoch == epoch + 1
    assert authenticate.kept(issued.secret) == (principal, epoch)
    assert storage.opened == 1
    ticks.now = CACHE_TTL_S  # past its time to live: not kept any more
    assert authenticate.kept(issued.secret) is None
    assert authenticate(issued.secret) is None


def test_kept_refuses_an_expired_principal(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", WRITE_READ, expires_at=NOW + timedelta(seconds=5))
    authenticate, _ = kept(store, clock)
    assert authenticate(issued.secret) is not None
    assert authenticate.kept(issued.secret) is not None
    clock.advance(timedelta(seconds=5))
    assert authenticate.kept(issued.secret) is None


def test_unknown_secrets_are_never_kept(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    authenticate, storage = kept(store, clock)
    for _ in range(3):
        assert authenticate("als_" + "A" * 43) is None
    assert storage.opened == 3
    assert not authenticate.knows("als_" + "A" * 43)
    # A token issued later is found on its first use.
    issued = issue("acme", "ci", READ)
    assert authenticate(issued.secret) is not None


def test_the_kept_principals_are_bounded(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    tokens = [issue("acme", f"t{n}", READ) for n in range(5)]
    storage = CountingStorage(store)
    authenticate = Authenticate(storage, clock, InMemoryRevocationEpoch(storage), max_entries=3)
    for issued in tokens:
        assert authenticate(issued.secret) is not None
    assert [authenticate.knows(t.secret) for t in tokens] == [False, False, True, True, True]


class SharedHints:
    """KnownTokens in memory: what every process of a server would see in its file."""

    def __init__(self) -> None:
        self.until: dict[str, datetime] = {}
        self.notes = 0

    def note(self, secret_hash: str, until: datetime) -> None:
        self.notes += 1
        self.until[secret_hash] = until

    def knows(self, secret_hash: str, at: datetime) -> bool:
        return secret_hash in self.until and at < self.until[secret_hash]


def workers(
    store: InMemoryStore, clock: FixedClock, shared: SharedHints
) -> list[tuple[Authenticate, CountingStorage]]:
    """Two processes' Authenticate over one store and one KnownTokens."""
    made = []
    for _ in range(2):
        storage = CountingStorage(store)
        made.append(
            (Authenticate(storage, clock, InMemoryRevocationEpoch(storage), shared=shared), storage)
        )
    return made


def test_a_token_one_process_accepted_is_known_to_every_other(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    shared = SharedHints()
    (first, _), (second, storage) = workers(store, clock, shared)
    assert not second.knows(issued.secret)
    assert first(issued.secret) is not None
    assert second.knows(issued.secret)
    assert not second.knows("als_" + "A" * 43)
    assert storage.opened == 0  # knowing asks no storage
    # Noted once a load, not once a call.
    for _ in range(20):
        assert first(issued.secret) is not None
    assert shared.notes == 1
    # Known for an hour after its last acceptance, and never past its expiry.
    clock.advance(KNOWN_FOR)
    assert not second.knows(issued.secret)
    expiring = issue("acme", "short", READ, expires_at=clock.now() + timedelta(seconds=5))
    assert first(expiring.secret) is not None
    assert second.knows(expiring.secret)
    clock.advance(timedelta(seconds=5))
    assert not second.knows(expiring.secret)


def test_a_revoked_token_known_to_every_process_is_still_refused(
    issue: IssueToken, clock: FixedClock, store: InMemoryStore
) -> None:
    issued = issue("acme", "ci", READ)
    (first, _), (second, _) = workers(store, clock, SharedHints())
    assert first(issued.secret) is not None
    RevokeToken(InMemoryUnitOfWorkFactory(store), clock)("acme", issued.token.id)
    assert second.knows(issued.secret)  # a hint only: it lets the request be heard
    assert second(issued.secret) is None
    assert first(issued.secret) is None


# --- FailureThrottle -------------------------------------------------------------------------


def test_an_address_is_held_off_after_the_limit_within_the_window() -> None:
    ticks = Ticks()
    throttle = FailureThrottle(limit=3, window_s=60, monotonic=ticks)
    for _ in range(2):
        throttle.failed("203.0.113.5")
    assert throttle.retry_after("203.0.113.5") is None
    ticks.now = 10.0
    throttle.failed("203.0.113.5")
    assert throttle.retry_after("203.0.113.5") == 50  # until the oldest leaves the window
    assert throttle.retry_after("198.51.100.7") is None  # others are not
    ticks.now = 59.5
    assert throttle.retry_after("203.0.113.5") == 1
    ticks.now = 60.0  # the first failure left the window
    assert throttle.retry_after("203.0.113.5") is None


def test_failures_spread_beyond_the_window_never_hold_an_address_off() -> None:
    ticks = Ticks()
    throttle = FailureThrottle(limit=3, window_s=60, monotonic=ticks)
    for n in range(10):
        ticks.now = n * 31.0
        throttle.failed("203.0.113.5")
        assert throttle.retry_after("203.0.113.5") is None


def test_the_throttle_forgets_the_oldest_addresses_first() -> None:
    throttle = FailureThrottle(limit=1, max_addresses=2, monotonic=Ticks())
    for address in ("a", "b", "c"):
        throttle.failed(address)
    assert [throttle.retry_after(a) is not None for a in ("a", "b", "c")] == [False, True, True]


def test_a_limit_of_zero_turns_the_throttle_off() -> None:
    throttle = FailureThrottle(limit=0)
    for _ in range(1000):
        throttle.failed("a")
    assert throttle.retry_after("a") is None


# --- ListTokens and RevokeToken --------------------------------------------------------------


def test_listing_shows_a_tenants_tokens_oldest_first(
    issue: IssueToken, list_tokens: ListTokens, clock: FixedClock
) -> None:
    first = issue("acme", "first", READ)
    clock.advance(timedelta(seconds=1))
    other = issue("globex", "other", READ)
    clock.advance(timedelta(seconds=1))
    second = issue("acme", "second", READ)
    assert list_tokens("acme") == [first.token, second.token]
    assert list_tokens("globex") == [other.token]
    assert list_tokens("nobody") == []
    assert [t.name for t in list_tokens(None)] == ["first", "other", "second"]


def test_a_revoked_token_is_listed_with_its_revocation_time(
    issue: IssueToken, revoke: RevokeToken, list_tokens: ListTokens, clock: FixedClock
) -> None:
    issued = issue("acme", "ci", READ)
    clock.advance(timedelta(minutes=5))
    revoke("acme", issued.token.id)
    clock.advance(timedelta(minutes=5))
    revoke("acme", issued.token.id)  # again: no change
    [listed] = list_tokens("acme")
    assert listed.revoked_at == NOW + timedelta(minutes=5)


def test_revoke_returns_the_token_as_revoked(issue: IssueToken, revoke: RevokeToken) -> None:
    issued = issue("acme", "ci", READ)
    assert revoke("acme", issued.token.id).revoked_at == NOW


@pytest.mark.parametrize("tenant", ["globex", "ACME", "acm"])
def test_revoking_another_tenants_token_is_not_found_and_changes_nothing(
    issue: IssueToken,
    revoke: RevokeToken,
    authenticate: Authenticate,
    store: InMemoryStore,
    tenant: str,
) -> None:
    issued = issue("acme", "ci", READ)
    with pytest.raises(NotFound):
        revoke(tenant, issued.token.id)
    assert store.tokens[issued.token.id].revoked_at is None
    assert authenticate(issued.secret) is not None


def test_revoking_an_unknown_token_is_not_found(issue: IssueToken, revoke: RevokeToken) -> None:
    issue("acme", "ci", READ)
    with pytest.raises(NotFound):
        revoke("acme", "tok_0000000000000000")
    with pytest.raises(NotFound):
        revoke(None, "tok_0000000000000000")


def test_the_operator_may_revoke_any_tenants_token(
    issue: IssueToken, revoke: RevokeToken, authenticate: Authenticate
) -> None:
    issued = issue("acme", "ci", READ)
    revoke(None, issued.token.id)
    assert authenticate(issued.secret) is None


# --- BootstrapToken --------------------------------------------------------------------------


def test_bootstrap_on_an_empty_store_makes_one_all_scope_default_token(
    bootstrap: BootstrapToken, authenticate: Authenticate, store: InMemoryStore
) -> None:
    issued = bootstrap()
    assert issued is not None
    assert issued.secret.startswith("als_")
    assert list(store.tokens) == [issued.token.id]
    principal = authenticate(issued.secret)
    assert principal is not None
    assert principal.tenant == "default"
    assert principal.scopes == set(Scope)


def test_bootstrap_does_nothing_once_any_token_exists(
    bootstrap: BootstrapToken, store: InMemoryStore
) -> None:
    assert bootstrap() is not None
    assert bootstrap() is None
    assert len(store.tokens) == 1


@pytest.mark.parametrize("revoked", [False, True])
def test_bootstrap_does_nothing_when_another_tenant_has_a_token(
    bootstrap: BootstrapToken,
    issue: IssueToken,
    revoke: RevokeToken,
    store: InMemoryStore,
    revoked: bool,
) -> None:
    issued = issue("acme", "ci", READ)
    if revoked:
        revoke("acme", issued.token.id)
    assert bootstrap() is None
    assert list(store.tokens) == [issued.token.id]


def test_racing_bootstraps_make_one_token(
    clock: FixedClock, uow: InMemoryUnitOfWorkFactory, store: InMemoryStore
) -> None:
    """Servers starting together on one empty store: only one makes a token."""
    start = threading.Barrier(8)
    results: list[object] = []

    def boot() -> None:
        start.wait()
        results.append(BootstrapToken(uow, clock)())

    threads = [threading.Thread(target=boot) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.tokens) == 1
    assert sum(r is not None for r in results) == 1


@pytest.mark.parametrize(
    "name",
    ["evil\ntok_fake  default  events:read  active", "tab\there", "del\x7f", "c1\x85", "ls\u2028"],
)
def test_a_token_name_with_control_characters_or_line_breaks_is_refused(name: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        parse_token_request({"name": name, "scopes": ["events:read"]})
    assert [p.field for p in refused.value.problems] == ["name"]


@pytest.mark.parametrize("name", ["ci-deploy", "Équipe paie", "😀" * 128, "a b", "nb\u00a0sp"])
def test_a_printable_token_name_is_kept(name: str) -> None:
    assert parse_token_request({"name": name, "scopes": ["events:read"]})[0] == name
