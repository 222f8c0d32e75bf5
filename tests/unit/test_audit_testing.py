"""audit.testing: the in-memory log other projects' test suites use."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from audit.adapters.clock import FixedClock
from audit.client import AuditError
from audit.domain.errors import (
    Conflict,
    InvalidParameter,
    MalformedJson,
    NotFound,
    ValidationFailed,
)
from audit.testing import InMemoryAuditLog
from audit.verify.events import verify_chain

START = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "action": "document.update",
        "actor": {"id": f"u-{n % 3}", "name": "Alice"},
        "targets": [{"id": f"doc-{n}"}],
        "metadata": {"n": n},
        **extra,
    }


def test_recorded_events_come_back_as_the_api_returns_them_in_a_valid_chain() -> None:
    log = InMemoryAuditLog(FixedClock(START))
    first = log.record("acme", event(1, id="e-1"))
    log.record_many("acme", [event(2), event(3, outcome="failure")])
    stored = log.events("acme")
    assert [e["seq"] for e in stored] == [1, 2, 3]
    assert stored[0] == first
    assert first["tenant"] == "acme"
    assert first["received_at"] == "2026-11-28T10:00:00.000000Z"
    assert first["source"] == {"ip": None, "user_agent": None}
    assert first["targets"] == [{"id": "doc-1", "type": None, "name": None}]
    assert verify_chain(stored).valid  # the auditors' own check agrees
    report = log.verify("acme")
    assert report.valid
    assert report.checked == 3
    assert log.get("acme", "e-1") == first
    assert log.tenants() == ["acme"]


def test_filters_are_those_of_the_http_api() -> None:
    log = InMemoryAuditLog(FixedClock(START))
    log.record("acme", event(0, action="user.login", occurred_at="2026-11-01T00:00:00Z"))
    log.record("acme", event(1, action="user.logout", description="Ticket OPS-7"))
    log.record("acme", event(2, action="document.read"))
    log.record("other", event(3, action="user.login"))

    def actions(**filters: Any) -> list[str]:
        return [e["action"] for e in log.events("acme", **filters)]

    assert actions(action="user.*") == ["user.login", "user.logout"]
    assert actions(actor_id="u-1") == ["user.logout"]
    assert actions(target_id="doc-2") == ["document.read"]
    assert actions(q="ops-7") == ["user.logout"]
    assert actions(since=datetime(2026, 11, 2, tzinfo=UTC)) == ["user.logout", "document.read"]
    assert actions(order="desc") == ["document.read", "user.logout", "user.login"]
    with pytest.raises(InvalidParameter):
        log.events("acme", actor="u-1")  # a typo never returns unfiltered results


def test_the_service_refusals_are_raised() -> None:
    log = InMemoryAuditLog()
    kept = log.record("acme", event(1, id="same"))
    assert log.record("acme", event(1, id="same")) == kept  # a retry is a duplicate
    with pytest.raises(Conflict):
        log.record("acme", event(2, id="same"))
    with pytest.raises(ValidationFailed) as invalid:
        log.record("acme", event(3, colour="blue"))
    assert [p.field for p in invalid.value.problems] == ["colour"]
    with pytest.raises(ValidationFailed) as batch:
        log.record_many("acme", [event(4), event(5, action="no spaces allowed")])
    assert [(p.index, p.field) for p in batch.value.problems] == [(1, "action")]
    with pytest.raises(MalformedJson):
        log.record("acme", event(6, metadata={"x": object()}))
    with pytest.raises(NotFound):
        log.get("other", "same")  # another tenant's event looks absent
    assert [e["id"] for e in log.events("acme")] == ["same"]  # the refused batch stored nothing


def test_verify_finds_an_altered_event() -> None:
    log = InMemoryAuditLog()
    log.record_many("acme", [event(n) for n in range(3)])
    store = log._uow.store
    second = store.logs["acme"][1]
    store.logs["acme"][1] = attrs.evolve(second, description="rewritten")
    report = log.verify("acme")
    assert not report.valid
    assert report.first_invalid_seq == 2


def test_the_stand_in_client_records_and_refuses_as_audit_client_does() -> None:
    log = InMemoryAuditLog()
    refused: list[tuple[list[dict[str, Any]], AuditError]] = []
    with log.client("acme", on_error=lambda events, err: refused.append((events, err))) as client:
        event_id = client.record(event(1))
        client.record(event(2, action="not valid"))
        assert client.flush()
        assert client.send(event(3, id="e-3"))["seq"] == 2
        found = [e["id"] for e in client.events(order="asc")]
    assert uuid.UUID(event_id).version == 7
    assert found == [event_id, "e-3"]
    [(events, err)] = refused
    assert events[0]["action"] == "not valid"
    assert err.status == 422
    assert err.details[0]["field"] == "action"
    strict = log.client("acme")
    with pytest.raises(AuditError) as raised:
        strict.record(event(4, colour="blue"))
    assert raised.value.code == "validation_error"


def test_received_at_follows_the_clock_given() -> None:
    clock = FixedClock(START)
    log = InMemoryAuditLog(clock)
    log.record("acme", event(1))
    clock.advance(timedelta(seconds=5))
    later = log.record("acme", event(2))
    assert later["received_at"] == "2026-11-28T10:00:05.000000Z"
    assert later["occurred_at"] == later["received_at"]


def test_audit_testing_imports_no_server_dependency() -> None:
    code = (
        "import sys, audit.testing; "
        "bad = {'flask', 'sqlalchemy', 'werkzeug', 'gunicorn', 'psycopg', 'dependency_injector'}; "
        "print(sorted(bad & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
