"""One writer per SQLite file: the server's workers hand it their events over a Unix socket.

SQLite takes one writer at a time. With each worker process committing its own threads'
requests, the workers took turns on the file's lock and each group held at most one
worker's requests; every single-event POST paid a commit of its own pages (bench/README.md).
`audit serve` on SQLite starts one writer process beside its workers; each worker thread
checks and fingerprints its request itself (RecordEvents.submit, in parallel on every
core), sends the Submission, and waits for the answer. The writer commits every request
waiting at that moment in one transaction (RecordEvents.commit_group) and answers each
only once the group is durable: a 201 still means on disk, and the chain, the tree and
`seq` are made by one process in one order.

Frames are a 4-byte big-endian length and a pickle. The socket lives in a folder only the
service's user may enter (0700), so only the server's own processes can send a pickle.
"""

from __future__ import annotations

import contextlib
import copyreg
import logging
import os
import pickle
import select
import selectors
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import attrs

from audit.application.recording import Outcome, Recorded, RecordEvents, Submission
from audit.domain.errors import AuditError, StorageUnavailable
from audit.domain.events import (
    CanonicalMetadata,
    Event,
    NewEvent,
    Party,
    Source,
    UnsealedEvent,
)

log = logging.getLogger("audit.writer")


# Pickled by position: attrs' default pickling of slotted classes (a dict of every field,
# set back one by one) made a 1000-event request cost 20 ms each way.
def _reduce_party(party: Party) -> tuple[type[Party], tuple[Any, ...]]:
    return Party, (party.id, party.type, party.name)


def _reduce_source(source: Source) -> tuple[type[Source], tuple[Any, ...]]:
    return Source, (source.ip, source.user_agent)


def _reduce_new_event(new: NewEvent) -> tuple[type[NewEvent], tuple[Any, ...]]:
    fields = (new.action, new.actor, new.id, new.targets, new.occurred_at, new.outcome)
    return NewEvent, (*fields, new.source, new.description, new.metadata)


def _reduce_metadata(
    metadata: CanonicalMetadata,
) -> tuple[type[CanonicalMetadata], tuple[Any, ...]]:
    return CanonicalMetadata, (dict(metadata), metadata.canonical)


def _reduce_submission(submission: Submission) -> tuple[type[Submission], tuple[Any, ...]]:
    s = submission
    return Submission, (s.tenant, s.events, s.ids, s.fingerprints, s.first_of)


def _reduce_event(event: Event) -> tuple[type[Event], tuple[Any, ...]]:
    return Event, tuple(getattr(event, field.name) for field in attrs.fields(Event))


copyreg.pickle(Party, _reduce_party)
copyreg.pickle(Source, _reduce_source)
copyreg.pickle(NewEvent, _reduce_new_event)
copyreg.pickle(CanonicalMetadata, _reduce_metadata)
copyreg.pickle(Submission, _reduce_submission)
copyreg.pickle(Event, _reduce_event)

# An answer names each event's place, not the event: the worker has what it sent.
# (seq, prev_hash, hash, created) for an event placed by this group, or the stored Event
# (and created=False) for one stored before; with the group's received_at.
_Placed = tuple[int, str, str, bool]
Answer = tuple[datetime, list[_Placed | Event]]


def answer(submission: Submission, recorded: list[Recorded]) -> Answer:
    """The compact answer to a request that was recorded: a place for each event this
    request added (or repeated within itself), the whole Event for one stored before."""
    received_at = datetime.min
    items: list[_Placed | Event] = []
    for i, r in enumerate(recorded):
        first = submission.first_of[i]
        if r.created or (first != i and recorded[first].created):
            received_at = r.event.received_at
            items.append((r.event.seq, r.event.prev_hash, r.event.hash, r.created))
        else:
            items.append(r.event)
    return received_at, items


