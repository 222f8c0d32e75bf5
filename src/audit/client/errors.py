"""What the client raises, and what it hands to `on_error`."""

from __future__ import annotations

from typing import Any


class AuditError(Exception):
    """The service refused a request, or could not be reached in time.

    `status` is the HTTP status (None when no answer came), `code` and `message` come from
    the service's JSON error body, `details` lists its problems (for a 422 each names the
    `index` of its event in the batch sent).
    """

    def __init__(
        self,
        status: int | None,
        code: str,
        message: str,
        details: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status or 'no answer'} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or []
        self.retry_after = retry_after


class Unreachable(AuditError):
    """No usable answer before the retry deadline: connection errors, timeouts, 429, 503."""

    def __init__(self, message: str, last: AuditError | None = None) -> None:
        status = last.status if last else None
        code = last.code if last else "unreachable"
        super().__init__(status, code, message, last.details if last else None)
        self.last = last


class QueueFull(Exception):
    """record() waited `block_for` seconds and the queue still had no room."""


class ClientClosed(RuntimeError):
    """record() or flush() on a client that was closed."""
