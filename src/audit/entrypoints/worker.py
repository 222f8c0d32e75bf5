"""The gunicorn worker of `audit serve`: gthread, except that a thread gets a connection
only once its request has arrived.

gunicorn's gthread worker hands each new connection to a thread, which then blocks
reading the request: sixteen clients sending their headers a byte a second, or a few
hundred connections that send nothing, hold every thread and nobody else is answered.
Here the worker's event loop reads the request head (and a body of announced length)
without blocking, next to every other connection it waits on, and a thread only ever
gets a request it can serve at once. A request whose head does not arrive in time gets a
`408`; malformed HTTP gets the API's JSON error body instead of gunicorn's HTML page.
"""

from __future__ import annotations

import contextlib
import errno
import re
import selectors
import time
from functools import partial
from typing import Any

import orjson
from gunicorn.http import errors as http_errors
from gunicorn.workers.gthread import STOP_KEEPALIVE_LINGER, TConn, ThreadWorker

from audit.entrypoints.http.access_log import unparsed_request_record, write_stderr
from audit.entrypoints.http.metrics import count_unparsed_request

# How long a client may take to send a request's head once it started.
HEAD_TIMEOUT = 20.0
# A body of announced length up to this size is read before a thread gets the request;
# a larger one is the application's to refuse (413), from a thread.
BODY_PREREAD_LIMIT = 8 * 1024 * 1024
_RECV_SIZE = 256 * 1024
_END_OF_HEAD = b"\r\n\r\n"
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length[ \t]*:[ \t]*(\d{1,12})[ \t]*\r\n", re.I)
# A head with these goes to a thread as it is: the body's end is not known in advance
# (chunked), or the client waits for `100 Continue` before it sends the body.
_HAND_OVER_AT_HEAD = re.compile(rb"\r\n(transfer-encoding|expect)[ \t]*:", re.I)

# (status, reason, code, message) of the errors gunicorn's parser raises on a request.
_STATUS_OF: list[tuple[type[Exception], int, str, str, str]] = [
    (
        http_errors.LimitRequestLine,
        414,
        "URI Too Long",
        "uri_too_long",
        "the request line is too long",
    ),
    (
        http_errors.LimitRequestHeaders,
        431,
        "Request Header Fields Too Large",
        "request_header_fields_too_large",
        "the request's headers are too large or too many",
    ),
    (
        http_errors.UnsupportedTransferCoding,
        501,
        "Not Implemented",
        "not_implemented",
        "the transfer coding is not supported",
    ),
    (
        http_errors.ExpectationFailed,
        417,
        "Expectation Failed",
        "expectation_failed",
        "the expectation cannot be met",
    ),
    (
        http_errors.ParseException,
        400,
        "Bad Request",
        "bad_request",
        "the request is not valid HTTP/1.1",
    ),
]


_INTERNAL = "the service failed to answer; the error is logged"


