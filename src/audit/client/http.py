"""HTTP for the client: urllib3, with retries by exponential backoff and full jitter.

Only what may succeed later is retried: connection errors, timeouts, 429, and 502-504
(503 is the service saying storage cannot take writes now; 502 and 504 come from a proxy
in front of a restarting service). A `Retry-After` is a floor on the wait. Every other
answer goes back to the caller at once.
"""

from __future__ import annotations

import email.utils
import http.client
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import orjson
import urllib3
from urllib3.exceptions import ProtocolError, ProxyError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from audit.client.errors import AuditError, Unreachable

RETRY_STATUSES = frozenset({429, 502, 503, 504})
# NewConnectionError (refused, unresolvable) is an Urllib3Timeout; a reset is a ProtocolError.
TRANSIENT_ERRORS = (Urllib3Timeout, ProtocolError, ProxyError, http.client.HTTPException, OSError)


@dataclass(frozen=True)
class Reply:
    """One answer of the service."""

    status: int
    headers: Mapping[str, str]
    data: bytes

    def json(self) -> Any:
        return orjson.loads(self.data)

    def error(self) -> AuditError:
        """The answer as an AuditError, from the service's JSON error body when it has one."""
        retry_after = parse_retry_after(self.headers.get("Retry-After"))
        try:
            body = orjson.loads(self.data)["error"]
            code, message = str(body["code"]), str(body["message"])
            details = body.get("details") or []
        except (orjson.JSONDecodeError, KeyError, TypeError):
            text = self.data[:200].decode("utf-8", "replace")
            return AuditError(self.status, f"http_{self.status}", text, None, retry_after)
        return AuditError(self.status, code, message, list(details), retry_after)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(attempt: int, base: float, cap: float, retry_after: float | None) -> float:
    """Full jitter (uniform up to base * 2^attempt, capped), never below Retry-After."""
    wait = random.uniform(0, min(cap, base * 2**attempt))
    return max(wait, retry_after) if retry_after is not None else wait


class Transport:
    """Requests to one service with one token; thread-safe (urllib3's PoolManager is)."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float,
        retry_for: float,
        backoff_base: float = 0.05,
        backoff_max: float = 10.0,
        stop: threading.Event | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.retry_for = retry_for
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._stop = stop or threading.Event()
        self._headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            "User-Agent": "audit-log-service-client",
        }
        self._pool = urllib3.PoolManager(
            maxsize=8,
            retries=False,
            timeout=urllib3.Timeout(connect=min(timeout, 10.0), read=timeout),
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | None = None,
        query: Mapping[str, str] | None = None,
        retry_for: float | None = None,
    ) -> Reply:
        """Send until an answer that is not worth retrying, or raise Unreachable once the
        next wait would end after `retry_for` seconds (or the client is stopping)."""
        url = self.base_url + path + (f"?{urlencode(query)}" if query else "")
        headers = self._headers
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        budget = self.retry_for if retry_for is None else retry_for
        deadline = time.monotonic() + budget
        attempt = 0
        while True:
            retry_after = None
            try:
                answer = self._pool.request(method, url, body=body, headers=headers)
            except TRANSIENT_ERRORS as exc:
                last = AuditError(None, "unreachable", f"{type(exc).__name__}: {exc}")
            else:
                reply = Reply(answer.status, answer.headers, answer.data)
                if reply.status not in RETRY_STATUSES:
                    return reply
                last = reply.error()
                retry_after = last.retry_after
            wait = backoff(attempt, self._backoff_base, self._backoff_max, retry_after)
            attempt += 1
            if time.monotonic() + wait > deadline:
                raise Unreachable(
                    f"{method} {path}: no answer to keep after {attempt} attempts "
                    f"in {budget:g}s; last: {last}",
                    last,
                )
            if self._stop.wait(wait):
                raise Unreachable(f"{method} {path}: the client was closed while retrying", last)

    def close(self) -> None:
        self._pool.clear()
