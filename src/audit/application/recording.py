"""RecordEvents: append events to a tenant's log, once each, all or nothing.

GroupCommit lets concurrent callers share one transaction, and so one fsync.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import attrs

from audit.application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from audit.domain import tree
from audit.domain.chain import ChainHead, seal
from audit.domain.errors import (
    AuditError,
    Conflict,
    Problem,
    StaleCredentials,
    StorageUnavailable,
    ValidationFailed,
)
from audit.domain.events import Event, NewEvent
from audit.domain.ids import new_event_id


@attrs.frozen
class Recorded:
    """What became of one event sent: stored now, or a duplicate of one stored before."""

    event: Event
    created: bool


class EventRecorder(Protocol):
    """Records a tenant's events durably; one Recorded per event sent, in order.

    `epoch`: the revocation epoch the caller was authenticated at, when that was not
    checked against storage since; the events are then stored only if the epoch is
    still current in the transaction that would store them, else StaleCredentials.
    """

    def __call__(
        self, tenant: str, events: Sequence[NewEvent], epoch: int | None = None
    ) -> list[Recorded]: ...


@attrs.frozen
class Submission:
    """One request's events, checked on their own and given ids, ready to be appended."""

    tenant: str
    events: Sequence[NewEvent]
    ids: list[str]
    fingerprints: list[str]
    first_of: list[int]  # for each event, the index of the first event with its id
    epoch: int | None = None  # as EventRecorder's

    @property
    def chosen_ids(self) -> list[str]:
        """The ids the client chose: only those can be stored already (one this service
        made now is a fresh UUIDv7, 74 random bits), so a request without ids costs no
        lookup."""
        return [new.id for new in self.events if new.id is not None]


Outcome = list[Recorded] | AuditError

# Tenants whose frontier a recorder keeps (all are forgotten when there would be more).
_FRONTIERS_KEPT = 10_000


