"""Reading a tenant's log: one event, a page, an export, a verification of the chain."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import orjson

from audit.application.ports import UnitOfWorkFactory
from audit.domain.chain import ChainHead
from audit.domain.errors import NotFound, StaleCredentials
from audit.domain.events import Event, EventJson
from audit.domain.query import EventFilter, PageRequest, encode_cursor
from audit.verify.events import verify_chain

EXPORT_CHUNK = 1000


@attrs.frozen
class EventPage:
    events: list[Event]
    next_cursor: str | None


@attrs.frozen
class JsonPage:
    """An EventPage as JSON: each event's Event.to_json() text, and the cursor."""

    events: list[bytes]
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
    first page was read exactly once, whatever is written meanwhile. `json` gives the
    same page as JSON text, which is all an HTTP answer needs.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str, where: EventFilter, page: PageRequest) -> EventPage:
        with self._uow() as uow:
            found = uow.events.page(tenant, where, attrs.evolve(page, limit=page.limit + 1))
        if len(found) <= page.limit:
            return EventPage(found, None)
        events = found[: page.limit]
        return EventPage(events, encode_cursor(events[-1].seq, page.order, where))

    def json(
        self, tenant: str, where: EventFilter, page: PageRequest, epoch: int | None = None
    ) -> JsonPage:
        """`epoch`: as EventRecorder's. The page is read first and the epoch after it, in
        the same unit of work (where storage may read both with one statement); the
        page is returned only if the epoch is still that one, else StaleCredentials."""
        with self._uow() as uow:
            found = uow.events.page_json(tenant, where, attrs.evolve(page, limit=page.limit + 1))
            if epoch is not None and uow.tokens.revocation_epoch() != epoch:
                raise StaleCredentials("a token revocation came after the check")
        cursor = None
        if len(found) > page.limit:
            del found[page.limit :]
            cursor = encode_cursor(found[-1].seq, page.order, where)
        return JsonPage([event.json for event in found], cursor)


def _ascending(
    uow_factory: UnitOfWorkFactory, tenant: str, where: EventFilter, last: int | None = None
) -> Iterator[EventJson]:
    """Every matching event up to seq `last` (default: the head now), ascending, as the
    API writes it.

    Reads in chunks, each in its own short transaction, so a long export holds no
    snapshot or lock open.
    """
    if last is None:
        with uow_factory() as uow:
            last = uow.events.head(tenant).seq
    after = 0
    while after < last:
        with uow_factory() as uow:
            chunk = uow.events.page_json(
                tenant,
                where,
                PageRequest(limit=EXPORT_CHUNK, order="asc", after_seq=after, through_seq=last),
            )
        yield from chunk
        if len(chunk) < EXPORT_CHUNK:
            return
        after = chunk[-1].seq


class ExportEvents:
    """Every matching event in ascending seq, as JSON text (EventJson), streamed in
    constant memory: every export format is written from the event's document."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str, where: EventFilter) -> Iterator[EventJson]:
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
    """Recompute a tenant's hash chain from seq 1 and report the first broken link.

    The recomputation is the auditors' own code (audit.verify), run on the events exactly
    as the API returns them.
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str, progress: Callable[[int], None] | None = None) -> ChainReport:
        """`progress`: called with each event's seq as it is checked (a progress bar)."""
        with self._uow() as uow:
            stored_head = uow.events.head(tenant)
        events = _ascending(self._uow, tenant, EventFilter(), stored_head.seq)
        if progress is not None:
            events = _reporting(events, progress)
        unreadable: list[int] = []
        report = verify_chain(_documents(events, unreadable))
        if not report.valid:
            return ChainReport(
                False,
                report.checked,
                first_invalid_seq=report.first_invalid_seq,
                reason=report.reason,
            )
        if unreadable:
            return ChainReport(
                False,
                report.checked,
                first_invalid_seq=unreadable[0],
                reason=f"the stored event of seq {unreadable[0]} cannot be read: its row was "
                "edited outside the service",
            )
        if stored_head.seq > report.checked:
            missing = report.checked + 1
            return ChainReport(
                False,
                report.checked,
                first_invalid_seq=missing,
                reason=f"seq {missing} is missing (the log's head is {stored_head.seq})",
            )
        head = report.head
        return ChainReport(
            True, report.checked, head=ChainHead(head.seq, head.hash) if head else None
        )


def _documents(events: Iterator[EventJson], unreadable: list[int]) -> Iterator[Any]:
    """Each event's document, until one whose stored text is not JSON (its seq is noted
    in `unreadable`): the chain is checked up to there."""
    for event in events:
        try:
            yield orjson.loads(event.json)
        except orjson.JSONDecodeError:
            unreadable.append(event.seq)
            return


def _reporting(events: Iterator[EventJson], progress: Callable[[int], None]) -> Iterator[EventJson]:
    for event in events:
        progress(event.seq)
        yield event


class ListTenants:
    """Every tenant that has a log."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self) -> list[str]:
        with self._uow() as uow:
            return uow.events.tenants()


class LogHead:
    """The last event of a tenant's log, as (seq, hash); seq 0 when empty."""

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def __call__(self, tenant: str) -> ChainHead:
        with self._uow() as uow:
            return uow.events.head(tenant)
