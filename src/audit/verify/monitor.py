"""An auditor's monitor: keeps the last signed checkpoint of a log outside the service and
checks that every newer one extends it.

A signed checkpoint alone cannot show a rewrite by someone who holds the signing key: they
can sign any tree they like. What they cannot do is make a new tree consistent with a
checkpoint kept where they could not reach it. The monitor is that outside copy: run on
a schedule, it fetches the newest checkpoint, proves it consistent with the one kept in
its state folder, and keeps the new one.

Standard library only (urllib), besides the rest of `audit.verify`. One module, a little
over the project's ~350 lines, on purpose: an auditor reads the whole check (state, HTTP
client, the comparison) in one file, and a split would only scatter it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit.verify.merkle import VerificationError, verify_consistency
from audit.verify.note import Checkpoint, Verifier, open_checkpoint, parse_vkey

_MAX_ANSWER_BYTES = 1 << 20  # a checkpoint, a key or a proof is a few KiB at most
VKEY_FILE = "vkey"
CHECKPOINT_FILE = "checkpoint"
CONFLICT_FILE = "conflicting.checkpoint"
_LOCK_FILE = ".lock"


class MonitorFailure(Exception):
    """The log is not what was seen before: truncated, rolled back, rewritten, or its key
    or origin changed. An auditor must look."""


class CannotCheck(Exception):
    """The check could not be made: network, token, HTTP error or unreadable state."""


# -- the service ------------------------------------------------------------------------


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # urllib would resend the Authorization header to wherever a redirect points.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class LogClient:
    """Reads a log's public key, checkpoint and consistency proofs over HTTP(S)."""

    def __init__(self, url: str, token: str, timeout: float = 30) -> None:
        parts = urllib.parse.urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CannotCheck(f"the URL {url!r} is not an http:// or https:// address")
        self.url = url.rstrip("/")
        self._token = token
        self._timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirects())

    def public_key(self) -> str:
        """The service's verifier key, as `GET /v1/public-key` names it."""
        document = self._json("/v1/public-key", authenticated=False)
        vkey = document.get("vkey")
        if not isinstance(vkey, str):
            raise CannotCheck(f"{self.url}/v1/public-key did not answer a verifier key")
        return vkey

    def checkpoint(self) -> str:
        """The signed checkpoint of the token's tenant's whole log."""
        return self._get("/v1/checkpoint", authenticated=True)

    def consistency(self, first: int, second: int) -> list[bytes]:
        """The consistency proof from size `first` to size `second`; MonitorFailure when the
        answer is not one."""
        path = "/v1/consistency?" + urllib.parse.urlencode({"first": first, "second": second})
        document = self._json(path, authenticated=True)
        hashes = document.get("hashes")
        if (
            document.get("first") != first
            or document.get("second") != second
            or not isinstance(hashes, list)
            or not all(isinstance(h, str) for h in hashes)
        ):
            raise MonitorFailure(
                f"the service answered no consistency proof from size {first} to size {second}"
            )
        try:
            return [base64.b64decode(h.encode("ascii"), validate=True) for h in hashes]
        except (UnicodeEncodeError, binascii.Error):
            raise MonitorFailure(
                "the service's consistency proof holds hashes that are not base64"
            ) from None

    def _json(self, path: str, authenticated: bool) -> dict[str, Any]:
        text = self._get(path, authenticated)
        try:
            document = json.loads(text)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise CannotCheck(f"{self.url}{path.split('?')[0]} did not answer a JSON object")
        return document

    def _get(self, path: str, authenticated: bool) -> str:
        request = urllib.request.Request(self.url + path)  # noqa: S310 (scheme checked above)
        if authenticated:
            request.add_header("Authorization", f"Bearer {self._token}")
        where = f"{self.url}{path.split('?')[0]}"
        try:
            with self._opener.open(request, timeout=self._timeout) as response:
                body: bytes = response.read(_MAX_ANSWER_BYTES + 1)
        except urllib.error.HTTPError as exc:
            problem, code = _http_problem(where, exc)
            if code == _LOG_DAMAGED:
                raise MonitorFailure(problem) from None
            raise CannotCheck(problem) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise CannotCheck(f"cannot reach {where}: {reason}") from None
        if len(body) > _MAX_ANSWER_BYTES:
            raise CannotCheck(f"{where} answered more than {_MAX_ANSWER_BYTES} bytes")
        try:
            return body.decode("utf-8")
        except UnicodeDecodeError:
            raise CannotCheck(f"{where} answered text that is not UTF-8") from None


