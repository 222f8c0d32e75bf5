"""Authentication on the hot path: who is calling, with no token lookup per request.

Three parts, each per process: `Authenticate` keeps the principals it has found,
`TokenUses` records when tokens were last used off the request path, and `FailureThrottle`
holds off a client address that keeps failing to authenticate. What `Authenticate`
accepted is also noted where every process of the server can see it (KnownTokens), so
that a held-off address keeps the use of its valid tokens on every worker.
"""

from __future__ import annotations

import atexit
import logging
import math
import os
import threading
import time
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable
from datetime import datetime, timedelta

import attrs

from audit.application.ports import Clock, KnownTokens, RevocationEpoch, UnitOfWorkFactory
from audit.domain.tokens import TOKEN_PREFIX, Principal, Token, hash_secret

logger = logging.getLogger(__name__)

CACHE_TTL_S = 30.0
CACHE_MAX_ENTRIES = 10_000
# Recording every use would turn each read into a write; a minute's precision is enough.
LAST_USED_PRECISION = timedelta(seconds=60)
# How long a token accepted counts as known to every process (KnownTokens). A token in
# use is noted again at each reload (CACHE_TTL_S), so this is the time since its last use.
KNOWN_FOR = timedelta(hours=1)


@attrs.frozen
class _Known:
    principal: Principal
    expires_at: datetime | None
    epoch: int  # read before the token was
    loaded_at: float  # time.monotonic()


