"""The original service's two endpoints, so systems written for it keep working unchanged.

`POST /save_logs` takes form fields and stores them as one event; `GET /get_logs` finds
events by keyword and prints them one per line as `key:value,` pairs. Both are thin: the
same use cases, tokens, scopes, validation and chain as `/v1/events`.
"""

from __future__ import annotations

from typing import Any

import orjson
from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response, request
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import UnsupportedMediaType

from audit.application.querying import QueryEvents
from audit.application.recording import EventRecorder
from audit.container import Container
from audit.domain import rules
from audit.domain.errors import InvalidParameter, Problem, ValidationFailed
from audit.domain.events import Event
from audit.domain.query import EventFilter, PageRequest
from audit.domain.tokens import Principal, Scope
from audit.domain.validation import parse_event
from audit.entrypoints.http.auth import checking_revocation, current_principal, require
from audit.entrypoints.http.metrics import count_ingested

blueprint = Blueprint("seed", __name__)

SAVED = "Logs successfully saved to database!"
DEFAULT_ACTION = "log.saved"
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Each keyword is one search; a bound keeps one request from running hundreds.
MAX_KEYWORDS = 20
TEXT = "text/plain; charset=utf-8"


def _fields() -> MultiDict[str, str]:
    if request.mimetype not in FORM_MEDIA_TYPES:
        raise UnsupportedMediaType("the body must be application/x-www-form-urlencoded")
    return request.form


def seed_event(fields: MultiDict[str, str], principal: Principal) -> dict[str, Any]:
    """The event the original service's fields stand for, as a client would send it.

    The actor is `actor_id`, else `user`, else the token's name; the action is `action`
    when it is a valid one, else `log.saved`; every field is kept in the metadata (a
    field given twice as the list of its values).
    """
    metadata: dict[str, Any] = {
        key: values[0] if len(values) == 1 else values for key, values in fields.lists()
    }
    actor = fields.get("actor_id") or fields.get("user") or principal.name or principal.token_id
    action = fields.get("action")
    if action is None or not rules.ID_RE.fullmatch(action):
        action = DEFAULT_ACTION
    return {"action": action, "actor": {"id": actor}, "metadata": metadata}


@blueprint.post("/save_logs")
@require(Scope.EVENTS_WRITE, checks_revocation=True)
@inject
def save_logs(record: EventRecorder = Provide[Container.record_events]) -> Response:
    principal = current_principal()
    fields = _fields()
    if not fields:
        raise ValidationFailed([Problem(field="", message="the form holds no fields")])
    events = [parse_event(seed_event(fields, principal))]
    # As /v1/events: the writer checks the epoch of a kept principal.
    [recorded] = checking_revocation(lambda epoch: record(principal.tenant, events, epoch))
    count_ingested(int(recorded.created), int(not recorded.created))
    return Response(SAVED, status=200, content_type=TEXT)


def _keywords() -> list[str]:
    values = [*request.args.listvalues(), *(request.form.listvalues() if request.form else [])]
    keywords = list(dict.fromkeys(v for vs in values for v in vs if v))
    if any("\x00" in keyword for keyword in keywords):
        raise InvalidParameter("keywords must not contain NUL characters")
    if len(keywords) > MAX_KEYWORDS:
        raise InvalidParameter(f"at most {MAX_KEYWORDS} keywords")
    return keywords


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    # One event per line, whatever a value holds.
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")


def seed_line(event: Event) -> str:
    """An event as the original printed a row: its metadata's `key:value,` pairs, then
    the event's own id, seq, action, actor and time where the metadata has no such key."""
    pairs = dict(event.metadata)
    own = {
        "id": event.id,
        "seq": event.seq,
        "action": event.action,
        "actor_id": event.actor.id,
        "occurred_at": event.to_document()["occurred_at"],
    }
    for key, value in own.items():
        pairs.setdefault(key, value)
    return "".join(f"{_text(key)}:{_text(value)}," for key, value in pairs.items())


@blueprint.get("/get_logs")
@require(Scope.EVENTS_READ)
@inject
def get_logs(query: QueryEvents = Provide[Container.query_events]) -> Response:
    tenant = current_principal().tenant
    page = PageRequest(limit=rules.PAGE_LIMIT_MAX)
    keywords = _keywords()
    found: dict[int, Event] = {}
    # Any of the keywords: one search each, merged newest first.
    for where in [EventFilter(q=k) for k in keywords] or [EventFilter()]:
        found.update((e.seq, e) for e in query(tenant, where, page).events)
    newest = sorted(found, reverse=True)[: rules.PAGE_LIMIT_MAX]
    body = "".join(seed_line(found[seq]) + "\n" for seq in newest)
    return Response(body, status=200, content_type=TEXT)