# The service's answer when its own stored log was changed behind its back (a row removed
# or made unreadable): a failure of the log, not of the check.
_LOG_DAMAGED = "log_damaged"


def _http_problem(where: str, error: urllib.error.HTTPError) -> tuple[str, str | None]:
    """What went wrong, in a sentence, and the service's error code if it gave one."""
    message = ""
    code = None
    with contextlib.suppress(Exception):
        body = json.loads(error.read(_MAX_ANSWER_BYTES))
        message = f": {body['error']['message']}"
        code = str(body["error"]["code"])
    if code == _LOG_DAMAGED:
        return f"{where} reports its log damaged{message}", code
    if error.code in (401, 403):
        return f"{where} refused the token (HTTP {error.code}{message})", code
    if 300 <= error.code < 400:
        location = error.headers.get("Location", "elsewhere")
        return f"{where} redirects to {location}; give that URL instead", code
    return f"{where} answered HTTP {error.code}{message}", code


# -- the state folder -------------------------------------------------------------------


class MonitorState:
    """The monitor's memory: the trusted verifier key and the last checkpoint it verified.

    Files are replaced atomically, so a crash leaves the old state or the new, never half.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the folder alone: two runs at once could keep an older checkpoint last."""
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            handle = (self.folder / _LOCK_FILE).open("a")
        except OSError as exc:
            raise CannotCheck(f"cannot use the state folder {self.folder}: {exc}") from None
        with handle:
            try:
                import fcntl
            except ImportError:  # not POSIX: no lock, the atomic replaces still hold
                yield
                return
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise CannotCheck(
                    f"another monitor is using the state folder {self.folder}"
                ) from None
            yield

    def vkey(self) -> Verifier | None:
        text = self._read(VKEY_FILE)
        if text is None:
            return None
        try:
            return parse_vkey(text.strip())
        except VerificationError as exc:
            raise CannotCheck(
                f"the kept key {self.folder / VKEY_FILE} is unreadable: {exc}"
            ) from None

    def checkpoint(self, verifier: Verifier | None) -> tuple[str, Checkpoint] | None:
        """The kept note and its checkpoint, verified again with the key that was trusted."""
        note = self._read(CHECKPOINT_FILE)
        if note is None:
            return None
        path = self.folder / CHECKPOINT_FILE
        if verifier is None:
            raise CannotCheck(f"{path} is kept but the key that signed it is not ({VKEY_FILE})")
        try:
            return note, open_checkpoint(note, verifier)
        except VerificationError as exc:
            raise CannotCheck(f"the kept checkpoint {path} does not verify: {exc}") from None

    def keep_vkey(self, verifier: Verifier) -> None:
        self._write(VKEY_FILE, verifier.vkey + "\n")

    def keep_checkpoint(self, note: str) -> None:
        self._write(CHECKPOINT_FILE, note)

    def keep_conflict(self, note: str) -> Path:
        """Keep the first checkpoint that contradicted the kept one: signed evidence."""
        path = self.folder / CONFLICT_FILE
        if not path.exists():
            with contextlib.suppress(CannotCheck):
                self._write(CONFLICT_FILE, note)
        return path

    def _read(self, name: str) -> str | None:
        path = self.folder / name
        try:
            return path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            return None
        except (OSError, UnicodeDecodeError) as exc:
            raise CannotCheck(f"cannot read {path}: {exc}") from None

    def _write(self, name: str, text: str) -> None:
        try:
            fd, temporary = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(text.encode("utf-8"))
                    handle.flush()
                    os.fsync(handle.fileno())
                os.replace(temporary, self.folder / name)
            except BaseException:
                Path(temporary).unlink(missing_ok=True)
                raise
            _fsync_folder(self.folder)
        except OSError as exc:
            raise CannotCheck(f"cannot write {self.folder / name}: {exc}") from None


