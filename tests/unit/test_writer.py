"""The writer process's protocol: workers hand it Submissions over a Unix socket, it
commits them in groups and answers each with the places of its events."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

from audit.adapters.clock import FixedClock
from audit.adapters.memory import InMemoryUnitOfWorkFactory
from audit.adapters.writer import WriterClient, listen, serve
from audit.adapters.writer_wire import (
    decode_answer,
    decode_submission,
    encode_answer,
    encode_submission,
)
from audit.application.querying import VerifyChain
from audit.application.recording import Outcome, RecordEvents, Submission
from audit.domain.errors import Conflict, StaleCredentials, StorageUnavailable
from audit.domain.events import CanonicalMetadata, NewEvent, Party, Source, canonical_metadata
from audit.domain.validation import parse_batch

CLOCK = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))


def _event(n: int, **extra: object) -> NewEvent:
    [parsed] = parse_batch(
        [
            {
                "id": f"e-{n}",
                "action": "doc.read",
                "actor": {"id": f"u-{n % 3}", "type": "user", "name": "Ann"},
                "targets": [{"id": "d", "type": "doc"}],
                "source": {"ip": "192.0.2.1"},
                "metadata": {"n": n, "tags": ["a", {"b": 1.5}]},
                **extra,
            }
        ]
    )
    return parsed


def test_a_submission_crosses_the_socket_unchanged() -> None:
    record = RecordEvents(InMemoryUnitOfWorkFactory(), CLOCK)
    events = [_event(1), NewEvent(action="a", actor=Party("u"), source=Source(None, "ua"))]
    submission = record.submit("acme", events)
    kind, body = encode_submission(submission)[:1], encode_submission(submission)[1:]
    assert kind == b"S"
    crossed = decode_submission(body)
    assert crossed == submission
    checked_at = record.submit("acme", events, epoch=7)
    assert decode_submission(encode_submission(checked_at)[1:]).epoch == 7
    # The canonical bytes validation made cross too, so the writer makes none again.
    assert all(isinstance(e.metadata, CanonicalMetadata) for e in crossed.events)
    assert [canonical_metadata(e) for e in crossed.events] == [
        canonical_metadata(e) for e in submission.events
    ]


def test_the_compact_answer_rebuilds_every_recorded_event() -> None:
    record = RecordEvents(InMemoryUnitOfWorkFactory(), CLOCK)
    record("acme", [_event(0)])  # stored before: answered as the whole Event
    fresh = record.submit("acme", [_event(n) for n in range(3)] + [_event(1), _event(9)])
    other = record.submit("acme", [_event(9)])  # the same event, earlier in the group
    outcomes = record.commit_group([other, fresh])
    for submission, outcome in zip([other, fresh], outcomes, strict=True):
        assert not isinstance(outcome, BaseException)
        sent = encode_answer(submission, outcome)
        assert decode_answer(submission, sent[1:]) == outcome
    assert [r.created for r in outcomes[1]] == [False, True, True, False, False]  # type: ignore[union-attr]


class _Writer:
    """A writer thread on a socket in a test's folder."""

    def __init__(self, path: Path, record: RecordEvents, delay: float) -> None:
        self.record = record
        self.sizes: list[int] = []
        self._delay = delay
        self._stopping = threading.Event()
        self._thread = threading.Thread(
            target=serve, args=(listen(str(path)), self._commit_group, self._stopping)
        )
        self._thread.start()

    def _commit_group(self, group: Sequence[Submission]) -> list[Outcome]:
        self.sizes.append(len(group))
        if self._delay:
            threading.Event().wait(self._delay)
        return self.record.commit_group(group)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive()


@pytest.fixture
def writer(tmp_path: Path) -> Iterator[Callable[..., _Writer]]:
    """Start writers on demand; every one is stopped at the end."""
    started: list[_Writer] = []

    def start(record: RecordEvents | None = None, delay: float = 0.0) -> _Writer:
        record = record or RecordEvents(InMemoryUnitOfWorkFactory(), CLOCK)
        started.append(_Writer(tmp_path / "writer.sock", record, delay))
        return started[-1]

    yield start
    for one in started:
        one.stop()


def _client(tmp_path: Path) -> WriterClient:
    submitter = RecordEvents(InMemoryUnitOfWorkFactory(), CLOCK)  # submit() only
    return WriterClient(str(tmp_path / "writer.sock"), submitter, timeout_s=10)


def test_concurrent_requests_share_groups_and_make_one_chain(
    writer: Callable[..., _Writer], tmp_path: Path
) -> None:
    uow = InMemoryUnitOfWorkFactory()
    started = writer(RecordEvents(uow, CLOCK), delay=0.005)
    client = _client(tmp_path)

    def send(worker: int) -> list[int]:
        return [client("acme", [_event(worker * 100 + i)])[0].event.seq for i in range(25)]

    with ThreadPoolExecutor(8) as pool:
        seqs = [seq for batch in pool.map(send, range(8)) for seq in batch]
    assert sorted(seqs) == list(range(1, 201))
    assert max(started.sizes) > 1  # requests of several threads committed together
    assert sum(started.sizes) == 200
    assert VerifyChain(uow)("acme").valid


def test_a_conflict_reaches_the_caller_and_the_group_goes_on(
    writer: Callable[..., _Writer], tmp_path: Path
) -> None:
    writer()
    client = _client(tmp_path)
    [first] = client("acme", [_event(1)])
    assert first.created
    [again] = client("acme", [_event(1)])
    assert not again.created
    assert again.event == first.event
    with pytest.raises(Conflict):
        client("acme", [_event(1, action="doc.delete")])
    assert client("acme", [_event(2)])[0].event.seq == 2


def test_a_request_checked_before_a_revocation_is_refused_by_the_writer(
    writer: Callable[..., _Writer], tmp_path: Path
) -> None:
    uow = InMemoryUnitOfWorkFactory()
    writer(RecordEvents(uow, CLOCK))
    client = _client(tmp_path)
    epoch = uow.store.revocation_epoch
    assert client("acme", [_event(1)], epoch)[0].created
    with uow(write=True) as work:
        work.tokens.revoke("tok_gone", CLOCK.now())
        work.commit()
    with pytest.raises(StaleCredentials):
        client("acme", [_event(2)], epoch)
    assert client("acme", [_event(2)], epoch + 1)[0].event.seq == 2


def test_no_writer_is_a_503_and_a_new_one_is_found(
    writer: Callable[..., _Writer], tmp_path: Path
) -> None:
    client = _client(tmp_path)
    with pytest.raises(StorageUnavailable) as refused:
        client("acme", [_event(1)])
    assert refused.value.retry_after == 1
    first = writer()
    assert client("acme", [_event(1)])[0].created
    # The writer goes (as when it dies) and another takes its place: the client's
    # connection to the first is found closed before anything is sent on it.
    first.stop()
    writer(first.record)
    assert client("acme", [_event(2)])[0].event.seq == 2


def test_a_writer_that_does_not_answer_is_a_503_in_time(tmp_path: Path) -> None:
    # A socket that takes the connection and the request and never answers (a hung
    # writer): the client gives up after its time limit, the kernel's.
    silent = listen(str(tmp_path / "writer.sock"))
    try:
        submitter = RecordEvents(InMemoryUnitOfWorkFactory(), CLOCK)
        client = WriterClient(str(tmp_path / "writer.sock"), submitter, timeout_s=0.3)
        started = time.monotonic()
        with pytest.raises(StorageUnavailable):
            client("acme", [_event(1)])
        assert 0.25 <= time.monotonic() - started < 5
    finally:
        silent.close()
