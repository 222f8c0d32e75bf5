"""Signed notes and checkpoints, against golang.org/x/mod/sumdb/note and C2SP vectors."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from audit.verify.merkle import VerificationError
from audit.verify.note import (
    Checkpoint,
    Verifier,
    format_checkpoint,
    format_vkey,
    key_hash,
    open_checkpoint,
    open_note,
    parse_checkpoint,
    parse_vkey,
    sign_note,
)

VECTORS = json.loads((Path(__file__).parent / "data" / "note_vectors.json").read_text())
GO = VECTORS["go_sumdb_note"]
SUMDB = VECTORS["sum_golang_org_checkpoint"]

KEY_NAME = "localhost/audit"
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
VERIFIER = Verifier.from_public_key(KEY_NAME, KEY.public_key())
TEXT = "localhost/audit/acme\n3\n" + base64.b64encode(bytes(32)).decode() + "\n"


def go_private_key(skey: str) -> Ed25519PrivateKey:
    """The Ed25519 key of a Go `PRIVATE+KEY+<name>+<hash>+<base64(0x01 || seed)>` string."""
    seed = base64.b64decode(skey.split("+", 4)[4])
    assert seed[0] == 1
    return Ed25519PrivateKey.from_private_bytes(seed[1:])


def signature_line(name: str, key_id: bytes, signature: bytes) -> str:
    return f"— {name} {base64.b64encode(key_id + signature).decode()}\n"


# -- verifier keys ------------------------------------------------------------------------


def test_go_vkey_parses_and_formats_back() -> None:
    verifier = parse_vkey(GO["peter_vkey"])
    assert verifier.name == "PeterNeumann"
    assert verifier.key_hash.hex() == "c74f20a3"
    assert format_vkey(verifier.name, verifier.public_key) == GO["peter_vkey"]
    assert verifier.vkey == GO["peter_vkey"]


def test_go_skey_yields_the_go_vkey() -> None:
    public = go_private_key(GO["peter_skey"]).public_key()
    assert Verifier.from_public_key("PeterNeumann", public).vkey == GO["peter_vkey"]


def test_vkey_shape() -> None:
    name, key_id, key = VERIFIER.vkey.split("+", 2)
    assert name == KEY_NAME
    assert re.fullmatch(r"[0-9a-f]{8}", key_id)
    assert base64.b64decode(key) == b"\x01" + VERIFIER.public_key
    assert bytes.fromhex(key_id) == key_hash(KEY_NAME, VERIFIER.public_key)
    assert parse_vkey(VERIFIER.vkey) == VERIFIER


@pytest.mark.parametrize("vkey", GO["bad_vkeys"])
def test_go_bad_vkeys_are_rejected(vkey: str) -> None:
    with pytest.raises(VerificationError, match="malformed verifier key"):
        parse_vkey(vkey)


def test_every_mangling_of_a_vkey_is_rejected() -> None:
    # As golang.org/x/mod/sumdb/note TestNewVerifier: every proper substring, every byte + 1.
    vkey = GO["peter_vkey"]
    manglings = {vkey[i:j] for i in range(len(vkey) + 1) for j in range(i + 1, len(vkey) + 1)}
    manglings |= {vkey[:i] + chr(ord(vkey[i]) + 1) + vkey[i + 1 :] for i in range(len(vkey))}
    manglings.discard(vkey)
    accepted = []
    for mangled in manglings:
        try:
            parse_vkey(mangled)
        except VerificationError:
            continue
        accepted.append(mangled)
    assert accepted == []


@pytest.mark.parametrize("name", ["", "has space", "has+plus", "tab\there", "nbsp\u00a0"])
def test_invalid_key_names(name: str) -> None:
    with pytest.raises(ValueError, match="invalid key name"):
        Verifier.from_public_key(name, VERIFIER.public_key)


# -- notes --------------------------------------------------------------------------------


def test_sign_reproduces_go_signature_exactly() -> None:
    assert (
        sign_note(GO["text"], "PeterNeumann", go_private_key(GO["peter_skey"]))
        == (GO["signed_by_peter"])
    )


def test_opens_a_go_signed_note() -> None:
    assert open_note(GO["signed_by_peter"], parse_vkey(GO["peter_vkey"])) == GO["text"]


def test_signatures_by_other_keys_are_ignored() -> None:
    both = GO["text"] + "\n" + GO["peter_sig"] + GO["enoch_sig"]
    assert open_note(both, parse_vkey(GO["peter_vkey"])) == GO["text"]
    assert open_note(both, parse_vkey(GO["enoch_vkey"])) == GO["text"]


def test_a_note_signed_only_by_another_key_is_rejected() -> None:
    only_enoch = GO["text"] + "\n" + GO["enoch_sig"]
    with pytest.raises(VerificationError, match="no signature by key PeterNeumann"):
        open_note(only_enoch, parse_vkey(GO["peter_vkey"]))


@pytest.mark.parametrize("note", GO["malformed_notes"])
def test_go_malformed_notes_are_rejected(note: str) -> None:
    with pytest.raises(VerificationError, match="malformed note"):
        open_note(note, parse_vkey(GO["peter_vkey"]))


def test_round_trip() -> None:
    note = sign_note(TEXT, KEY_NAME, KEY)
    assert note.startswith(TEXT + "\n— localhost/audit ")
    assert open_note(note, VERIFIER) == TEXT


def test_wrong_key_is_rejected() -> None:
    other = Ed25519PrivateKey.from_private_bytes(bytes([7] * 32))
    note = sign_note(TEXT, KEY_NAME, other)
    with pytest.raises(VerificationError, match="no signature by key localhost/audit"):
        open_note(note, VERIFIER)


def test_altered_text_is_rejected() -> None:
    note = sign_note(TEXT, KEY_NAME, KEY).replace("\n3\n", "\n4\n", 1)
    with pytest.raises(VerificationError, match="invalid signature"):
        open_note(note, VERIFIER)


def test_altered_signature_is_rejected() -> None:
    signature = KEY.sign(TEXT.encode())
    forged = bytes([signature[0] ^ 1]) + signature[1:]
    with pytest.raises(VerificationError, match="invalid signature"):
        open_note(TEXT + "\n" + signature_line(KEY_NAME, VERIFIER.key_hash, forged), VERIFIER)


def test_a_bad_signature_by_our_key_spoils_a_good_one() -> None:
    good = sign_note(TEXT, KEY_NAME, KEY)
    bad = signature_line(KEY_NAME, VERIFIER.key_hash, bytes(64))
    with pytest.raises(VerificationError, match="invalid signature"):
        open_note(good + bad, VERIFIER)


def test_wrong_key_hash_is_not_our_signature() -> None:
    signature = KEY.sign(TEXT.encode())
    wrong_id = bytes([VERIFIER.key_hash[0] ^ 0xFF]) + VERIFIER.key_hash[1:]
    note = TEXT + "\n" + signature_line(KEY_NAME, wrong_id, signature)
    with pytest.raises(VerificationError, match="no signature by key"):
        open_note(note, VERIFIER)


def test_same_key_under_another_name_is_not_our_signature() -> None:
    note = sign_note(TEXT, "someone.else", KEY)
    with pytest.raises(VerificationError, match="no signature by key"):
        open_note(note, VERIFIER)


@pytest.mark.parametrize(
    ("describe", "mangle"),
    [
        ("missing blank line", lambda n: n.replace("\n\n", "\n", 1)),
        ("malformed base64", lambda n: n[:-3] + "!=\n"),
        ("base64 without padding", lambda n: n[:-2] + "\n"),
        ("missing final newline", lambda n: n[:-1]),
        ("hyphen instead of em dash", lambda n: n.replace("—", "-")),
        ("two spaces after the dash", lambda n: n.replace("— ", "—  ")),
        ("carriage return", lambda n: n.replace("\n3\n", "\n3\r\n")),
        ("lone surrogate", lambda n: "\ud800" + n),
        ("short signature", lambda n: n.split("— ")[0] + "— localhost/audit AAAA\n"),
    ],
)
def test_malformed_notes_are_rejected(describe: str, mangle: Callable[[str], str]) -> None:
    note = mangle(sign_note(TEXT, KEY_NAME, KEY))
    with pytest.raises(VerificationError, match="malformed"):
        open_note(note, VERIFIER)


def test_sign_refuses_text_that_cannot_be_a_note() -> None:
    with pytest.raises(ValueError, match="newline"):
        sign_note("no final newline", KEY_NAME, KEY)
    with pytest.raises(ValueError, match="control character"):
        sign_note("bell\a\n", KEY_NAME, KEY)


# -- checkpoints --------------------------------------------------------------------------


def test_real_sum_golang_org_checkpoint() -> None:
    checkpoint = open_checkpoint(SUMDB["note"], parse_vkey(SUMDB["vkey"]), SUMDB["origin"])
    assert checkpoint.origin == SUMDB["origin"]
    assert checkpoint.size == SUMDB["size"]
    assert format_checkpoint(checkpoint) == SUMDB["note"].split("\n\n")[0] + "\n"
    rolled_back = SUMDB["note"].replace(str(SUMDB["size"]), str(SUMDB["size"] - 1))
    with pytest.raises(VerificationError, match="invalid signature"):
        open_checkpoint(rolled_back, parse_vkey(SUMDB["vkey"]))


def test_c2sp_example_checkpoint_text() -> None:
    example = VECTORS["c2sp_checkpoint_example"]
    text = example["note"].split("\n\n")[0] + "\n"
    checkpoint = parse_checkpoint(text)
    assert (checkpoint.origin, checkpoint.size) == (example["origin"], example["size"])
    assert format_checkpoint(checkpoint) == text


def test_checkpoint_round_trip() -> None:
    checkpoint = Checkpoint("localhost/audit/acme", 3, bytes(range(32)))
    text = format_checkpoint(checkpoint)
    assert text == "localhost/audit/acme\n3\nAAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n"
    assert parse_checkpoint(text) == checkpoint
    assert open_checkpoint(sign_note(text, KEY_NAME, KEY), VERIFIER) == checkpoint


def test_extension_lines_are_ignored() -> None:
    assert parse_checkpoint(TEXT + "extension\nanother\n") == parse_checkpoint(TEXT)


def test_size_zero() -> None:
    assert parse_checkpoint("o\n0\n" + base64.b64encode(bytes(32)).decode() + "\n").size == 0


@pytest.mark.parametrize("text", VECTORS["invalid_checkpoint_texts"]["texts"].values())
def test_published_invalid_checkpoints(text: str) -> None:
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        parse_checkpoint(text)


ROOT = base64.b64encode(bytes(32)).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"o\n01\n{ROOT}\n",
        f"o\n+1\n{ROOT}\n",
        f"o\n 1\n{ROOT}\n",
        f"o\n1 \n{ROOT}\n",
        f"o\n\u0661\n{ROOT}\n",
        f"o\n{2**64}\n{ROOT}\n",
        f"o\n1\n{base64.b64encode(bytes(31)).decode()}\n",
        f"o\n1\n{base64.b64encode(bytes(33)).decode()}\n",
        f"o\n1\n{ROOT[:-2]}B=\n",
        f"o\n1\n{ROOT.rstrip('=')}\n",
        f"o\n1\n{ROOT}\n\nextension\n",
        f"o\n1\n{ROOT}",
        "o\n1\n",
        "",
    ],
)
def test_strict_checkpoint_parsing(text: str) -> None:
    with pytest.raises(VerificationError, match="malformed checkpoint"):
        parse_checkpoint(text)


def test_checkpoint_origin_must_match_when_given() -> None:
    note = sign_note(TEXT, KEY_NAME, KEY)
    assert open_checkpoint(note, VERIFIER, "localhost/audit/acme").size == 3
    with pytest.raises(VerificationError, match="origin"):
        open_checkpoint(note, VERIFIER, "localhost/audit/other")


def test_format_checkpoint_refuses_what_parse_would_refuse() -> None:
    with pytest.raises(ValueError, match="origin"):
        format_checkpoint(Checkpoint("", 1, bytes(32)))
    with pytest.raises(ValueError, match="32 bytes"):
        format_checkpoint(Checkpoint("o", 1, bytes(31)))
    with pytest.raises(ValueError, match="out of range"):
        format_checkpoint(Checkpoint("o", -1, bytes(32)))
