"""One writer per server: the workers hand it their events over a Unix socket.

With each worker process committing its own threads' requests, a group held at most one
worker's requests, and on SQLite the workers took turns on the file's one write lock:
every single-event POST paid nearly a commit of its own (bench/README.md). `audit serve`
starts one writer process beside its workers; each worker thread checks and fingerprints
its request itself (RecordEvents.submit, in parallel on every core), sends the Submission,
and waits for the answer. The writer commits every request waiting at that moment in one
transaction (RecordEvents.commit_group) and answers each only once the group is durable:
a 201 still means on disk, and the chain, the tree and `seq` are made in one order. On
PostgreSQL, writers of several servers still queue on their tenant's chain head.

The socket lives in a folder only the service's user may enter (0700, made by
tempfile.mkdtemp), so only the server's own processes can send on it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence

from audit.adapters.writer_wire import (
    ANSWER,
    LENGTH,
    decode_answer,
    decode_submission,
    encode_answer,
    encode_error,
    encode_submission,
    frame,
    receive,
)
from audit.application.recording import Outcome, Recorded, RecordEvents, Submission
from audit.domain.errors import AuditError, StorageUnavailable
from audit.domain.events import NewEvent

log = logging.getLogger("audit.writer")

# Requests of one group, in events (RecordEvents's GroupCommit default).
MAX_GROUP_EVENTS = 5000
# What a request is answered when the writer failed it with no AuditError: the worker
# raises it, so the request is a 500 logged there, as any unexpected error.
_FAILED = "the writer failed this group (see its log)"


_TIMEVAL = struct.Struct("@ll")  # struct timeval: seconds, microseconds


def _unavailable() -> StorageUnavailable:
    return StorageUnavailable("the database writer is restarting", 1, reason="unreachable")


class WriterClient:
    """An EventRecorder for a worker: each thread keeps one connection to the writer."""

    def __init__(self, path: str, record: RecordEvents, timeout_s: float) -> None:
        self._path = path
        self._submit = record.submit
        self._timeout_s = timeout_s
        self._local = threading.local()
        self._pid = os.getpid()

    def __call__(
        self, tenant: str, events: Sequence[NewEvent], epoch: int | None = None
    ) -> list[Recorded]:
        submission = self._submit(tenant, events, epoch)  # ValidationFailed raises here
        sent = frame(encode_submission(submission))
        connection = self._connection()
        try:
            try:
                connection.sendall(sent)
            except (BrokenPipeError, ConnectionResetError):
                # The writer closed this connection since this thread last used it (it
                # was restarted). A send it did not take whole is a frame it never read:
                # nothing of this request was written. Once more, to the writer now there.
                self._drop()
                connection = self._connection()
                connection.sendall(sent)
            answer = receive(connection)
        except (OSError, EOFError):
            # The writer went away (or took longer than any lock may): whether the group
            # was committed is unknown, as when a connection to a database drops. A retry
            # with the same ids is answered as duplicates if it was.
            self._drop()
            raise _unavailable() from None
        if answer[:1] == ANSWER:
            return decode_answer(submission, answer[1:])
        error = pickle.loads(answer[1:])  # noqa: S301 (the writer, through a private socket)
        if isinstance(error, AuditError):
            raise error
        raise RuntimeError(error)

    def _connection(self) -> socket.socket:
        connection: socket.socket | None = getattr(self._local, "connection", None)
        if connection is None or self._pid != os.getpid():
            self._pid = os.getpid()
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            # The time limit is the kernel's (SO_SNDTIMEO, SO_RCVTIMEO), not Python's: a
            # socket with a Python timeout polls before each send and receive, and every
            # system call lets go of the GIL that the worker's other threads then take.
            limit = _TIMEVAL.pack(int(self._timeout_s), int(self._timeout_s % 1 * 1e6))
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, limit)
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, limit)
            try:
                connection.connect(self._path)
            except OSError:
                connection.close()
                raise _unavailable() from None
            self._local.connection = connection
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()


def listen(path: str) -> socket.socket:
    """The writer's listening socket at `path` (a stale one is replaced)."""
    if os.path.exists(path):
        os.unlink(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1024)
    return listener


class _Peer:
    __slots__ = ("buffer", "connection")

    def __init__(self, connection: socket.socket) -> None:
        self.connection = connection
        self.buffer = bytearray()

    def frames(self) -> list[bytes]:
        """The whole frames received so far, taken out of the buffer."""
        found = []
        while len(self.buffer) >= LENGTH.size:
            (size,) = LENGTH.unpack_from(self.buffer)
            end = LENGTH.size + size
            if len(self.buffer) < end:
                break
            found.append(bytes(self.buffer[LENGTH.size : end]))
            del self.buffer[:end]
        return found


