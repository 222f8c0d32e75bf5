"""An audit log in memory, for the test suites of services that report to the service.

    from audit.testing import InMemoryAuditLog

    log = InMemoryAuditLog()
    log.record("acme", {"action": "user.login", "actor": {"id": "u-1"}})
    assert [e["action"] for e in log.events("acme", actor_id="u-1")] == ["user.login"]
    assert log.verify("acme").valid

It runs the service's own use cases (validation, idempotency, the hash chain, the
filters of `GET /v1/events`) over the in-memory adapter: no server, database or web
framework. Events come back as the API returns them (dicts). `log.client(tenant)` is a
stand-in for `audit.client.AuditClient` that stores at once, so code written against the
client can be tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self

import orjson

from audit.adapters.clock import SystemClock
from audit.adapters.memory import InMemoryUnitOfWorkFactory
from audit.application.ports import Clock
from audit.application.querying import ChainReport, ExportEvents, GetEvent, VerifyChain
from audit.application.recording import RecordEvents
from audit.client.errors import AuditError as ClientAuditError
from audit.client.sending import ErrorHandler
from audit.domain import errors
from audit.domain.ids import new_event_id
from audit.domain.query import parse_filter
from audit.domain.validation import decode_json, parse_batch, parse_event

__all__ = ["ChainReport", "InMemoryAuditClient", "InMemoryAuditLog"]

FilterValue = str | datetime


class InMemoryAuditLog:
    """Every tenant's log in memory, through the service's own use cases; thread-safe.

    record() and record_many() raise what the service would refuse with:
    `audit.domain.errors.ValidationFailed` (a 422, its `problems` naming each field),
    `Conflict` (a 409: an id already stored with other content), `MalformedJson` (a value
    JSON cannot hold). Pass `clock` (e.g. `audit.adapters.clock.FixedClock`) to control
    `received_at` and the default `occurred_at`.
    """

    def __init__(self, clock: Clock | None = None) -> None:
        self._uow = InMemoryUnitOfWorkFactory()
        self._record = RecordEvents(self._uow, clock or SystemClock())

    def record(self, tenant: str, event: Mapping[str, Any]) -> dict[str, Any]:
        """Store one event as `POST /v1/events` would; returns it as stored (a duplicate
        returns the event stored before)."""
        [recorded] = self._record(tenant, [parse_event(_as_json(event))])
        return _document(recorded.event.to_json())

    def record_many(self, tenant: str, events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Store a batch all or nothing, as `POST /v1/events` with `{"events": [...]}`."""
        parsed = parse_batch([_as_json(event) for event in events])
        return [_document(r.event.to_json()) for r in self._record(tenant, parsed)]

    def events(
        self, tenant: str, *, order: str = "asc", **filters: FilterValue
    ) -> list[dict[str, Any]]:
        """The tenant's events matching the filters of `GET /v1/events` (`actor_id`,
        `target_id`, `action` or `prefix.*`, `outcome`, `since`, `until`, `q`), oldest
        first (`order="desc"`: newest first). An unknown filter raises InvalidParameter."""
        if order not in ("asc", "desc"):
            raise errors.InvalidParameter("order must be one of asc, desc")
        where = parse_filter(
            {k: v.isoformat() if isinstance(v, datetime) else v for k, v in filters.items()}
        )
        found = [_document(e.json) for e in ExportEvents(self._uow)(tenant, where)]
        return found if order == "asc" else found[::-1]

    def get(self, tenant: str, event_id: str) -> dict[str, Any]:
        """One event by id; NotFound if the tenant has none with that id."""
        return _document(GetEvent(self._uow)(tenant, event_id).to_json())

    def verify(self, tenant: str) -> ChainReport:
        """Recompute the tenant's hash chain, as `GET /v1/verify` does."""
        return VerifyChain(self._uow)(tenant)

    def tenants(self) -> list[str]:
        """Every tenant with at least one event."""
        with self._uow() as uow:
            return uow.events.tenants()

    def client(self, tenant: str, on_error: ErrorHandler | None = None) -> InMemoryAuditClient:
        """A stand-in for AuditClient that writes into this log, as `tenant`."""
        return InMemoryAuditClient(self, tenant, on_error)


class InMemoryAuditClient:
    """What AuditClient does, stored at once into an InMemoryAuditLog.

    record() returns the id (a UUIDv7 when the event has none). An event the service
    would refuse goes to `on_error(events, error)` with the `audit.client.AuditError` the
    real client would hand over; without on_error it is raised, so a test sees it.
    """

    def __init__(
        self, log: InMemoryAuditLog, tenant: str, on_error: ErrorHandler | None = None
    ) -> None:
        self.log = log
        self.tenant = tenant
        self._on_error = on_error

    def record(self, event: Mapping[str, Any]) -> str:
        if event.get("id") is None:
            event = {**event, "id": new_event_id()}
        try:
            self.log.record(self.tenant, event)
        except errors.AuditError as exc:
            refused = _client_error(exc)
            if self._on_error is None:
                raise refused from exc
            self._on_error([dict(event)], refused)
        return str(event["id"])

    def send(self, event: Mapping[str, Any]) -> dict[str, Any]:
        try:
            return self.log.record(self.tenant, event)
        except errors.AuditError as exc:
            raise _client_error(exc) from exc

    def flush(self, timeout: float | None = None) -> bool:
        return True  # everything recorded is stored already

    def events(self, *, page_size: int = 1000, **filters: FilterValue) -> Iterator[dict[str, Any]]:
        order = str(filters.pop("order", "desc"))  # the service's default, as for AuditClient
        try:
            found = self.log.events(self.tenant, order=order, **filters)
        except errors.AuditError as exc:
            raise _client_error(exc) from exc
        yield from found

    def close(self, timeout: float | None = None) -> None:
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


_STATUS = {
    "malformed_json": 400,
    "invalid_parameter": 400,
    "not_found": 404,
    "conflict": 409,
    "payload_too_large": 413,
    "validation_error": 422,
}


def _client_error(exc: errors.AuditError) -> ClientAuditError:
    """The domain's error as the client would receive it over HTTP."""
    problems = exc.problems if isinstance(exc, errors.ValidationFailed) else []
    details = [
        {
            "field": p.field,
            "message": p.message,
            **({"index": p.index} if p.index is not None else {}),
        }
        for p in problems
    ]
    return ClientAuditError(_STATUS.get(exc.code), exc.code, exc.message, details)


def _as_json(event: Mapping[str, Any]) -> Any:
    """The event as the service would receive it: through JSON, and read as strictly."""
    try:
        data = orjson.dumps(event)
    except TypeError as exc:
        raise errors.MalformedJson(f"the event is not JSON: {exc}") from None
    return decode_json(data)


def _document(data: bytes) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads(data)
    return document
