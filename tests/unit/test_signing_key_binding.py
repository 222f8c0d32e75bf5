"""BindSigningKey names both keys by their ids when it refuses a switch."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.adapters.signing import Ed25519NoteSigner
from audit.application.signing import BindSigningKey
from audit.domain.errors import SigningKeyChanged


def _signer(n: int) -> Ed25519NoteSigner:
    seed = hashlib.sha256(b"seed%d" % n).digest()
    return Ed25519NoteSigner("localhost/audit", Ed25519PrivateKey.from_private_bytes(seed))


class _Record:
    def __init__(self, vkey: str | None) -> None:
        self.vkey = vkey

    def recorded(self) -> str | None:
        return self.vkey

    def record(self, vkey: str) -> None:
        self.vkey = vkey


@contextmanager
def _log_with_events() -> Iterator[Any]:
    yield SimpleNamespace(events=SimpleNamespace(tenants=lambda: ["acme"]))


def test_a_refused_key_is_named_by_its_id_even_when_its_base64_holds_a_plus() -> None:
    # Both keys' base64 hold a "+", the separator of a vkey's parts.
    first, second = _signer(0), _signer(1)
    assert all("+" in s.vkey.split("+", 2)[2] for s in (first, second))
    bind = BindSigningKey(_log_with_events, _Record(first.vkey), second)  # type: ignore[arg-type]
    with pytest.raises(SigningKeyChanged) as refused:
        bind()
    first_id, second_id = ("+".join(s.vkey.split("+")[:2]) for s in (first, second))
    assert str(refused.value).startswith(
        f"this database's checkpoints are signed by key {first_id}, not by {second_id}: "
    )
