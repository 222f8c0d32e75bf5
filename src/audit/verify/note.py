"""C2SP signed notes (c2sp.org/signed-note) with Ed25519 keys, and tlog checkpoints
(c2sp.org/tlog-checkpoint), compatible with golang.org/x/mod/sumdb/note.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from audit.verify.merkle import HASH_SIZE, VerificationError

ALG_ED25519 = 0x01
_SIG_PREFIX = "— "  # U+2014 EM DASH, space
_MAX_SIGNATURES = 100  # as golang.org/x/mod/sumdb/note; C2SP asks for at least 16
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f]")
_SIZE = re.compile(r"0|[1-9][0-9]*")


def is_valid_key_name(name: str) -> bool:
    """Key names are non-empty UTF-8, with no Unicode space, control character or '+'."""
    return (
        bool(name)
        and "+" not in name
        and not any(c.isspace() for c in name)
        and _note_chars_problem(name) is None
    )


def key_hash(name: str, public_key: bytes) -> bytes:
    """The 4-byte key ID: SHA-256(name || "\\n" || 0x01 || public key)[:4]."""
    return hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()[:4]


@dataclass(frozen=True)
class Verifier:
    """An Ed25519 note verifier key."""

    name: str
    key_hash: bytes
    public_key: bytes

    @classmethod
    def from_public_key(cls, name: str, public_key: bytes | Ed25519PublicKey) -> Verifier:
        """The verifier for `name` and a 32-byte (or `cryptography`) Ed25519 public key."""
        if isinstance(public_key, Ed25519PublicKey):
            public_key = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        if not is_valid_key_name(name):
            raise ValueError(f"invalid key name {name!r}")
        if len(public_key) != 32:
            raise ValueError(f"an Ed25519 public key is 32 bytes, not {len(public_key)}")
        return cls(name, key_hash(name, public_key), public_key)

    @property
    def vkey(self) -> str:
        """This key in the signed-note verifier key format."""
        return format_vkey(self.name, self.public_key)

    def verify(self, message: bytes, signature: bytes) -> bool:
        """Whether `signature` is this key's Ed25519 signature of `message`."""
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def format_vkey(name: str, public_key: bytes) -> str:
    """`<name>+<8 hex key hash>+<base64(0x01 || public key)>`."""
    if not is_valid_key_name(name):
        raise ValueError(f"invalid key name {name!r}")
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode()
    return f"{name}+{key_hash(name, public_key).hex()}+{encoded}"


def parse_vkey(vkey: str) -> Verifier:
    """Parse and check a verifier key; raises `VerificationError` when it is malformed."""
    name, _, rest = vkey.partition("+")
    hash_hex, _, key_b64 = rest.partition("+")
    if not is_valid_key_name(name):
        raise VerificationError("malformed verifier key: bad key name")
    if not re.fullmatch(r"[0-9a-f]{8}", hash_hex):
        raise VerificationError(
            "malformed verifier key: the key hash is not 8 lowercase hex digits"
        )
    key = _b64decode(key_b64, "verifier key")
    if len(key) != 33 or key[0] != ALG_ED25519:
        raise VerificationError("malformed verifier key: not a 0x01 (Ed25519) 32-byte public key")
    if key_hash(name, key[1:]) != bytes.fromhex(hash_hex):
        raise VerificationError("malformed verifier key: the key hash does not match the key")
    return Verifier(name, bytes.fromhex(hash_hex), key[1:])


def sign_note(text: str, key_name: str, private_key: Ed25519PrivateKey) -> str:
    """Sign `text` (which must end in a newline) as a note with one signature line."""
    problem = _note_chars_problem(text)
    if problem:
        raise ValueError(f"cannot sign: {problem}")
    if not text.endswith("\n"):
        raise ValueError("cannot sign: note text must end with a newline")
    public = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    verifier = Verifier.from_public_key(key_name, public)
    signature = private_key.sign(text.encode())
    encoded = base64.b64encode(verifier.key_hash + signature).decode()
    return f"{text}\n{_SIG_PREFIX}{key_name} {encoded}\n"


