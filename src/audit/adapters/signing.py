"""The log's Ed25519 signing key: kept in a file apart from the database, owner-only."""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from audit.settings import SettingsError
from audit.verify.note import format_vkey, sign_note


class SigningKeyError(SettingsError):
    """The configured key cannot be read or made; the message says what to fix."""


class Ed25519NoteSigner:
    """Signs C2SP notes with one Ed25519 key under one key name."""

    def __init__(self, key_name: str, private_key: Ed25519PrivateKey) -> None:
        self.key_name = key_name
        self._key = private_key
        raw = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )
        self.vkey = format_vkey(key_name, raw)

    def sign(self, text: str) -> str:
        return sign_note(text, self.key_name, self._key)


def _from_seed(seed_b64: str, where: str) -> Ed25519PrivateKey:
    try:
        seed = base64.b64decode(seed_b64.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SigningKeyError(f"{where} is not base64") from None
    if len(seed) != 32:
        raise SigningKeyError(f"{where} must hold a 32-byte Ed25519 seed in base64")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _seed_of(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw,
        serialization.PrivateFormat.Raw,
        serialization.NoEncryption(),
    )
    return base64.b64encode(raw).decode("ascii")


def load_or_create_key(path: Path, seed_b64: str | None = None) -> Ed25519PrivateKey:
    """The key from `seed_b64` (an operator's secret), else from `path`, made there if absent.

    A new file is created readable by its owner only, atomically, so servers starting
    together agree on one key.
    """
    if seed_b64:
        return _from_seed(seed_b64, "AUDIT_SIGNING_KEY")
    try:
        return _from_seed(path.read_text(encoding="ascii"), f"the key file {path}")
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        raise SigningKeyError(f"cannot read the key file {path}: {exc}") from None
    key = Ed25519PrivateKey.generate()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a temporary name (mkstemp makes it 0600), then linked into
        # place: a server starting at the same moment sees no key or the whole key.
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(_seed_of(key) + "\n")
                handle.flush()
                os.fsync(handle.fileno())
            os.link(temporary, path)
        finally:
            os.unlink(temporary)
    except FileExistsError:
        return load_or_create_key(path)
    except OSError as exc:
        raise SigningKeyError(f"cannot create the key file {path}: {exc}") from None
    return key


def signer_from_settings(
    key_name: str, key_file: str, seed_b64: str | None = None
) -> Ed25519NoteSigner:
    """The log's signer: the key from AUDIT_SIGNING_KEY, else from (or made in) `key_file`."""
    return Ed25519NoteSigner(key_name, load_or_create_key(Path(key_file), seed_b64))


def derived_secret(key_file: str, seed_b64: str | None, purpose: str) -> bytes:
    """A 32-byte secret for `purpose` (HKDF-SHA256 of the signing key's seed).

    Every worker process reads the same signing key, so all derive the same secret, and
    an operator keeps no second one; the secret reveals nothing of the signing key.
    """
    seed = base64.b64decode(_seed_of(load_or_create_key(Path(key_file), seed_b64)))
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode())
    return hkdf.derive(seed)
