"""BindSigningKey: the first key recorded is the store's; another is refused, named by id."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.adapters.memory import InMemorySigningKeyRecord
from audit.adapters.signing import Ed25519NoteSigner
from audit.application.signing import BindSigningKey
from audit.domain.errors import SigningKeyChanged


def _signer(n: int) -> Ed25519NoteSigner:
    seed = hashlib.sha256(b"seed%d" % n).digest()
    return Ed25519NoteSigner("localhost/audit", Ed25519PrivateKey.from_private_bytes(seed))


def test_a_refused_key_is_named_by_its_id_even_when_its_base64_holds_a_plus() -> None:
    # Both keys' base64 hold a "+", the separator of a vkey's parts.
    first, second = _signer(0), _signer(1)
    assert all("+" in s.vkey.split("+", 2)[2] for s in (first, second))
    record = InMemorySigningKeyRecord()
    record.record(first.vkey)
    bind = BindSigningKey(record, second)
    with pytest.raises(SigningKeyChanged) as refused:
        bind()
    first_id, second_id = ("+".join(s.vkey.split("+")[:2]) for s in (first, second))
    assert str(refused.value).startswith(
        f"this database's checkpoints are signed by key {first_id}, not by {second_id}: "
    )


def test_servers_starting_together_on_an_empty_store_agree_on_the_first_key() -> None:
    """Each server finds no key, and records its own only if none is there by then: the
    first one written is the store's, and a server with another is refused."""
    first, second = _signer(0), _signer(1)
    record = InMemorySigningKeyRecord()
    record.recorded = lambda: None  # type: ignore[method-assign]  # both looked before either wrote
    BindSigningKey(record, first)()
    with pytest.raises(SigningKeyChanged):
        BindSigningKey(record, second)()
    assert record.record_first(second.vkey) == first.vkey


def test_an_empty_store_keeps_its_key_unless_told_to_switch() -> None:
    first, second = _signer(0), _signer(1)
    record = InMemorySigningKeyRecord()
    BindSigningKey(record, first)()
    with pytest.raises(SigningKeyChanged):
        BindSigningKey(record, second)()
    BindSigningKey(record, second)(accept_new=True)
    assert record.recorded() == second.vkey
