"""Times: RFC 3339 in, UTC with six fractional digits out, integer microseconds stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from audit.domain.rules import RFC3339_RE

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def parse_rfc3339(text: str) -> datetime:
    """Parse an RFC 3339 time with an offset into an aware UTC datetime.

    Raises ValueError with a short reason when the text is not one.
    """
    if not RFC3339_RE.fullmatch(text):
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2026-11-28T10:00:00Z")
    try:
        return datetime.fromisoformat(text.upper()).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"is not a valid time: {exc}") from None


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits, ending in Z."""
    u = moment.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond:06d}Z"
    )


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)