def error_bytes(status: int, reason: str, code: str, message: str) -> bytes:
    """A whole HTTP response in the API's error shape, closing the connection."""
    body = orjson.dumps({"error": {"code": code, "message": message}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Connection: close\r\n"
        "Content-Type: application/json\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        "Cache-Control: no-store\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode("latin-1") + body


def _head_complete(buffer: bytearray, limit: int) -> bool:
    """Whether a thread can take the request now: its head is whole and the body it
    announces has arrived (or the head is over the limit, for the parser to refuse)."""
    end = buffer.find(_END_OF_HEAD)
    if end < 0:
        return len(buffer) > limit
    head = bytes(buffer[: end + 2])
    if _HAND_OVER_AT_HEAD.search(head):
        return True
    lengths = _CONTENT_LENGTH.findall(head)
    if len(lengths) != 1:
        return True  # none, or several for the parser to refuse
    length = int(lengths[0])
    return length > BODY_PREREAD_LIMIT or len(buffer) >= end + 4 + length


class AuditWorker(ThreadWorker):  # type: ignore[misc]
    """gthread, with the request read in the event loop before a thread gets it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connections whose request is still arriving: connection -> buffered bytes.
        self._arriving: dict[Any, bytearray] = {}
        self._next_sweep = 0.0
        cfg = self.cfg
        # Over this the parser refuses the head anyway (414/431); it gets it at once.
        self._head_limit = (
            cfg.limit_request_line
            + cfg.limit_request_fields * (cfg.limit_request_field_size + 2)
            + 4
        )

    # A new connection, or a kept-alive one the client writes to again: wait for its
    # request in the event loop.
    def accept(self, listener: Any) -> None:
        try:
            sock, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, sock, addr, listener.getsockname())
        self._await_request(conn, time.monotonic() + self.cfg.keepalive)

    def on_client_socket_readable(self, conn: Any, client: Any) -> None:
        self.keepalived_conns.remove(conn)
        self._await_request(conn, time.monotonic() + self.cfg.keepalive, registered=True)
        self._on_readable(conn, client)

    def _await_request(self, conn: Any, idle_deadline: float, registered: bool = False) -> None:
        conn.timeout = idle_deadline
        conn.started = False
        self._arriving[conn] = bytearray()
        wait = self.poller.modify if registered else self.poller.register
        wait(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))

    def _on_readable(self, conn: Any, client: Any) -> None:
        buffer = self._arriving.get(conn)
        if buffer is None:
            return
        try:
            data = conn.sock.recv(_RECV_SIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._drop(conn)  # the client went away
            return
        if not conn.started:
            conn.started = True
            conn.timeout = time.monotonic() + HEAD_TIMEOUT
        buffer += data
        if _head_complete(buffer, self._head_limit):
            del self._arriving[conn]
            self.poller.unregister(conn.sock)
            conn.early = bytes(buffer)
            conn.data_ready = True
            self.enqueue_req(conn)

    def _drop(self, conn: Any, answer: bytes | None = None) -> None:
        self._arriving.pop(conn, None)
        with contextlib.suppress(OSError, KeyError, ValueError):
            self.poller.unregister(conn.sock)
        if answer is not None:
            with contextlib.suppress(OSError):
                conn.sock.send(answer)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        if not self.alive:
            # Stopping: a request not yet arrived gets a short grace, as kept-alive ones.
            for conn in self._arriving:
                conn.timeout = min(conn.timeout, now + STOP_KEEPALIVE_LINGER)
        elif now < self._next_sweep:
            return
        self._next_sweep = now + 0.5
        for conn in [c for c in self._arriving if c.timeout <= now]:
            timeout = error_bytes(
                408, "Request Timeout", "request_timeout", "the request did not arrive in time"
            )
            self._drop(conn, timeout if conn.started else None)

    # In the thread: the parser reads what the event loop already received first.
    def handle(self, conn: Any) -> Any:
        early = getattr(conn, "early", b"")
        if early:
            conn.early = b""
            conn.init()
            conn.parser.unreader.unread(early)
        return super().handle(conn)

    # After a response: the body the application left unread is drained, so the next
    # request on the connection can be found. A body that cannot be read (a malformed
    # chunk) leaves that unknown: gunicorn would answer a 400 to a request nobody sent,
    # which a client reusing the connection takes for its next answer. Close instead.
    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        try:
            return bool(super()._keepalive_after(conn, keepalive))
        except Exception as exc:
            self.log.debug("closing after an unreadable body: %s", type(exc).__name__)
            return False

    def handle_error(self, req: Any, client: Any, addr: Any, exc: Exception) -> None:
        known = next((row for row in _STATUS_OF if isinstance(exc, row[0])), None)
        client_address = (addr or ("",))[0] or None
        if known is None:
            self.log.exception("error handling a request")
            status, code = 500, "internal_error"
            answer = error_bytes(status, "Internal Server Error", code, _INTERNAL)
        else:
            # The kind of error only: its text quotes the request line, whose query string
            # may hold a secret, and whose bytes are the client's.
            self.log.warning("invalid request from %s: %s", client_address, type(exc).__name__)
            status, code = known[1], known[3]
            answer = error_bytes(*known[1:])
        # As every request the app answers: a line in the access log, and counted.
        with contextlib.suppress(Exception):
            write_stderr(unparsed_request_record(status, client_address, code))
            count_unparsed_request(status)
        with contextlib.suppress(OSError):
            client.sendall(answer)
