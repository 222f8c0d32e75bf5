"""Viewer sessions: started at sign-in, ended by signing out, for every server at once.

A session lives in the viewer's cookie, and a copy of a cookie can be presented again
after its browser signed out. So each session carries a random id and the time it ends
anyway; signing out records the id as ended in the storage that every worker and server
shares, and every page asks whether it was: one read, never a write.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

import attrs

from audit.application.ports import Clock, UnitOfWorkFactory

SESSION_LIFETIME = timedelta(hours=8)
_ID_BYTES = 16  # 128 random bits


@attrs.frozen
class Session:
    """A viewer session: its random id, and when it ends whatever happens."""

    id: str
    expires_at: datetime


class StartSession:
    """A new session, ending `lifetime` from now."""

    def __init__(self, clock: Clock, lifetime: timedelta = SESSION_LIFETIME) -> None:
        self._clock = clock
        self._lifetime = lifetime

    def __call__(self) -> Session:
        return Session(secrets.token_urlsafe(_ID_BYTES), self._clock.now() + self._lifetime)


class SessionHolds:
    """Whether a session may still be used: not past its end, and not signed out.

    Reads only (a reading unit of work, one lookup by the session's id), so pages keep
    answering while storage cannot take writes."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, session: Session) -> bool:
        if self._clock.now() >= session.expires_at:
            return False
        with self._uow() as uow:
            return not uow.ended_sessions.is_ended(session.id)


class EndSession:
    """Sign a session out: its id is recorded as ended until it would have expired, and
    the ended sessions already past that are forgotten, in one transaction.

    The only write of the viewer. StorageUnavailable when storage cannot take it: then
    nothing was recorded and the session still holds."""

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, session: Session) -> None:
        now = self._clock.now()
        if now >= session.expires_at:
            return  # over already: nothing to record
        with self._uow(write=True) as uow:
            uow.ended_sessions.end(session.id, session.expires_at)
            uow.ended_sessions.purge(now)
            uow.commit()
