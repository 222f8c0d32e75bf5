"""The verifiable log as an auditor uses it: the public key, signed checkpoints, inclusion
and consistency proofs, each checked OFFLINE with audit.verify against roots this test
recomputes from the events' hashes.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from flask.testing import FlaskClient
from tests.integration.http.support import (
    AuthHeaders,
    Headers,
    assert_error,
    event,
    on_every_storage,
)

from audit.domain.tokens import Scope
from audit.verify import (
    VerificationError,
    Verifier,
    leaf_hash,
    open_checkpoint,
    parse_vkey,
    root_from_leaf_hashes,
    verify_consistency,
    verify_event_inclusion,
)

ORIGIN_PREFIX = "localhost/audit"
CHECKPOINT_TYPE = "text/plain; charset=utf-8"


def post(client: FlaskClient, headers: Headers, body: Any) -> None:
    response = client.post("/v1/events", json=body, headers=headers)
    assert response.status_code == 201, response.get_data(as_text=True)


def record_in_several_requests(client: FlaskClient, headers: Headers) -> list[dict[str, Any]]:
    """Eleven events from singles and batches (one without an id); the log in seq order."""
    post(client, headers, event(id="e1"))
    post(client, headers, {"events": [event(id=f"e{i}") for i in (2, 3, 4)]})
    post(client, headers, event(id="e5", description="five"))
    post(client, headers, {"events": [event(id=f"e{i}", metadata={"i": i}) for i in range(6, 11)]})
    post(client, headers, event())
    return read_log(client, headers)


def read_log(client: FlaskClient, headers: Headers) -> list[dict[str, Any]]:
    response = client.get("/v1/events?order=asc&limit=1000", headers=headers)
    assert response.status_code == 200
    events: list[dict[str, Any]] = response.get_json()["events"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    return events


def roots_by_size(events: list[dict[str, Any]]) -> dict[int, bytes]:
    """The Merkle root of the first k events, for every k, from the events' own hashes."""
    leaves = [leaf_hash(bytes.fromhex(e["hash"])) for e in events]
    return {k: root_from_leaf_hashes(leaves[:k]) for k in range(len(leaves) + 1)}


def verifier_of(client: FlaskClient) -> Verifier:
    response = client.get("/v1/public-key")
    assert response.status_code == 200
    return parse_vkey(response.get_json()["vkey"])


