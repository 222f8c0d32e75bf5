"""The store is bound to the key that signs its checkpoints."""

from __future__ import annotations

from audit.application.ports import Signer, SigningKeyRecord, UnitOfWorkFactory
from audit.domain.errors import SigningKeyChanged


def _key_id(vkey: str) -> str:
    """`<name>+<8 hex>` of a verifier key `<name>+<8 hex>+<base64>` (a key name holds no
    `+`, a base64 key may)."""
    return "+".join(vkey.split("+", 2)[:2])


class BindSigningKey:
    """Record the signer's key in the store, or refuse a different one on a log with events.

    A server started from another folder (or with another AUDIT_LOG_ORIGIN) would otherwise
    sign under a new key, and every monitor would then report the log as replaced. An
    empty store takes any key; `accept_new` switches keys on purpose.
    """

    def __init__(self, uow: UnitOfWorkFactory, record: SigningKeyRecord, signer: Signer) -> None:
        self._uow = uow
        self._record = record
        self._signer = signer

    def __call__(self, accept_new: bool = False) -> None:
        current = self._signer.vkey
        recorded = self._record.recorded()
        if recorded == current:
            return
        if recorded is not None and not accept_new:
            with self._uow() as uow:
                has_events = bool(uow.events.tenants())
            if has_events:
                raise SigningKeyChanged(
                    f"this database's checkpoints are signed by key {_key_id(recorded)}, "
                    f"not by {_key_id(current)}: set AUDIT_SIGNING_KEY_FILE to its key "
                    "file, or pass --accept-new-signing-key to switch keys on purpose"
                )
        self._record.record(current)
