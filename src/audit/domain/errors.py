"""Errors the domain and the use cases raise; the entrypoints map them to statuses."""

from __future__ import annotations

import attrs


@attrs.frozen
class Problem:
    """One thing wrong with an event: the field's dotted path and why."""

    field: str
    message: str
    index: int | None = None


class AuditError(Exception):
    """Base of every error the service reports to a client."""

    code = "error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class MalformedJson(AuditError):
    code = "malformed_json"


class InvalidParameter(AuditError):
    code = "invalid_parameter"


class ValidationFailed(AuditError):
    code = "validation_error"

    def __init__(self, problems: list[Problem], message: str = "the event is invalid") -> None:
        super().__init__(message)
        self.problems = problems


class PayloadTooLarge(AuditError):
    code = "payload_too_large"


class Forbidden(AuditError):
    """The caller may not do this, whoever they are in their tenant."""

    code = "forbidden"


class StaleCredentials(AuditError):
    """The caller was authenticated before a token revocation that the operation's own
    transaction sees, so nothing was done: authenticate again before trying once more.
    Only an operation given the epoch its caller was authenticated at raises it."""

    code = "unauthorized"


class Conflict(AuditError):
    code = "conflict"


class NotFound(AuditError):
    code = "not_found"


class StorageUnavailable(AuditError):
    """Storage cannot take the operation now; nothing was half-written.

    `reason` is one word for operators' metrics (busy, disk_full, read_only, unreachable,
    exhausted); the message is for the client.
    """

    code = "unavailable"
    REASONS = ("busy", "disk_full", "read_only", "unreachable", "exhausted", "unavailable")

    def __init__(self, message: str, retry_after: int = 1, reason: str = "unavailable") -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.reason = reason if reason in self.REASONS else "unavailable"


class LogDamaged(AuditError):
    """The stored log was changed outside the service (a row removed, or edited into
    something that cannot be read) so that the answer cannot be made: nothing is signed
    or served from it. `audit verify` names the first broken seq."""

    code = "log_damaged"


class SigningKeyChanged(AuditError):
    """The store's log was signed with another key than the one configured."""

    code = "signing_key_changed"