def _fsync_folder(folder: Path) -> None:
    # Makes the rename itself durable; not every platform can open a folder.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# -- the check --------------------------------------------------------------------------


@dataclass(frozen=True)
class MonitorReport:
    """What one successful run saw: the log's origin, the sizes before and now, the root."""

    origin: str
    previous_size: int | None  # None on the first run
    size: int
    root_hash: bytes
    vkey: str
    trusted_now: bool  # the key was trusted (first use) or replaced (--vkey) in this run

    def summary(self) -> str:
        root = base64.b64encode(self.root_hash).decode("ascii")
        if self.previous_size is None:
            start = f"first run: trusting key {self.vkey}; " if self.trusted_now else "first run; "
            return (
                f"OK: {start}kept the checkpoint of {self.origin} at size {self.size}, root {root}"
            )
        if self.previous_size == self.size:
            change = f"unchanged at size {self.size}"
        else:
            change = (
                f"grew from {self.previous_size} to {self.size} events, consistent with the kept "
                "checkpoint"
            )
        return f"OK: {self.origin} {change}, root {root}"


def run_monitor(client: LogClient, state: MonitorState, vkey: Verifier | None) -> MonitorReport:
    """One check: the newest checkpoint extends the kept one. Keeps it when it does.

    `vkey` is the auditor's own copy of the service's key; without it the key kept in the
    state is trusted, or on the first run the key the service names (trust on first use).
    Raises MonitorFailure when the log or its key is not what was seen before, CannotCheck
    when the check could not be made; the kept state is then left as it was.
    """
    with state.locked():
        kept_vkey = state.vkey()
        kept = state.checkpoint(kept_vkey)
        served_vkey = client.public_key()
        trusted = vkey or kept_vkey
        if trusted is None:
            try:
                trusted = parse_vkey(served_vkey)
            except VerificationError as exc:
                raise CannotCheck(f"the service's public key is unusable: {exc}") from None
        elif served_vkey != trusted.vkey:
            raise MonitorFailure(
                f"the service's signing key changed: it now names {served_vkey[:120]!r}, "
                f"but the trusted key is {trusted.vkey!r}"
            )

        note = client.checkpoint()
        expected_origin = kept[1].origin if kept else None
        try:
            current = open_checkpoint(note, trusted, expected_origin)
        except VerificationError as exc:
            raise MonitorFailure(f"the service's checkpoint does not verify: {exc}") from None
        prefix = trusted.name + "/"
        if not current.origin.startswith(prefix) or current.origin == prefix:
            raise MonitorFailure(
                f"the checkpoint's origin {current.origin!r} is not {prefix}<tenant>"
            )

        if kept is not None:
            _check_extends(client, state, kept[1], current, note)
        if trusted != kept_vkey:
            state.keep_vkey(trusted)
        if kept is None or kept[0] != note:
            state.keep_checkpoint(note)
        return MonitorReport(
            origin=current.origin,
            previous_size=kept[1].size if kept else None,
            size=current.size,
            root_hash=current.root_hash,
            vkey=trusted.vkey,
            trusted_now=trusted != kept_vkey,
        )


def _check_extends(
    client: LogClient, state: MonitorState, old: Checkpoint, new: Checkpoint, note: str
) -> None:
    def failure(what: str) -> MonitorFailure:
        evidence = state.keep_conflict(note)
        return MonitorFailure(
            f"{what}; the first signed checkpoint that contradicted the kept one is in {evidence}"
        )

    if new.size < old.size:
        raise failure(
            f"the log was truncated or rolled back: it now has {new.size} events, fewer than "
            f"the {old.size} of the kept checkpoint"
        )
    if new.size == old.size:
        if new.root_hash != old.root_hash:
            raise failure(f"the log was rewritten: the root of its {new.size} events changed")
        return
    if old.size == 0:
        return  # every tree extends the empty one
    proof = client.consistency(old.size, new.size)
    try:
        verify_consistency(old.size, new.size, old.root_hash, new.root_hash, proof)
    except VerificationError as exc:
        raise failure(
            f"the log was rewritten: its tree of {new.size} events does not extend the kept "
            f"checkpoint of {old.size} ({exc})"
        ) from None