def checkpoint(client: FlaskClient, headers: Headers, query: str = "") -> str:
    response = client.get(f"/v1/checkpoint{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == CHECKPOINT_TYPE
    return response.get_data(as_text=True)


def proof_of(client: FlaskClient, headers: Headers, event_id: str, query: str = "") -> Any:
    response = client.get(f"/v1/events/{event_id}/proof{query}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "application/json"
    return response.get_json()


def consistency_of(client: FlaskClient, headers: Headers, first: int, second: int) -> list[bytes]:
    response = client.get(f"/v1/consistency?first={first}&second={second}", headers=headers)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"first", "second", "hashes"}
    assert (body["first"], body["second"]) == (first, second)
    return [base64.b64decode(h, validate=True) for h in body["hashes"]]


def flip_bit(encoded: str, bit: int = 0) -> str:
    raw = bytearray(base64.b64decode(encoded))
    raw[bit // 8] ^= 1 << (bit % 8)
    return base64.b64encode(bytes(raw)).decode()


def verifies(stored: dict[str, Any], proof: dict[str, Any], verifier: Verifier) -> bool:
    try:
        verify_event_inclusion(stored, proof, verifier)
    except VerificationError:
        return False
    return True


# -- the public key ----------------------------------------------------------------------


def test_the_public_key_needs_no_token_and_is_the_configured_key(
    client: FlaskClient, signing_key_file: Path
) -> None:
    response = client.get("/v1/public-key")
    assert response.status_code == 200
    body = response.get_json()
    assert set(body) == {"key_name", "algorithm", "vkey"}
    assert body["algorithm"] == "ed25519"
    assert body["key_name"] == ORIGIN_PREFIX
    verifier = parse_vkey(body["vkey"])
    assert verifier.name == ORIGIN_PREFIX
    assert body["vkey"].startswith(f"{ORIGIN_PREFIX}+{verifier.key_hash.hex()}+")
    # The key was made in the configured file, owner-only, and it is the one served.
    assert signing_key_file.stat().st_mode & 0o077 == 0
    seed = base64.b64decode(signing_key_file.read_text(encoding="ascii"))
    public = Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert public.public_bytes(Encoding.Raw, PublicFormat.Raw) == verifier.public_key
    assert client.get("/v1/public-key").get_json() == body


@pytest.mark.parametrize("log_origin", ["audit.example.com/log"], indirect=True)
def test_a_configured_origin_names_the_key_and_every_checkpoint(
    client: FlaskClient, headers: Headers
) -> None:
    body = client.get("/v1/public-key").get_json()
    assert body["key_name"] == "audit.example.com/log"
    verifier = parse_vkey(body["vkey"])
    assert verifier.name == "audit.example.com/log"
    post(client, headers, event(id="e1"))
    note = checkpoint(client, headers)
    assert open_checkpoint(note, verifier, "audit.example.com/log/acme").size == 1
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(note, verifier, f"{ORIGIN_PREFIX}/acme")
    proof = proof_of(client, headers, "e1")
    [stored] = read_log(client, headers)
    verify_event_inclusion(stored, proof, verifier, "audit.example.com/log/acme")


# -- everything the service signs and proves verifies offline ------------------------------


@on_every_storage
def test_every_checkpoint_proof_and_consistency_proof_verifies_offline(
    client: FlaskClient, headers: Headers
) -> None:
    events = record_in_several_requests(client, headers)
    n = len(events)
    assert n == 11
    roots = roots_by_size(events)
    verifier = verifier_of(client)
    origin = f"{ORIGIN_PREFIX}/acme"

    # Checkpoints: the whole log, and every earlier size.
    whole = open_checkpoint(checkpoint(client, headers), verifier, origin)
    assert (whole.size, whole.root_hash) == (n, roots[n])
    for size in range(1, n + 1):
        signed = open_checkpoint(checkpoint(client, headers, f"?size={size}"), verifier, origin)
        assert (signed.size, signed.root_hash) == (size, roots[size]), size

    # Inclusion: every event in the whole tree, and in every earlier tree that holds it.
    for stored in events:
        proof = proof_of(client, headers, stored["id"])
        assert set(proof) == {"leaf_index", "tree_size", "hashes", "checkpoint"}
        assert (proof["leaf_index"], proof["tree_size"]) == (stored["seq"] - 1, n)
        proven = verify_event_inclusion(stored, proof, verifier, origin)
        assert (proven.size, proven.root_hash) == (n, roots[n])
        for size in range(stored["seq"], n + 1):
            earlier = proof_of(client, headers, stored["id"], f"?size={size}")
            assert earlier["tree_size"] == size
            proven = verify_event_inclusion(stored, earlier, verifier, origin)
            assert (proven.size, proven.root_hash) == (size, roots[size])

    # Consistency: every pair of sizes.
    for first in range(1, n + 1):
        for second in range(first, n + 1):
            hashes = consistency_of(client, headers, first, second)
            verify_consistency(first, second, roots[first], roots[second], hashes)
            if first == second:
                assert hashes == []


@on_every_storage
def test_the_checkpoint_of_an_empty_log_is_size_0_with_the_empty_root(
    client: FlaskClient, headers: Headers
) -> None:
    note = checkpoint(client, headers)
    signed = open_checkpoint(note, verifier_of(client), f"{ORIGIN_PREFIX}/acme")
    assert (signed.size, signed.root_hash) == (0, hashlib.sha256(b"").digest())
    empty_root = base64.b64encode(hashlib.sha256(b"").digest()).decode()
    text, signature = note.split("\n\n")
    assert text == f"{ORIGIN_PREFIX}/acme\n0\n{empty_root}"
    assert signature.startswith(f"— {ORIGIN_PREFIX} ")
    # An empty log has no tree of size 1 or more to sign or prove against.
    assert_error(client.get("/v1/checkpoint?size=1", headers=headers), 400, "invalid_parameter")
    response = client.get("/v1/consistency?first=1&second=1", headers=headers)
    assert_error(response, 400, "invalid_parameter")


# -- the proofs are what is checked ---------------------------------------------------------


def test_a_tampered_inclusion_proof_fails(client: FlaskClient, headers: Headers) -> None:
    post(client, headers, {"events": [event(id=f"e{i}") for i in range(1, 8)]})
    events = read_log(client, headers)
    verifier = verifier_of(client)
    target = events[2]  # leaf 2 of 7: a proof of three hashes
    proof = proof_of(client, headers, target["id"])
    assert len(proof["hashes"]) == 3
    verify_event_inclusion(target, proof, verifier)  # the untouched proof holds

    tampered: list[tuple[str, dict[str, Any]]] = []
    for i, encoded in enumerate(proof["hashes"]):
        for bit in (0, 255):
            hashes = list(proof["hashes"])
            hashes[i] = flip_bit(encoded, bit)
            tampered.append((f"bit {bit} of hash {i}", {**proof, "hashes": hashes}))
        missing = proof["hashes"][:i] + proof["hashes"][i + 1 :]
        tampered.append((f"hash {i} missing", {**proof, "hashes": missing}))
    tampered += [
        ("an extra hash", {**proof, "hashes": [*proof["hashes"], proof["hashes"][0]]}),
        ("an extra first hash", {**proof, "hashes": [proof["hashes"][0], *proof["hashes"]]}),
        ("hashes reordered", {**proof, "hashes": proof["hashes"][::-1]}),
        ("no hashes", {**proof, "hashes": []}),
        ("the next leaf_index", {**proof, "leaf_index": proof["leaf_index"] + 1}),
        ("the previous leaf_index", {**proof, "leaf_index": proof["leaf_index"] - 1}),
        ("another tree_size", {**proof, "tree_size": 6}),
        (
            "an earlier signed checkpoint",
            {**proof, "checkpoint": checkpoint(client, headers, "?size=6")},
        ),
    ]
    assert [what for what, bad in tampered if verifies(target, bad, verifier)] == []

    # The same proof does not prove another event, nor an altered one.
    for other in (events[1], events[3], {**target, "action": "document.delete"}):
        with pytest.raises(VerificationError):
            verify_event_inclusion(other, proof, verifier)
    # Nor does it verify under another key of the same name.
    impostor = Verifier.from_public_key(ORIGIN_PREFIX, Ed25519PrivateKey.generate().public_key())
    with pytest.raises(VerificationError):
        verify_event_inclusion(target, proof, impostor)
    # A checkpoint whose root was swapped loses its signature.
    roots = roots_by_size(events)
    note = proof["checkpoint"]
    swapped = note.replace(base64.b64encode(roots[7]).decode(), base64.b64encode(roots[6]).decode())
    assert swapped != note
    with pytest.raises(VerificationError):
        verify_event_inclusion(target, {**proof, "checkpoint": swapped}, verifier)


def test_a_tampered_consistency_proof_fails(client: FlaskClient, headers: Headers) -> None:
    post(client, headers, {"events": [event(id=f"e{i}") for i in range(1, 12)]})
    roots = roots_by_size(read_log(client, headers))
    hashes = consistency_of(client, headers, 3, 11)
    verify_consistency(3, 11, roots[3], roots[11], hashes)
    assert len(hashes) > 1

    def flipped(i: int) -> list[bytes]:
        changed = list(hashes)
        changed[i] = bytes([changed[i][0] ^ 1]) + changed[i][1:]
        return changed

    tampered = [flipped(i) for i in range(len(hashes))]
    tampered += [hashes[:i] + hashes[i + 1 :] for i in range(len(hashes))]
    tampered += [[*hashes, hashes[0]], hashes[::-1], []]
    for bad in tampered:
        with pytest.raises(VerificationError):
            verify_consistency(3, 11, roots[3], roots[11], bad)
    # The proof ties these two roots, not others: a rewritten older or newer tree fails.
    with pytest.raises(VerificationError):
        verify_consistency(3, 11, roots[4], roots[11], hashes)
    with pytest.raises(VerificationError):
        verify_consistency(3, 11, roots[3], roots[10], hashes)


# -- refused requests ------------------------------------------------------------------------

NOT_A_SIZE = ["abc", "-1", "+1", " 1", "1 ", "1.0", "1e0", "0x1", "\u0661", "\uff11", "9" * 25]


@on_every_storage
def test_wrong_sizes_and_parameters_are_400(client: FlaskClient, headers: Headers) -> None:
    post(client, headers, {"events": [event(id=f"e{i}") for i in (1, 2, 3)]})
    cases = [
        "/v1/checkpoint?size=0",
        "/v1/checkpoint?size=4",
        "/v1/checkpoint?size=",
        "/v1/checkpoint?size=1&size=1",
        "/v1/checkpoint?sizes=1",
        "/v1/events/e3/proof?size=0",
        "/v1/events/e3/proof?size=4",
        "/v1/events/e3/proof?size=2",  # does not hold seq 3
        "/v1/events/e1/proof?tree_size=1",
        "/v1/consistency",
        "/v1/consistency?first=1",
        "/v1/consistency?second=1",
        "/v1/consistency?first=0&second=1",
        "/v1/consistency?first=0&second=0",
        "/v1/consistency?first=3&second=2",
        "/v1/consistency?first=1&second=4",
        "/v1/consistency?first=4&second=4",
        "/v1/consistency?first=1&second=2&size=2",
        "/v1/consistency?first=1&second=2&first=1",
        "/v1/public-key?format=pem",
    ]
    for bad in NOT_A_SIZE:
        cases += [
            f"/v1/checkpoint?size={bad}",
            f"/v1/events/e1/proof?size={bad}",
            f"/v1/consistency?first={bad}&second=2",
            f"/v1/consistency?first=1&second={bad}",
        ]
    for url in cases:
        response = client.get(url, headers=headers)
        assert response.status_code == 400, (url, response.get_data(as_text=True))
        assert_error(response, 400, "invalid_parameter")
    # The good neighbours of those cases are answered.
    for url in [
        "/v1/checkpoint?size=3",
        "/v1/checkpoint?size=003",
        "/v1/events/e3/proof?size=3",
        "/v1/consistency?first=2&second=3",
        "/v1/consistency?first=3&second=3",
    ]:
        assert client.get(url, headers=headers).status_code == 200, url


@pytest.mark.parametrize(
    "url", ["/v1/checkpoint", "/v1/events/e1/proof", "/v1/consistency?first=1&second=1"]
)
def test_checkpoints_and_proofs_need_a_token_with_events_read(
    client: FlaskClient, headers: Headers, auth_headers: AuthHeaders, url: str
) -> None:
    post(client, headers, event(id="e1"))
    for anonymous in ({}, {"Authorization": "Bearer als_not-a-token"}):
        response = client.get(url, headers=anonymous)
        assert_error(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    others = auth_headers(*(set(Scope) - {Scope.EVENTS_READ}))
    assert_error(client.get(url, headers=others), 403, "forbidden")
    assert client.get(url, headers=auth_headers(Scope.EVENTS_READ)).status_code == 200


def test_an_unknown_event_has_no_proof(client: FlaskClient, headers: Headers) -> None:
    post(client, headers, event(id="e1"))
    assert proof_of(client, headers, "e1")["leaf_index"] == 0  # the route answers for e1
    assert_error(client.get("/v1/events/nope/proof", headers=headers), 404, "not_found")
    response = client.get("/v1/events/nope/proof?size=0", headers=headers)
    assert_error(response, 404, "not_found")  # the event is looked for before the size


@on_every_storage
def test_each_tenant_has_its_own_tree(client: FlaskClient, auth_headers: AuthHeaders) -> None:
    acme, globex = auth_headers(), auth_headers(tenant="globex")
    post(client, acme, {"events": [event(id="a1"), event(id="shared"), event(id="a3")]})
    post(client, globex, event(id="shared", description="globex's own"))
    post(client, globex, event(id="g2"))
    acme_events, globex_events = read_log(client, acme), read_log(client, globex)
    verifier = verifier_of(client)

    mine = open_checkpoint(checkpoint(client, globex), verifier, f"{ORIGIN_PREFIX}/globex")
    assert (mine.size, mine.root_hash) == (2, roots_by_size(globex_events)[2])
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(checkpoint(client, globex), verifier, f"{ORIGIN_PREFIX}/acme")
    theirs = open_checkpoint(checkpoint(client, acme), verifier, f"{ORIGIN_PREFIX}/acme")
    assert (theirs.size, theirs.root_hash) == (3, roots_by_size(acme_events)[3])

    # Another tenant's event looks like no event; an id both hold is each one's own.
    assert_error(client.get("/v1/events/a1/proof", headers=globex), 404, "not_found")
    proof = proof_of(client, globex, "shared")
    assert (proof["leaf_index"], proof["tree_size"]) == (0, 2)
    verify_event_inclusion(globex_events[0], proof, verifier, f"{ORIGIN_PREFIX}/globex")
    with pytest.raises(VerificationError):
        verify_event_inclusion(acme_events[1], proof, verifier)
    # Sizes are bounded by the caller's own log, not the other tenant's.
    assert_error(client.get("/v1/checkpoint?size=3", headers=globex), 400, "invalid_parameter")
    response = client.get("/v1/consistency?first=1&second=3", headers=globex)
    assert_error(response, 400, "invalid_parameter")


# -- the checkpoint folder --------------------------------------------------------------------


@on_every_storage
@pytest.mark.parametrize("checkpoint_dir", ["checkpoints"], indirect=True)
def test_the_newest_checkpoint_of_each_tenant_is_kept_in_the_folder(
    client: FlaskClient, auth_headers: AuthHeaders, checkpoint_dir: Path
) -> None:
    acme, globex = auth_headers(), auth_headers(tenant="globex")
    kept = checkpoint_dir / "acme.checkpoint"
    post(client, acme, event(id="e1"))
    assert not kept.exists()  # written when a checkpoint is made, not when events arrive

    first = checkpoint(client, acme)
    assert kept.read_text(encoding="utf-8") == first
    post(client, acme, event(id="e2"))
    second = checkpoint(client, acme)
    assert second != first
    assert kept.read_text(encoding="utf-8") == second
    # A checkpoint of an earlier size is answered, not kept as the newest.
    assert checkpoint(client, acme, "?size=1") != second
    assert kept.read_text(encoding="utf-8") == second

    other = checkpoint(client, globex)
    assert (checkpoint_dir / "globex.checkpoint").read_text(encoding="utf-8") == other
    assert kept.read_text(encoding="utf-8") == second
    # Replaced whole: no temporary files left beside them.
    assert sorted(p.name for p in checkpoint_dir.iterdir()) == [
        "acme.checkpoint",
        "globex.checkpoint",
    ]
