"""Times: RFC 3339 in, UTC with six fractional digits out, integer microseconds stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from audit.domain.rules import RFC3339_RE

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def parse_rfc3339(text: str, *, round_up: bool = False) -> datetime:
    """Parse an RFC 3339 time with an offset into an aware UTC datetime, to the microsecond:
    digits beyond the sixth are dropped, or with `round_up` taken to the next microsecond
    when any is not zero (so a bound of a query keeps its side of every stored time).

    Raises ValueError with a short reason when the text is not one.
    """
    match = RFC3339_RE.fullmatch(text)
    if match is None:
        raise ValueError("must be an RFC 3339 time with an offset, e.g. 2026-11-28T10:00:00Z")
    later = False
    fraction_end = match.end(1)
    if fraction_end - match.start(1) > 7:  # "." and more than six digits
        later = round_up and text[match.start(1) + 7 : fraction_end].strip("0") != ""
        text = text[: match.start(1) + 7] + text[fraction_end:]
    try:
        moment = datetime.fromisoformat(text.upper()).astimezone(UTC)
        return moment + _MICRO if later else moment
    except (ValueError, OverflowError) as exc:
        raise ValueError(f"is not a valid time: {exc}") from None


# "00" to "99", for the two-digit fields of format_time.
_TWO_DIGITS = tuple(f"{n:02d}" for n in range(100))


def format_time(moment: datetime) -> str:
    """RFC 3339 in UTC with exactly six fractional digits, ending in Z."""
    # Twice for every event written out. A stored time is UTC already, and pieces from a
    # table cost much less than an f-string (bench/README.md; tests/unit/test_time.py
    # holds the two to the same text).
    u = moment if moment.tzinfo is UTC else moment.astimezone(UTC)
    year = u.year
    two = _TWO_DIGITS
    return "".join(
        (
            str(year) if year >= 1000 else f"{year:04d}",
            "-",
            two[u.month],
            "-",
            two[u.day],
            "T",
            two[u.hour],
            ":",
            two[u.minute],
            ":",
            two[u.second],
            ".",
            f"{u.microsecond:06d}",
            "Z",
        )
    )


# format_micros's cache: the text of each whole second it wrote lately, up to "." included.
_SECOND_TEXTS: dict[int, str] = {}
_SECOND_TEXTS_MAX = 4096


def format_micros(micros: int) -> str:
    """format_time(from_micros(micros)), for times read as stored: many share a second
    (a batch, a busy moment), whose text is written once and then looked up.
    """
    second, fraction = divmod(micros, 1_000_000)
    text = _SECOND_TEXTS.get(second)
    if text is None:
        if len(_SECOND_TEXTS) >= _SECOND_TEXTS_MAX:
            _SECOND_TEXTS.clear()
        text = _SECOND_TEXTS[second] = format_time(from_micros(second * 1_000_000))[:-7]
    # The six digits as a slice of 1,000,000 + fraction: a quarter faster than `:06d`,
    # and a page writes two a row.
    return text + str(fraction + 1_000_000)[1:] + "Z"


def to_micros(moment: datetime) -> int:
    return (moment - EPOCH) // _MICRO


def from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(0, 0, micros)  # positional: cheaper than the keyword