class Authenticate:
    """The Principal behind a bearer secret, or None when it is unknown, expired or revoked.

    Each process keeps the principals it found, by the hash of their secret. A kept one
    answers only while its token has not expired (checked on every call), it was loaded
    less than `ttl_s` ago (a backstop), and the revocation epoch is still the one read
    before it was loaded. The epoch is asked on every call of the storage every process
    and server shares (RevocationEpoch), and every revocation advances it in its own
    transaction: so a request that begins after a revocation was acknowledged is refused,
    in any worker of any server. Which token was revoked does not matter; the next call
    of each reloads. `kept()` answers without asking the epoch, for an operation that
    asks it itself, in the transaction that would do the work (ingest, in the writer's
    group: one read a group instead of one a request).

    Secrets without the token prefix, and unknown ones, are never kept: each costs a
    lookup (and the edge throttles a client address that sends many).

    `shared`: where a token found valid is also noted (at each load, not each call), for
    `knows()` in every process of the server; None: each process knows its own.
    """

    def __init__(
        self,
        uow: UnitOfWorkFactory,
        clock: Clock,
        epoch: RevocationEpoch,
        uses: TokenUses | None = None,
        shared: KnownTokens | None = None,
        ttl_s: float = CACHE_TTL_S,
        max_entries: int = CACHE_MAX_ENTRIES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow = uow
        self._clock = clock
        self._epoch = epoch
        self._uses = uses
        self._shared = shared
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._known: dict[str, _Known] = {}
        self._lock = threading.Lock()

    def __call__(self, secret: str) -> Principal | None:
        if not secret.startswith(TOKEN_PREFIX):
            return None
        secret_hash = hash_secret(secret)
        epoch = self._epoch.current()
        now = self._clock.now()
        known = self._known.get(secret_hash)
        if (
            known is None
            or known.epoch != epoch
            or self._monotonic() - known.loaded_at >= self._ttl_s
        ):
            known = self._load(secret, secret_hash, epoch)
            if known is None:
                return None
        if known.expires_at is not None and now >= known.expires_at:
            return None
        if self._uses is not None:
            self._uses(known.principal.token_id, now)
        return known.principal

    def kept(self, secret: str) -> tuple[Principal, int] | None:
        """The principal this process keeps for `secret` and the epoch it was loaded at,
        asking no storage; None when none is kept, or it is past its TTL or expired.

        Only for an operation that checks the epoch itself, in its own transaction, before
        it does anything (EventRecorder's `epoch`): that check is what keeps revocation
        immediate. Any other caller must call the instance."""
        known = self._known.get(hash_secret(secret))
        if known is None or self._monotonic() - known.loaded_at >= self._ttl_s:
            return None
        now = self._clock.now()
        if known.expires_at is not None and now >= known.expires_at:
            return None
        if self._uses is not None:
            self._uses(known.principal.token_id, now)
        return known.principal, known.epoch

    def knows(self, secret: str) -> bool:
        """Whether `secret` was found valid by this process and has not expired since, or
        by any process of the server within KNOWN_FOR (`shared`), asking no storage. Not a
        decision (a call still checks hash, expiry and epoch): it tells a client in use
        from a stranger, so holding off an address spares its known tokens."""
        secret_hash = hash_secret(secret)
        now = self._clock.now()
        known = self._known.get(secret_hash)
        if known is not None:
            return known.expires_at is None or now < known.expires_at
        return self._shared is not None and self._shared.knows(secret_hash, now)

    def _load(self, secret: str, secret_hash: str, epoch: int) -> _Known | None:
        with self._uow() as uow:
            token = uow.tokens.by_secret_hash(secret_hash)
        with self._lock:
            self._known.pop(secret_hash, None)
            if token is None or not token.matches(secret) or not token.usable_at(self._clock.now()):
                return None
            if len(self._known) >= self._max_entries:
                del self._known[next(iter(self._known))]  # the oldest loaded
            known = _Known(_principal(token), token.expires_at, epoch, self._monotonic())
            self._known[secret_hash] = known
        if self._shared is not None:
            until = self._clock.now() + KNOWN_FOR
            if token.expires_at is not None:
                until = min(until, token.expires_at)
            self._shared.note(secret_hash, until)
        return known


def _principal(token: Token) -> Principal:
    return Principal(
        token_id=token.id,
        tenant=token.tenant,
        scopes=token.scopes,
        name=token.name,
        expires_at=token.expires_at,
    )


class TokenUses:
    """When each token was last used, written in batches by a thread of its own.

    A request only notes the time in memory; every `interval_s` (and when the process
    exits) the thread writes the uses noted since, one write transaction for all. So no
    request waits for, or fails with, that write, and each token is written at most once
    an interval by each process. A write that fails (storage busy or full) is logged and
    its uses kept for the next one; the worst loss is an interval's uses of a killed
    process.
    """

    def __init__(
        self, uow: UnitOfWorkFactory, interval_s: float | None = None, background: bool = True
    ) -> None:
        """`background=False`: no thread; uses are written only by `flush()`."""
        self._uow = uow
        self._background = background
        self._interval_s = LAST_USED_PRECISION.total_seconds() if interval_s is None else interval_s
        self._pending: dict[str, datetime] = {}
        self._lock = threading.Lock()
        self._owner: int | None = None  # the process whose thread writes

    def __call__(self, token_id: str, at: datetime) -> None:
        self._pending[token_id] = at  # one dict store: no lock on the request path
        if self._owner != os.getpid() and self._background:
            self._start()

    def last_used(self, token: Token) -> Token:
        """`token` with the later of its stored last use and one noted here, not yet written."""
        noted = self._pending.get(token.id)
        if noted is None or (token.last_used_at is not None and token.last_used_at >= noted):
            return token
        return attrs.evolve(token, last_used_at=noted)

    def flush(self) -> None:
        """Write the uses noted so far (kept for the next try if the write fails)."""
        with self._lock:
            batch, self._pending = self._pending, {}
            if not batch:
                return
            try:
                with self._uow(write=True) as uow:
                    uow.tokens.touch(batch)
                    uow.commit()
            except Exception as exc:
                logger.warning("could not record when %d tokens were used: %s", len(batch), exc)
                for token_id, at in batch.items():
                    later = self._pending.get(token_id)
                    if later is None or later < at:
                        self._pending[token_id] = at

    def _start(self) -> None:
        with self._lock:
            if self._owner == os.getpid():
                return
            self._owner = os.getpid()  # a forked child's thread is not its parent's
        _live.add(self)
        # The thread holds the recorder weakly: once nothing else does, the thread ends.
        thread = threading.Thread(
            target=_write_uses, args=(weakref.ref(self), self._interval_s), daemon=True
        )
        thread.name = "audit-token-uses"
        thread.start()


_live: weakref.WeakSet[TokenUses] = weakref.WeakSet()


def _write_uses(ref: weakref.ref[TokenUses], interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        uses = ref()
        if uses is None:
            return
        uses.flush()
        del uses


@atexit.register
def _write_uses_at_exit() -> None:
    for uses in list(_live):
        uses.flush()


class FailureThrottle:
    """Client addresses with `limit` failed authentications within `window_s` seconds.

    Kept in this process only: with several worker processes an address is held off once
    it failed `limit` times in one of them (at most workers x limit failures in all).
    Bounded memory: the addresses seen longest ago are forgotten first.
    """

    def __init__(
        self,
        limit: int,
        window_s: float = 60.0,
        max_addresses: int = 10_000,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit = limit
        self._window_s = window_s
        self._max_addresses = max_addresses
        self._monotonic = monotonic
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def failed(self, address: str) -> None:
        """Note one failed authentication from `address`."""
        if self._limit <= 0:
            return
        with self._lock:
            times = self._failures.pop(address, None)
            if times is None:
                times = deque(maxlen=self._limit)
                if len(self._failures) >= self._max_addresses:
                    self._failures.popitem(last=False)
            times.append(self._monotonic())
            self._failures[address] = times

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None when it is not held off."""
        times = self._failures.get(address)
        if times is None or len(times) < self._limit:
            return None
        wait = times[0] + self._window_s - self._monotonic()
        return math.ceil(wait) if wait > 0 else None
