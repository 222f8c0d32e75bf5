"""RecordEvents: append events to a tenant's log, once each, all or nothing."""

from __future__ import annotations

from collections.abc import Sequence

import attrs

from audit.application.ports import Clock, UnitOfWorkFactory
from audit.domain.chain import seal
from audit.domain.errors import Conflict, Problem, ValidationFailed
from audit.domain.events import Event, NewEvent, UnsealedEvent
from audit.domain.ids import new_event_id
from audit.domain.tree import grow, stored_frontier


@attrs.frozen
class Recorded:
    """What became of one event sent: stored now, or a duplicate of one stored before."""

    event: Event
    created: bool


class RecordEvents:
    """Append a batch of validated events to a tenant's log in one transaction.

    Events whose id is already stored with the same content are duplicates and are not
    stored again; an id stored with other content fails the whole batch with Conflict.
    Returns one Recorded per event sent, in order, once the transaction is durable.
    """

    def __init__(self, uow: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow = uow
        self._clock = clock

    def __call__(self, tenant: str, events: Sequence[NewEvent]) -> list[Recorded]:
        ids = [e.id if e.id is not None else new_event_id() for e in events]
        fingerprints = [e.fingerprint() for e in events]
        first_of = _first_occurrences(ids, fingerprints)
        with self._uow(write=True) as uow:
            # Lock first: a concurrent request with the same id then waits and sees ours.
            head = uow.events.lock_head(tenant)
            stored = uow.events.existing(tenant, set(ids))
            for event_id, fingerprint in zip(ids, fingerprints, strict=True):
                if event_id in stored and stored[event_id][1] != fingerprint:
                    raise Conflict(f"event {event_id!r} is already stored with other content")
            fresh = [i for i in range(len(events)) if first_of[i] == i and ids[i] not in stored]
            received_at = self._clock.now()
            sealed = seal(
                head,
                (
                    UnsealedEvent.place(
                        events[i],
                        event_id=ids[i],
                        seq=head.seq + n,
                        tenant=tenant,
                        received_at=received_at,
                    )
                    for n, i in enumerate(fresh, start=1)
                ),
            )
            if sealed:
                frontier = uow.events.subtree_hashes(tenant, stored_frontier(head.seq))
                subtrees = grow(head.seq, head.hash, frontier, (e.hash for e in sealed))
                uow.events.add(tenant, sealed, [fingerprints[i] for i in fresh], subtrees)
                uow.commit()
        by_id = {e.id: e for e in sealed}
        results = []
        for i, event_id in enumerate(ids):
            if event_id in stored:
                results.append(Recorded(stored[event_id][0], created=False))
            else:
                results.append(Recorded(by_id[event_id], created=first_of[i] == i))
        return results


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
