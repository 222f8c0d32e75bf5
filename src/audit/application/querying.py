"""Reading a tenant's log: one event, a page, an export, a verification of the chain."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from audit.application.ports import UnitOfWorkFactory
from audit.domain.chain import GENESIS_HASH, ChainHead, chain_hash
from audit.domain.errors import NotFound
from audit.domain.events import Event
from audit.domain.query import EventFilter, PageRequest, encode_cursor

EXPORT_CHUNK = 1000


@attrs.frozen
class EventPage:
    events: list[Event]
    next_cursor: str | None


class GetEvent:
    """One event of the tenant by id, or NotFound (another tenant's looks the same)."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str, event_id: str) -> Event:
        with self._uow() as uow:
            event = uow.events.get(tenant, event_id)
        if event is None:
            raise NotFound(f"no event {event_id!r}")
        return event


class QueryEvents:
    """A page of the tenant's events matching a filter, with a cursor to the next page.

    Keyset paging on seq: following cursors yields every event that matched when the
    first page was read exactly once, whatever is written meanwhile.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str, where: EventFilter, page: PageRequest) -> EventPage:
        with self._uow() as uow:
            found = uow.events.page(tenant, where, attrs.evolve(page, limit=page.limit + 1))
        if len(found) <= page.limit:
            return EventPage(found, None)
        events = found[: page.limit]
        return EventPage(events, encode_cursor(events[-1].seq, page.order))


def _ascending(
    uow_factory: UnitOfWorkFactory, tenant: str, where: EventFilter, last: int | None = None
) -> Iterator[Event]:
    """Every matching event up to seq `last` (default: the head now), ascending.

    Reads in chunks, each in its own short transaction, so a long export holds no
    snapshot or lock open.
    """
    if last is None:
        with uow_factory() as uow:
            last = uow.events.head(tenant).seq
    after = 0
    while after < last:
        with uow_factory() as uow:
            chunk = uow.events.page(
                tenant,
                where,
                PageRequest(limit=EXPORT_CHUNK, order="asc", after_seq=after, through_seq=last),
            )
        yield from chunk
        if len(chunk) < EXPORT_CHUNK:
            return
        after = chunk[-1].seq


class ExportEvents:
    """Every matching event in ascending seq, streamed in constant memory."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str, where: EventFilter) -> Iterator[Event]:
        return _ascending(self._uow, tenant, where)


@attrs.frozen
class ChainReport:
    """The outcome of recomputing a chain: valid with its head, or the first broken seq."""

    valid: bool
    checked: int
    head: ChainHead | None = None
    first_invalid_seq: int | None = None
    reason: str | None = None


class VerifyChain:
    """Recompute a tenant's hash chain from seq 1 and report the first broken link."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str) -> ChainReport:
        with self._uow() as uow:
            stored_head = uow.events.head(tenant)
        prev = ChainHead()
        checked = 0
        for event in _ascending(self._uow, tenant, EventFilter(), stored_head.seq):
            expected_seq = prev.seq + 1
            if event.seq != expected_seq:
                return ChainReport(
                    False,
                    checked,
                    first_invalid_seq=expected_seq,
                    reason=f"seq {expected_seq} is missing (next stored is {event.seq})",
                )
            if event.prev_hash != prev.hash:
                return ChainReport(
                    False,
                    checked,
                    first_invalid_seq=event.seq,
                    reason="prev_hash does not match the previous event's hash",
                )
            if chain_hash(prev.hash, event) != event.hash:
                return ChainReport(
                    False,
                    checked,
                    first_invalid_seq=event.seq,
                    reason="hash does not match the event's content",
                )
            checked += 1
            prev = ChainHead(event.seq, event.hash)
        if stored_head.seq > prev.seq:
            return ChainReport(
                False,
                checked,
                first_invalid_seq=prev.seq + 1,
                reason=f"seq {prev.seq + 1} is missing (the log's head is {stored_head.seq})",
            )
        return ChainReport(True, checked, head=prev if prev.hash != GENESIS_HASH else None)
