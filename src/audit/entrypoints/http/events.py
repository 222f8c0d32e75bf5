"""The events API: ingest, query, get, export, verify. Parse, call one use case, render."""

from __future__ import annotations

from typing import Any

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response, request

from audit.application.querying import (
    ChainReport,
    ExportEvents,
    GetEvent,
    QueryEvents,
    VerifyChain,
)
from audit.application.recording import EventRecorder, Recorded
from audit.container import Container
from audit.domain.tokens import Scope
from audit.domain.validation import BATCH_KEY, is_batch, parse_batch, parse_event
from audit.entrypoints.formats import json_bytes
from audit.entrypoints.http.auth import checking_revocation, current_principal, require
from audit.entrypoints.http.body import json_body
from audit.entrypoints.http.metrics import count_ingested
from audit.entrypoints.http.parameters import (
    EXPORT_PARAMETERS,
    LIST_PARAMETERS,
    NO_PARAMETERS,
    event_filter,
    export_format,
    listing,
    query_arguments,
)
from audit.entrypoints.http.responses import JSON, export_response, json_response

blueprint = Blueprint("events", __name__, url_prefix="/v1")


def _batch_item(recorded: Recorded) -> dict[str, Any]:
    return {
        "id": recorded.event.id,
        "seq": recorded.event.seq,
        "hash": recorded.event.hash,
        "status": "created" if recorded.created else "duplicate",
    }


@blueprint.post("/events")
@require(Scope.EVENTS_WRITE, checks_revocation=True)
@inject
def record_events(record: EventRecorder = Provide[Container.record_events]) -> Response:
    # The principal may be one this process kept, its epoch unchecked (auth.py): the
    # writer checks it in the group's transaction.
    tenant = current_principal().tenant
    query_arguments(NO_PARAMETERS)
    body = json_body()
    batch = is_batch(body)
    events = parse_batch(body[BATCH_KEY]) if batch else [parse_event(body)]
    results = checking_revocation(lambda epoch: record(tenant, events, epoch))
    if not batch:
        [recorded] = results
        count_ingested(int(recorded.created), int(not recorded.created))
        if not recorded.created:
            return json_response(recorded.event.to_document(), 200)
        # Event ids are URL-safe by rule (ID_PATTERN): no url_for (a visible share of a
        # worker's CPU under load; bench/README.md) and no quoting needed.
        location = f"{request.script_root}{blueprint.url_prefix}/events/{recorded.event.id}"
        return json_response(recorded.event.to_document(), 201, {"Location": location})
    created = sum(1 for r in results if r.created)
    count_ingested(created, len(results) - created)
    return json_response({"count": len(results), "events": [_batch_item(r) for r in results]}, 201)


@blueprint.get("/events")
@require(Scope.EVENTS_READ, checks_revocation=True)
@inject
def list_events(query: QueryEvents = Provide[Container.query_events]) -> Response:
    args = query_arguments(LIST_PARAMETERS)
    where, page_asked = listing(args)
    tenant = current_principal().tenant
    # As ingest: the page's own statement reads the epoch (QueryEvents.json).
    page = checking_revocation(lambda epoch: query.json(tenant, where, page_asked, epoch))
    # {"events": [...], "next_cursor": ...} as json_response would write it, from the
    # events' JSON text (tests/integration/http holds it to that).
    body = b"".join(
        (
            b'{"events":[',
            b",".join(page.events),
            b'],"next_cursor":',
            json_bytes(page.next_cursor),
            b"}",
        )
    )
    return Response(body, status=200, mimetype=JSON)


@blueprint.get("/events/<event_id>")
@require(Scope.EVENTS_READ)
@inject
def get_event(event_id: str, get: GetEvent = Provide[Container.get_event]) -> Response:
    query_arguments(NO_PARAMETERS)
    return json_response(get(current_principal().tenant, event_id).to_document())


@blueprint.get("/export")
@require(Scope.EVENTS_READ)
@inject
def export_events(export: ExportEvents = Provide[Container.export_events]) -> Response:
    args = query_arguments(EXPORT_PARAMETERS)
    fmt = export_format(args)
    where = event_filter(args)
    return export_response(fmt, export(current_principal().tenant, where))


def _report_document(report: ChainReport) -> dict[str, Any]:
    if report.valid:
        head = report.head
        return {
            "valid": True,
            "checked": report.checked,
            "head": None if head is None else {"seq": head.seq, "hash": head.hash},
        }
    return {
        "valid": False,
        "checked": report.checked,
        "first_invalid_seq": report.first_invalid_seq,
        "reason": report.reason,
    }


@blueprint.get("/verify")
@require(Scope.EVENTS_READ)
@inject
def verify_chain(verify: VerifyChain = Provide[Container.verify_chain]) -> Response:
    query_arguments(NO_PARAMETERS)
    return json_response(_report_document(verify(current_principal().tenant)))
