"""The viewer's pages: the event list, one event with its proof, the log, exports.

Thin like the API's views: parse, call the use cases through the container, render.
Every page only reads; the viewer changes nothing in the log.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import orjson
from dependency_injector.wiring import Provide, inject
from flask import render_template, request
from flask.typing import ResponseReturnValue

from audit.application.proofs import LogIdentity, ProveInclusion, SignCheckpoint
from audit.application.querying import (
    ExportEvents,
    GetEvent,
    LogHead,
    QueryEvents,
    VerifyChain,
)
from audit.container import Container
from audit.domain.errors import InvalidParameter
from audit.domain.query import FILTER_PARAMETERS
from audit.entrypoints.http.parameters import export_format
from audit.entrypoints.http.responses import export_response
from audit.entrypoints.http.ui.access import signed_in, viewer
from audit.entrypoints.http.ui.blueprint import blueprint
from audit.entrypoints.http.ui.listing import (
    DEFAULT_PAGE_SIZE,
    PAGE_SIZES,
    filters_of,
    listing,
)
from audit.verify import VerificationError, open_checkpoint, parse_vkey, verify_event_inclusion


@blueprint.get("/")
@signed_in
@inject
def events(query: QueryEvents = Provide[Container.query_events]) -> ResponseReturnValue:
    args = request.args.to_dict()
    try:
        wanted = listing(args)
    except InvalidParameter as exc:
        # The form again, as typed, with what is wrong.
        typed = {name: args[name] for name in FILTER_PARAMETERS if args.get(name)}
        page = render_template(
            "ui/events.html",
            filters=typed,
            error=exc.message,
            page=None,
            limit=DEFAULT_PAGE_SIZE,
            page_sizes=PAGE_SIZES,
            first_page=True,
        )
        return page, 400
    found = query(viewer().tenant, wanted.where, wanted.page())
    return render_template(
        "ui/events.html",
        filters=wanted.filters,
        error=None,
        page=found,
        limit=wanted.limit,
        page_sizes=PAGE_SIZES,
        first_page=wanted.cursor is None,
    )


def _proof_status(
    document: dict[str, Any], prove: ProveInclusion, identity: LogIdentity
) -> dict[str, Any]:
    """The event's inclusion proof in the current signed tree, checked by audit.verify."""
    tenant = viewer().tenant
    proof = prove(tenant, document["id"])
    # The proof as GET /v1/events/{id}/proof sends it, for the auditors' own verifier.
    answer = {
        "leaf_index": proof.leaf_index,
        "tree_size": proof.tree_size,
        "hashes": [base64.b64encode(h).decode("ascii") for h in proof.hashes],
        "checkpoint": proof.checkpoint,
    }
    try:
        checkpoint = verify_event_inclusion(
            document, answer, parse_vkey(identity.signer.vkey), identity.origin(tenant)
        )
    except VerificationError as exc:
        return {**answer, "verified": False, "reason": str(exc)}
    return {**answer, "verified": True, "root": checkpoint.root_hash.hex()}


@blueprint.get("/events/<event_id>")
@signed_in
@inject
def event(
    event_id: str,
    get: GetEvent = Provide[Container.get_event],
    prove: ProveInclusion = Provide[Container.prove_inclusion],
    identity: LogIdentity = Provide[Container.log_identity],
) -> ResponseReturnValue:
    found = get(viewer().tenant, event_id)
    # Exactly what the API sends, read back: what an auditor's verifier would be given.
    document = orjson.loads(found.to_json())
    return render_template(
        "ui/event.html",
        event=found,
        metadata=json.dumps(document["metadata"], indent=2, ensure_ascii=False),
        document=json.dumps(document, indent=2, ensure_ascii=False),
        proof=_proof_status(document, prove, identity),
    )


def _log_page(head: LogHead, sign: SignCheckpoint, identity: LogIdentity, **extra: Any) -> str:
    tenant = viewer().tenant
    note = sign(tenant)
    return render_template(
        "ui/log.html",
        head=head(tenant),
        checkpoint=note,
        # Opened as an auditor would: the signature checked against the public key.
        signed=open_checkpoint(note, parse_vkey(identity.signer.vkey), identity.origin(tenant)),
        vkey=identity.signer.vkey,
        **extra,
    )


@blueprint.get("/log")
@signed_in
@inject
def log(
    head: LogHead = Provide[Container.log_head],
    sign: SignCheckpoint = Provide[Container.sign_checkpoint],
    identity: LogIdentity = Provide[Container.log_identity],
) -> ResponseReturnValue:
    return _log_page(head, sign, identity)


@blueprint.post("/log/check")
@signed_in
@inject
def check_chain(
    verify: VerifyChain = Provide[Container.verify_chain],
    head: LogHead = Provide[Container.log_head],
    sign: SignCheckpoint = Provide[Container.sign_checkpoint],
    identity: LogIdentity = Provide[Container.log_identity],
) -> ResponseReturnValue:
    report = verify(viewer().tenant)
    return _log_page(head, sign, identity, report=report)


@blueprint.get("/export")
@signed_in
@inject
def export(export: ExportEvents = Provide[Container.export_events]) -> ResponseReturnValue:
    args = request.args.to_dict()
    fmt = export_format(args)
    _, where = filters_of(args)
    return export_response(fmt, export(viewer().tenant, where))
