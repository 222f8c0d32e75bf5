"""The store is bound to the key that signs its checkpoints."""

from __future__ import annotations

from audit.application.ports import Signer, SigningKeyRecord
from audit.domain.errors import SigningKeyChanged


def _key_id(vkey: str) -> str:
    """`<name>+<8 hex>` of a verifier key `<name>+<8 hex>+<base64>` (a key name holds no
    `+`, a base64 key may)."""
    return "+".join(vkey.split("+", 2)[:2])


class BindSigningKey:
    """Record the signer's key in the store, or refuse a different one.

    A server started from another folder (or with another AUDIT_LOG_ORIGIN) would otherwise
    sign under a new key, and every monitor would then report the log as replaced; servers
    sharing one PostgreSQL database, each with a key of its own, would sign one log under
    several. The first key recorded is the store's, even before any event (an empty log's
    checkpoints are signed and kept too), and servers starting together agree on it: one
    records it, the others find it. `accept_new` switches keys on purpose.
    """

    def __init__(self, record: SigningKeyRecord, signer: Signer) -> None:
        self._record = record
        self._signer = signer

    def __call__(self, accept_new: bool = False) -> None:
        current = self._signer.vkey
        recorded = self._record.recorded()
        if recorded is None:
            recorded = self._record.record_first(current)
        if recorded == current:
            return
        if not accept_new:
            raise SigningKeyChanged(
                f"this database's checkpoints are signed by key {_key_id(recorded)}, "
                f"not by {_key_id(current)}: set AUDIT_SIGNING_KEY_FILE to its key "
                "file (or AUDIT_SIGNING_KEY, the same on every server), or pass "
                "--accept-new-signing-key to switch keys on purpose"
            )
        self._record.record(current)