def open_note(note: str, verifier: Verifier) -> str:
    """Verify a signed note and return its text (up to and including its last newline).

    Signatures by other keys are ignored, as C2SP requires; at least one must be by
    `verifier`, and every one by `verifier` must be valid.
    """
    problem = _note_chars_problem(note)
    if problem:
        raise VerificationError(f"malformed note: {problem}")
    split = note.rfind("\n\n")
    if split < 0:
        raise VerificationError("malformed note: no blank line before the signatures")
    text, signatures = note[: split + 1], note[split + 2 :]
    if not signatures.endswith("\n"):
        raise VerificationError("malformed note: the signature block must end with a newline")
    lines = signatures[:-1].split("\n")
    if len(lines) > _MAX_SIGNATURES:
        raise VerificationError(f"malformed note: more than {_MAX_SIGNATURES} signatures")
    verified = False
    for line in lines:
        if not line.startswith(_SIG_PREFIX):
            raise VerificationError(f"malformed note: {line[:40]!r} is not a signature line")
        name, _, encoded = line[len(_SIG_PREFIX) :].partition(" ")
        if not is_valid_key_name(name) or not encoded:
            raise VerificationError(f"malformed note: bad signature line {line[:40]!r}")
        signature = _b64decode(encoded, "note signature")
        if len(signature) < 5:
            raise VerificationError("malformed note: signature too short")
        if name != verifier.name or signature[:4] != verifier.key_hash:
            continue
        if not verifier.verify(text.encode(), signature[4:]):
            raise VerificationError(f"invalid signature by key {name}+{verifier.key_hash.hex()}")
        verified = True
    if not verified:
        raise VerificationError(
            f"note has no signature by key {verifier.name}+{verifier.key_hash.hex()}"
        )
    return text


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement of a log's tree: its origin, size and root hash."""

    origin: str
    size: int
    root_hash: bytes


def format_checkpoint(checkpoint: Checkpoint) -> str:
    """The checkpoint note text: `<origin>\\n<size>\\n<base64 root>\\n`."""
    if not checkpoint.origin or "\n" in checkpoint.origin:
        raise ValueError("a checkpoint origin is one non-empty line")
    if not 0 <= checkpoint.size < 2**64:
        raise ValueError(f"tree size {checkpoint.size} is out of range")
    if len(checkpoint.root_hash) != HASH_SIZE:
        raise ValueError(f"a root hash is {HASH_SIZE} bytes")
    root = base64.b64encode(checkpoint.root_hash).decode()
    return f"{checkpoint.origin}\n{checkpoint.size}\n{root}\n"


def parse_checkpoint(text: str) -> Checkpoint:
    """Parse checkpoint note text strictly; extension lines after the root are ignored."""
    if not text.endswith("\n"):
        raise VerificationError("malformed checkpoint: it must end with a newline")
    lines = text[:-1].split("\n")
    if len(lines) < 3:
        raise VerificationError("malformed checkpoint: fewer than three lines")
    origin, size, root, *extensions = lines
    if not origin:
        raise VerificationError("malformed checkpoint: empty origin")
    if not _SIZE.fullmatch(size) or int(size) >= 2**64:
        raise VerificationError(f"malformed checkpoint: bad tree size {size[:30]!r}")
    root_hash = _b64decode(root, "checkpoint root hash")
    if len(root_hash) != HASH_SIZE or base64.b64encode(root_hash).decode() != root:
        raise VerificationError(f"malformed checkpoint: the root hash is not {HASH_SIZE} bytes")
    if any(not line for line in extensions):
        raise VerificationError("malformed checkpoint: empty extension line")
    return Checkpoint(origin, int(size), root_hash)


def open_checkpoint(note: str, verifier: Verifier, origin: str | None = None) -> Checkpoint:
    """Verify a signed checkpoint note and parse it; check its origin when one is given."""
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise VerificationError(
            f"checkpoint is for origin {checkpoint.origin!r}, expected {origin!r}"
        )
    return checkpoint


def _note_chars_problem(note: str) -> str | None:
    try:
        note.encode()
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if _CONTROL.search(note):
        return "control character other than newline"
    return None


def _b64decode(value: str, what: str) -> bytes:
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise VerificationError(f"malformed {what}: not standard base64") from None