def serve(
    listener: socket.socket,
    commit_group: Callable[[Sequence[Submission]], list[Outcome]],
    stopping: threading.Event,
    parent: int | None = None,
) -> None:
    """Commit what the workers send, a group per turn, until `stopping` is set or the
    parent process is gone.

    Each turn takes every request that has arrived (up to MAX_GROUP_EVENTS events a
    group): while one group is on disk the next gathers, so the busier the service the
    larger the groups, and a lone request waits for nothing.
    """
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    # Every receive lands here first: a recv() of 1 MiB made a new 1 MiB bytes each time,
    # mapped, shrunk and unmapped again (three system calls a request, seen by strace).
    scratch = bytearray(1 << 20)
    try:
        while not stopping.is_set():
            if parent is not None and os.getppid() != parent:
                return  # the master is gone: nobody will send or restart
            refused = None
            for group in _groups(_received(selector, listener, scratch, 1.0)):
                refused = _commit(group, commit_group, refused)
            if refused is not None:
                # Storage just refused a group after waiting out its lock timeout: what
                # arrived meanwhile gets that answer now, rather than each waiting out the
                # timeout again behind it (GroupCommit does the same). Nothing was written.
                # (Rounds until none is left: a connection accepted in one round sends
                # its request in the next.)
                while selector.select(timeout=0):
                    for group in _groups(_received(selector, listener, scratch, 0)):
                        _commit(group, commit_group, refused)
    finally:
        # Whoever waits on an answer learns at once that none is coming.
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def _received(
    selector: selectors.BaseSelector, listener: socket.socket, scratch: bytearray, timeout: float
) -> list[tuple[_Peer, Submission]]:
    """The requests that arrived by now (waiting up to `timeout` seconds for one)."""
    waiting: list[tuple[_Peer, Submission]] = []
    for key, _ in selector.select(timeout=timeout):
        if key.fileobj is listener:
            _accept(listener, selector)
            continue
        peer: _Peer = key.data
        try:
            size = peer.connection.recv_into(scratch)
        except OSError:
            size = 0
        if not size:
            selector.unregister(peer.connection)
            peer.connection.close()
            continue
        peer.buffer += memoryview(scratch)[:size]
        waiting.extend((peer, decode_submission(f[1:])) for f in peer.frames())
    return waiting


def _groups(
    waiting: list[tuple[_Peer, Submission]],
) -> Iterator[list[tuple[_Peer, Submission]]]:
    """`waiting` in groups of at most MAX_GROUP_EVENTS events (a larger request alone)."""
    group: list[tuple[_Peer, Submission]] = []
    size = 0
    for item in waiting:
        count = len(item[1].events)
        if group and size + count > MAX_GROUP_EVENTS:
            yield group
            group, size = [], 0
        group.append(item)
        size += count
    if group:
        yield group


def _accept(listener: socket.socket, selector: selectors.BaseSelector) -> None:
    try:
        connection, _ = listener.accept()
    except BlockingIOError:
        return
    connection.setblocking(True)
    selector.register(connection, selectors.EVENT_READ, _Peer(connection))


def _commit(
    group: list[tuple[_Peer, Submission]],
    commit_group: Callable[[Sequence[Submission]], list[Outcome]],
    refused: StorageUnavailable | None,
) -> StorageUnavailable | None:
    """Commit a group (or answer it `refused`, not trying) and answer each request;
    returns the StorageUnavailable that storage answered, if it did."""
    outcomes: Sequence[Outcome | str]
    if refused is not None:
        outcomes = [refused] * len(group)
    else:
        try:
            outcomes = commit_group([submission for _, submission in group])
        except AuditError as exc:
            outcomes = [exc] * len(group)
        except Exception:
            log.exception("a group of %d requests failed", len(group))
            outcomes = [_FAILED] * len(group)
        refused = next((o for o in outcomes if isinstance(o, StorageUnavailable)), None)
    for (peer, submission), outcome in zip(group, outcomes, strict=True):
        if isinstance(outcome, AuditError | str):
            sent = encode_error(outcome)
        else:
            sent = encode_answer(submission, outcome)
        # A worker gone meanwhile: the selector drops its connection.
        with contextlib.suppress(OSError):
            peer.connection.sendall(frame(sent))
    return refused