class RecordEvents:
    """Append validated events to a tenant's log in one transaction.

    Events whose id is already stored with the same content are duplicates and are not
    stored again; an id stored with other content fails the whole request with Conflict.
    Returns one Recorded per event sent, in order, once the transaction is durable.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock
        # Each tenant's Merkle frontier as this recorder's last commit left it, with the
        # head it left: while the locked head is still that one, nobody else appended,
        # and the append need not read the frontier back (a tenth of a one-event group).
        self._frontiers: dict[str, tuple[ChainHead, dict[tree.Coord, bytes]]] = {}

    def __call__(
        self, tenant: str, events: Sequence[NewEvent], epoch: int | None = None
    ) -> list[Recorded]:
        [outcome] = self.commit_group([self.submit(tenant, events, epoch)])
        if isinstance(outcome, AuditError):
            raise outcome
        return outcome

    def submit(
        self, tenant: str, events: Sequence[NewEvent], epoch: int | None = None
    ) -> Submission:
        """Check a request on its own; ValidationFailed when it repeats an id with new content."""
        ids = [e.id if e.id is not None else new_event_id() for e in events]
        fingerprints = [e.fingerprint() for e in events]
        first_of = _first_occurrences(ids, fingerprints)
        return Submission(tenant, events, ids, fingerprints, first_of, epoch)

    def commit_group(self, group: Sequence[Submission]) -> list[Outcome]:
        """Append several requests in ONE transaction, each all or nothing on its own.

        A request that conflicts with what is stored (or with an earlier request of the
        group) gets its Conflict and stores nothing; the others go on, as they do past a
        request whose epoch is not the one this transaction reads (StaleCredentials: its
        caller's token may have been revoked since it was checked). A storage failure
        raises, and then nothing of the group is stored.
        """
        tenants = sorted({s.tenant for s in group})
        with self._uow(write=True) as uow:
            # Lock first, in one order (no deadlock between groups): a concurrent request
            # with the same id then waits and sees ours.
            start = {t: uow.events.lock_head(t) for t in tenants}
            known = {
                t: uow.events.existing(t, {i for s in group if s.tenant == t for i in s.chosen_ids})
                for t in tenants
            }
            # Read after the request arrived, so it sees every revocation acknowledged
            # before then (a revoked token's next request is refused, on any server).
            epoch = None if all(s.epoch is None for s in group) else uow.tokens.revocation_epoch()
            received_at = self._clock.now()
            heads = dict(start)
            appended: dict[str, list[tuple[Event, str]]] = {t: [] for t in tenants}
            outcomes: list[Outcome] = []
            for submission in group:
                if submission.epoch is not None and submission.epoch != epoch:
                    outcomes.append(StaleCredentials("a token revocation came after the check"))
                    continue
                outcome = self._place(submission, heads, known[submission.tenant], received_at)
                if isinstance(outcome, AuditError):
                    outcomes.append(outcome)
                    continue
                recorded, fresh = outcome
                appended[submission.tenant].extend(fresh)
                outcomes.append(recorded)
            frontiers = {
                tenant: self._append(uow, tenant, start[tenant], fresh_events)
                for tenant, fresh_events in appended.items()
                if fresh_events
            }
            if frontiers:
                uow.commit()
                if len(self._frontiers) + len(frontiers) > _FRONTIERS_KEPT:
                    self._frontiers.clear()
                self._frontiers.update(frontiers)
        return outcomes

    @staticmethod
    def _place(
        submission: Submission,
        heads: dict[str, ChainHead],
        known: dict[str, tuple[Event, str]],
        received_at: datetime,
    ) -> tuple[list[Recorded], list[tuple[Event, str]]] | AuditError:
        ids, fingerprints = submission.ids, submission.fingerprints
        for event_id, fingerprint in zip(ids, fingerprints, strict=True):
            if event_id in known and known[event_id][1] != fingerprint:
                return Conflict(f"event {event_id!r} is already stored with other content")
        fresh = [i for i in range(len(ids)) if submission.first_of[i] == i and ids[i] not in known]
        head = heads[submission.tenant]
        sealed = seal(
            head, submission.tenant, received_at, ((ids[i], submission.events[i]) for i in fresh)
        )
        created = {e.id: e for e in sealed}
        recorded = [
            Recorded(created[event_id], submission.first_of[i] == i)
            if event_id in created
            else Recorded(known[event_id][0], created=False)
            for i, event_id in enumerate(ids)
        ]
        pairs = [(event, fingerprints[i]) for event, i in zip(sealed, fresh, strict=True)]
        # Later requests of the group see these as stored: a retry among them is a duplicate.
        known.update((event.id, pair) for event, pair in zip(sealed, pairs, strict=True))
        if sealed:
            heads[submission.tenant] = ChainHead(sealed[-1].seq, sealed[-1].hash)
        return recorded, pairs

    def _append(
        self, uow: UnitOfWork, tenant: str, head: ChainHead, fresh: list[tuple[Event, str]]
    ) -> tuple[ChainHead, dict[tree.Coord, bytes]]:
        """Store the events and their subtrees; returns the head and frontier they make."""
        events = uow.events
        known = self._frontiers.get(tenant)
        if known is not None and known[0] == head:
            frontier = known[1]
        else:
            frontier = events.subtree_hashes(tenant, tree.stored_frontier(head.seq))
        subtrees = tree.grow(head.seq, head.hash, frontier, (e.hash for e, _ in fresh))
        events.add(tenant, [e for e, _ in fresh], [fp for _, fp in fresh], subtrees)
        last = fresh[-1][0]
        # Each subtree of the new frontier was in the old one or was just completed.
        hashes = {**frontier, **{(level, index): h for level, index, h in subtrees}}
        return ChainHead(last.seq, last.hash), {
            c: hashes[c] for c in tree.stored_frontier(last.seq)
        }


def _first_occurrences(ids: Sequence[str], fingerprints: Sequence[str]) -> list[int]:
    """For each event, the index of the first event of the batch with its id.

    Two events of one batch with one id and different content are invalid.
    """
    first: dict[str, int] = {}
    result = []
    problems = []
    for index, (event_id, fingerprint) in enumerate(zip(ids, fingerprints, strict=True)):
        earlier = first.setdefault(event_id, index)
        if fingerprints[earlier] != fingerprint:
            problems.append(
                Problem(
                    field="id",
                    message=f"repeats the id of event {earlier} with different content",
                    index=index,
                )
            )
        result.append(earlier)
    if problems:
        raise ValidationFailed(problems, "the batch repeats an id with different content")
    return result


class _Waiting:
    __slots__ = ("outcome", "submission")

    def __init__(self, submission: Submission) -> None:
        self.submission = submission
        self.outcome: Outcome | BaseException | None = None


class GroupCommit:
    """Concurrent callers in one process share one transaction and one fsync.

    Group commit as databases do it, with no thread of its own: the first caller to find
    no commit under way leads, appending every request waiting at that moment (up to
    `max_events`) in one transaction; the others wait for it. While a commit is on disk
    new requests gather, so the busier the service the larger each group, and a lone
    request waits for nothing. Each caller returns only once its own events are durable.
    """

    def __init__(self, record: RecordEvents, max_events: int = 5000) -> None:
        self._record = record
        self._max_events = max_events
        self._changed = threading.Condition()
        self._queue: list[_Waiting] = []
        self._leading = False

    def __call__(
        self, tenant: str, events: Sequence[NewEvent], epoch: int | None = None
    ) -> list[Recorded]:
        waiting = _Waiting(self._record.submit(tenant, events, epoch))
        with self._changed:
            self._queue.append(waiting)
            while waiting.outcome is None:
                if self._leading:
                    self._changed.wait()
                else:
                    self._lead()
        outcome = waiting.outcome
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def _lead(self) -> None:
        """Commit the requests at the head of the queue; called and returns holding the lock."""
        group: list[_Waiting] = []
        size = 0
        while self._queue and (
            not group or size + len(self._queue[0].submission.events) <= self._max_events
        ):
            item = self._queue.pop(0)
            group.append(item)
            size += len(item.submission.events)
        self._leading = True
        self._changed.release()
        try:
            outcomes: Sequence[Outcome | BaseException] = self._record.commit_group(
                [w.submission for w in group]
            )
        except BaseException as exc:  # every waiter must learn of it
            outcomes = [exc] * len(group)
        finally:
            self._changed.acquire()
            self._leading = False
        for item, outcome in zip(group, outcomes, strict=True):
            item.outcome = outcome
        refused = next((o for o in outcomes if isinstance(o, StorageUnavailable)), None)
        if refused is not None:
            # Storage just refused a group (after waiting out its lock timeout, say): the
            # requests that queued meanwhile get that answer now, rather than each waiting
            # out the timeout again behind it. Nothing of theirs was written.
            for item in self._queue:
                item.outcome = refused
            self._queue.clear()
        self._changed.notify_all()