def recorded(submission: Submission, given: Answer) -> list[Recorded]:
    """The worker's Recorded list from the writer's compact answer."""
    received_at, items = given
    result = []
    for i, item in enumerate(items):
        if isinstance(item, Event):
            result.append(Recorded(item, created=False))
            continue
        seq, prev_hash, hash_, created = item
        placed = UnsealedEvent.place(
            submission.events[i],
            event_id=submission.ids[i],
            seq=seq,
            tenant=submission.tenant,
            received_at=received_at,
        )
        result.append(Recorded(placed.seal(prev_hash, hash_), created))
    return result


_LENGTH = struct.Struct(">I")
# Requests of one group, in events (RecordEvents's GroupCommit default).
MAX_GROUP_EVENTS = 5000
# What a request is answered when the writer failed it with no AuditError: the worker
# raises it, so the request is a 500 logged there, as any unexpected error.
_FAILED = "the writer failed this group (see its log)"


def _frame(value: Any) -> bytes:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(data)) + data


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

    def __call__(self, tenant: str, events: Sequence[NewEvent]) -> list[Recorded]:
        submission = self._submit(tenant, events)  # ValidationFailed raises here
        frame = _frame(submission)
        connection = self._connection()
        try:
            connection.sendall(frame)
            outcome = pickle.loads(_receive(connection))  # noqa: S301 (our own processes)
        except (OSError, EOFError):
            # The writer went away (or took longer than any lock may): whether the group
            # was committed is unknown, as when a connection to a database drops. A retry
            # with the same ids is answered as duplicates if it was.
            self._drop()
            raise _unavailable() from None
        if isinstance(outcome, AuditError):
            raise outcome
        if isinstance(outcome, str):
            raise RuntimeError(outcome)
        return recorded(submission, outcome)

    def _connection(self) -> socket.socket:
        connection: socket.socket | None = getattr(self._local, "connection", None)
        if connection is not None and select.select([connection], [], [], 0)[0]:
            # The writer never speaks unasked: readable means closed (it was restarted).
            self._drop()
            connection = None
        if connection is None or self._pid != os.getpid():
            self._pid = os.getpid()
            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            connection.settimeout(self._timeout_s)
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


def _receive(connection: socket.socket) -> bytes:
    header = _read_exactly(connection, _LENGTH.size)
    return _read_exactly(connection, _LENGTH.unpack(header)[0])


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = connection.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the writer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


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
        while len(self.buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(self.buffer)
            end = _LENGTH.size + size
            if len(self.buffer) < end:
                break
            found.append(bytes(self.buffer[_LENGTH.size : end]))
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
    try:
        while not stopping.is_set():
            if parent is not None and os.getppid() != parent:
                return  # the master is gone: nobody will send or restart
            refused = None
            for group in _groups(_received(selector, listener, 1.0)):
                refused = _commit(group, commit_group, refused)
            if refused is not None:
                # Storage just refused a group after waiting out its lock timeout: what
                # arrived meanwhile gets that answer now, rather than each waiting out the
                # timeout again behind it (GroupCommit does the same). Nothing was written.
                # (Rounds until none is left: a connection accepted in one round sends
                # its request in the next.)
                while selector.select(timeout=0):
                    for group in _groups(_received(selector, listener, 0)):
                        _commit(group, commit_group, refused)
    finally:
        # Whoever waits on an answer learns at once that none is coming.
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def _received(
    selector: selectors.BaseSelector, listener: socket.socket, timeout: float
) -> list[tuple[_Peer, Submission]]:
    """The requests that arrived by now (waiting up to `timeout` seconds for one)."""
    waiting: list[tuple[_Peer, Submission]] = []
    for key, _ in selector.select(timeout=timeout):
        if key.fileobj is listener:
            _accept(listener, selector)
            continue
        peer: _Peer = key.data
        try:
            data = peer.connection.recv(1 << 20)
        except OSError:
            data = b""
        if not data:
            selector.unregister(peer.connection)
            peer.connection.close()
            continue
        peer.buffer += data
        waiting.extend((peer, pickle.loads(f)) for f in peer.frames())  # noqa: S301
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
        sent = outcome if isinstance(outcome, (AuditError, str)) else answer(submission, outcome)
        # A worker gone meanwhile: the selector drops its connection.
        with contextlib.suppress(OSError):
            peer.connection.sendall(_frame(sent))
    return refused
