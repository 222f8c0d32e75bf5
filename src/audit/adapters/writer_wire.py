"""The writer's wire (adapters/writer.py): frames, and what submissions and answers hold.

Workers and the writer are processes of one server, of one version of this code: the
format has no version of its own, and nothing but they ever reads it.
"""

from __future__ import annotations

import marshal
import pickle
import socket
import struct
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from audit.application.recording import Recorded, Submission
from audit.domain.errors import AuditError
from audit.domain.events import (
    CanonicalMetadata,
    Event,
    NewEvent,
    Party,
    Source,
    canonical_metadata,
)
from audit.domain.time import from_micros, to_micros

# The wire: a frame is a 4-byte big-endian length, a kind byte and a body. Submissions and
# answers are plain tuples in marshal's format (a single event's submission crosses in a
# quarter of pickle's time: 10 us against 40); an error, rare, is a pickle of it.
SUBMISSION, ANSWER, ERROR = b"S", b"A", b"E"


def _party(party: Party) -> tuple[str, str | None, str | None]:
    return party.id, party.type, party.name


def _micros(moment: datetime | None) -> int | None:
    return None if moment is None else to_micros(moment)


def _moment(micros: int | None) -> datetime | None:
    return None if micros is None else from_micros(micros)


def encode_submission(submission: Submission) -> bytes:
    events = [
        (
            e.action,
            _party(e.actor),
            e.id,
            [_party(t) for t in e.targets],
            _micros(e.occurred_at),
            e.outcome,
            (e.source.ip, e.source.user_agent),
            e.description,
            dict(e.metadata),
            canonical_metadata(e),
        )
        for e in submission.events
    ]
    s = submission
    fields = (s.tenant, s.ids, s.fingerprints, s.first_of, events, s.epoch)
    return SUBMISSION + marshal.dumps(fields)


def decode_submission(body: bytes) -> Submission:
    tenant, ids, fingerprints, first_of, events, epoch = marshal.loads(body)  # noqa: S302
    return Submission(
        tenant,
        [
            NewEvent(
                action,
                Party(*actor),
                event_id,
                tuple([Party(*t) for t in targets]),
                _moment(occurred_at),
                outcome,
                Source(*source),
                description,
                CanonicalMetadata(metadata, canonical),
            )
            for (
                action,
                actor,
                event_id,
                targets,
                occurred_at,
                outcome,
                source,
                description,
                metadata,
                canonical,
            ) in events
        ],
        ids,
        fingerprints,
        first_of,
        epoch,
    )


def _event_tuple(e: Event) -> tuple[Any, ...]:
    return (
        e.id,
        e.seq,
        e.tenant,
        e.action,
        _party(e.actor),
        [_party(t) for t in e.targets],
        e.outcome,
        to_micros(e.occurred_at),
        to_micros(e.received_at),
        (e.source.ip, e.source.user_agent),
        e.description,
        dict(e.metadata),
        e.prev_hash,
        e.hash,
    )


def _tuple_event(fields: Sequence[Any]) -> Event:
    (event_id, seq, tenant, action, actor, targets, outcome, occurred_at, received_at) = fields[:9]
    source, description, metadata, prev_hash, hash_ = fields[9:]
    return Event(
        event_id,
        seq,
        tenant,
        action,
        Party(*actor),
        tuple([Party(*t) for t in targets]),
        outcome,
        from_micros(occurred_at),
        from_micros(received_at),
        Source(*source),
        description,
        metadata,
        prev_hash,
        hash_,
    )


def encode_answer(submission: Submission, recorded: list[Recorded]) -> bytes:
    """The answer to a request that was recorded: its place for each event this request
    added (or repeated within itself), (seq, prev_hash, hash, created), with the group's
    received_at; the whole Event for one stored before. The worker has the rest."""
    received_at = 0
    items: list[tuple[Any, ...]] = []
    for i, r in enumerate(recorded):
        first = submission.first_of[i]
        if r.created or (first != i and recorded[first].created):
            received_at = to_micros(r.event.received_at)
            items.append((r.event.seq, r.event.prev_hash, r.event.hash, r.created))
        else:
            items.append(_event_tuple(r.event))
    return ANSWER + marshal.dumps((received_at, items))


def decode_answer(submission: Submission, body: bytes) -> list[Recorded]:
    """The worker's Recorded list from the writer's answer."""
    received_micros, items = marshal.loads(body)  # noqa: S302 (from the writer)
    received_at = from_micros(received_micros)
    result = []
    for i, item in enumerate(items):
        if len(item) != 4:
            result.append(Recorded(_tuple_event(item), created=False))
            continue
        seq, prev_hash, hash_, created = item
        event = Event.placed(
            submission.events[i],
            event_id=submission.ids[i],
            seq=seq,
            tenant=submission.tenant,
            received_at=received_at,
            prev_hash=prev_hash,
            hash_=hash_,
        )
        result.append(Recorded(event, created))
    return result


def encode_error(error: AuditError | str) -> bytes:
    return ERROR + pickle.dumps(error, protocol=pickle.HIGHEST_PROTOCOL)


LENGTH = struct.Struct(">I")


def frame(data: bytes) -> bytes:
    return LENGTH.pack(len(data)) + data


def receive(connection: socket.socket) -> bytes:
    """The one frame the writer sends in answer; most often one recv(2) reads it whole
    (each is a system call, and lets go of the GIL)."""
    data = connection.recv(1 << 16)
    if not data:
        raise EOFError("the writer closed the connection")
    if len(data) < LENGTH.size:
        data += _read_exactly(connection, LENGTH.size - len(data))
    end = LENGTH.size + LENGTH.unpack_from(data)[0]
    if len(data) < end:
        data += _read_exactly(connection, end - len(data))
    return data[LENGTH.size : end]  # the writer never sends unasked: nothing follows


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = connection.recv(min(size, 1 << 20))
        if not chunk:
            raise EOFError("the writer closed the connection")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)
