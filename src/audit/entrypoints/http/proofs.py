"""The verifiable log over HTTP: the public key, signed checkpoints, inclusion and
consistency proofs. Parse, call one use case, render; hashes go out in standard base64.
"""

from __future__ import annotations

import base64

from dependency_injector.wiring import Provide, inject
from flask import Blueprint, Response

from audit.application.proofs import LogIdentity, ProveConsistency, ProveInclusion, SignCheckpoint
from audit.container import Container
from audit.domain.tokens import Scope
from audit.entrypoints.http.auth import current_principal, require
from audit.entrypoints.http.parameters import (
    CHECKPOINT_PARAMETERS,
    CONSISTENCY_PARAMETERS,
    NO_PARAMETERS,
    PROOF_PARAMETERS,
    consistency_sizes,
    query_arguments,
    tree_size,
)
from audit.entrypoints.http.responses import json_response

blueprint = Blueprint("proofs", __name__, url_prefix="/v1")

ALGORITHM = "ed25519"
CHECKPOINT_MEDIA_TYPE = "text/plain; charset=utf-8"


def _base64(hashes: list[bytes]) -> list[str]:
    return [base64.b64encode(h).decode("ascii") for h in hashes]


# Public: an auditor needs the key before holding any token, and it is no secret.
@blueprint.get("/public-key")
@inject
def public_key(identity: LogIdentity = Provide[Container.log_identity]) -> Response:
    query_arguments(NO_PARAMETERS)
    signer = identity.signer
    return json_response({"key_name": signer.key_name, "algorithm": ALGORITHM, "vkey": signer.vkey})


@blueprint.get("/checkpoint")
@require(Scope.EVENTS_READ)
@inject
def checkpoint(sign: SignCheckpoint = Provide[Container.sign_checkpoint]) -> Response:
    size = tree_size(query_arguments(CHECKPOINT_PARAMETERS))
    note = sign(current_principal().tenant, size)
    return Response(note, status=200, content_type=CHECKPOINT_MEDIA_TYPE)


@blueprint.get("/events/<event_id>/proof")
@require(Scope.EVENTS_READ)
@inject
def event_proof(
    event_id: str, prove: ProveInclusion = Provide[Container.prove_inclusion]
) -> Response:
    size = tree_size(query_arguments(PROOF_PARAMETERS))
    proof = prove(current_principal().tenant, event_id, size)
    return json_response(
        {
            "leaf_index": proof.leaf_index,
            "tree_size": proof.tree_size,
            "hashes": _base64(proof.hashes),
            "checkpoint": proof.checkpoint,
        }
    )


@blueprint.get("/consistency")
@require(Scope.EVENTS_READ)
@inject
def consistency(prove: ProveConsistency = Provide[Container.prove_consistency]) -> Response:
    first, second = consistency_sizes(query_arguments(CONSISTENCY_PARAMETERS))
    hashes = prove(current_principal().tenant, first, second)
    return json_response({"first": first, "second": second, "hashes": _base64(hashes)})
