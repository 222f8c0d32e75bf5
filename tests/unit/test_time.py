"""Times: RFC 3339 in, UTC with exactly six fractional digits and Z out."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from audit.domain import time as audit_time
from audit.domain.time import format_micros, format_time, from_micros, parse_rfc3339, to_micros

RETURNED_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


def tz(hours: int, minutes: int = 0, seconds: int = 0) -> timezone:
    sign = -1 if hours < 0 else 1
    return timezone(sign * timedelta(hours=abs(hours), minutes=minutes, seconds=seconds))


@pytest.mark.parametrize(
    ("moment", "text"),
    [
        (datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC), "2026-11-28T10:00:00.123456Z"),
        (datetime(2026, 11, 28, 10, tzinfo=UTC), "2026-11-28T10:00:00.000000Z"),
        (datetime(2026, 11, 28, 10, 0, 0, 1, tzinfo=UTC), "2026-11-28T10:00:00.000001Z"),
        (datetime(2026, 11, 28, 12, tzinfo=tz(2)), "2026-11-28T10:00:00.000000Z"),
        (datetime(2026, 11, 28, 15, 45, tzinfo=tz(5, 45)), "2026-11-28T10:00:00.000000Z"),
        (datetime(2026, 11, 28, 0, 30, tzinfo=tz(-9, 30)), "2026-11-28T10:00:00.000000Z"),
        (datetime(2027, 1, 1, 2, 0, tzinfo=tz(14)), "2026-12-31T12:00:00.000000Z"),
        (datetime(2026, 12, 31, 23, 0, tzinfo=tz(-12)), "2027-01-01T11:00:00.000000Z"),
        (datetime(2026, 1, 1, 1, 0, 30, tzinfo=tz(1, 0, 30)), "2026-01-01T00:00:00.000000Z"),
        (datetime(2024, 3, 1, 1, 0, tzinfo=tz(3)), "2024-02-29T22:00:00.000000Z"),
        (datetime(999, 1, 2, 3, 4, 5, 6, tzinfo=UTC), "0999-01-02T03:04:05.000006Z"),
        (datetime(45, 6, 7, tzinfo=UTC), "0045-06-07T00:00:00.000000Z"),
        (datetime(1, 1, 1, tzinfo=UTC), "0001-01-01T00:00:00.000000Z"),
        (datetime(1, 1, 1, 23, tzinfo=tz(-1)), "0001-01-02T00:00:00.000000Z"),
        (datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), "9999-12-31T23:59:59.999999Z"),
    ],
)
def test_format_time_gives_utc_with_six_digits_and_z(moment: datetime, text: str) -> None:
    assert format_time(moment) == text
    assert RETURNED_TIME.match(text)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T10:00:00Z",
        "2026-11-28T12:00:00+02:00",
        "2026-11-28T04:15:00-05:45",
        "2026-11-28T10:00:00.000000Z",
        "2026-11-28T10:00:00.000000+00:00",
        "2026-11-28T10:00:00-00:00",
    ],
)
def test_the_same_instant_in_any_offset_parses_equal(text: str) -> None:
    moment = parse_rfc3339(text)
    assert moment == datetime(2026, 11, 28, 10, tzinfo=UTC)
    assert moment.utcoffset() == timedelta(0)
    assert format_time(moment) == "2026-11-28T10:00:00.000000Z"


@pytest.mark.parametrize(
    ("fraction", "micros"),
    [
        ("", 0),
        (".1", 100000),
        (".12", 120000),
        (".123", 123000),
        (".000001", 1),
        (".123456", 123456),
        (".1234567", 123456),
        (".123456789", 123456),
        (".999999999", 999999),
        (".1234567890123456789", 123456),
    ],
)
def test_fractional_seconds_keep_microseconds(fraction: str, micros: int) -> None:
    moment = parse_rfc3339(f"2026-11-28T10:00:59{fraction}Z")
    assert (moment.second, moment.microsecond) == (59, micros)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T10:00:00",
        "2026-11-28 10:00:00Z",
        "2026-11-28T10:00:00+02",
        "2026-11-31T10:00:00Z",
        "2100-02-29T10:00:00Z",
        "2026-11-28T10:00:61Z",
        "2026-11-28T10:00:00+02:60",  # offset minutes are 00-59
        "2026-11-28T10:00:00-00:99",
        "2026-11-28T10:00:00+24:00",  # offset hours are 00-23
        "2026-11-28T10:00:00.Z",
        "2026-11-28T10:00:00.\u0661Z",  # a fraction in another script's digits
        "9999-12-31T23:00:00-01:00",  # after year 9999 in UTC
        "\u0662\u0660\u0662\u0666-11-28T10:00:00Z",  # Arabic-Indic digits
        "2026-11-28T10:00:00Z\n",
    ],
)
def test_parse_refuses_what_is_not_an_rfc3339_instant(text: str) -> None:
    with pytest.raises(ValueError, match=r"\S"):
        parse_rfc3339(text)


@pytest.mark.parametrize(
    ("fraction", "micros"),
    [
        ("", 0),
        (".5", 500000),
        (".5000000000", 500000),
        (".5000001", 500001),
        (".5000005", 500001),
        (".000000000000000000001", 1),
        (".9999991", 999999 + 1),  # the next second
    ],
)
def test_a_bound_rounds_up_to_the_next_microsecond(fraction: str, micros: int) -> None:
    """A query's since and until keep their side of every stored time: an event at
    .500000 is before .5000005, so since excludes it and until includes it."""
    moment = parse_rfc3339(f"2026-11-28T10:00:59{fraction}Z", round_up=True)
    start = datetime(2026, 11, 28, 10, 0, 59, tzinfo=UTC)
    assert moment == start + timedelta(microseconds=micros)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ],
)
def test_times_round_trip_through_text_and_microseconds(moment: datetime) -> None:
    assert parse_rfc3339(format_time(moment)) == moment
    assert from_micros(to_micros(moment)) == moment


def test_microseconds_count_from_the_unix_epoch() -> None:
    assert to_micros(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC)) == 1_000_005
    assert to_micros(datetime(1970, 1, 1, 1, 0, 0, tzinfo=tz(1))) == 0
    assert to_micros(datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)) == -1
    assert from_micros(1_764_324_000_000_000) == datetime(2025, 11, 28, 10, tzinfo=UTC)


def _format_time_before(moment: datetime) -> str:
    """format_time as it was written first: the fast one must say exactly the same."""
    u = moment.astimezone(UTC)
    return (
        f"{u.year:04d}-{u.month:02d}-{u.day:02d}T{u.hour:02d}:{u.minute:02d}:{u.second:02d}"
        f".{u.microsecond:06d}Z"
    )


# Any fixed offset that datetime allows (strictly within a day, to the microsecond), and UTC
# itself, which format_time takes a shorter way for.
offsets = st.just(UTC) | st.builds(
    timezone,
    st.timedeltas(
        min_value=timedelta(hours=-24) + timedelta(microseconds=1),
        max_value=timedelta(hours=24) - timedelta(microseconds=1),
    ),
)


@settings(max_examples=2000, deadline=None)
@given(st.datetimes(timezones=offsets))
def test_format_time_is_the_first_formula_for_any_aware_time(moment: datetime) -> None:
    try:
        expected = _format_time_before(moment)
    except OverflowError:  # year 0 or 10000 in UTC: refused by both
        with pytest.raises(OverflowError):
            format_time(moment)
        return
    assert format_time(moment) == expected


@settings(max_examples=500, deadline=None)
@given(
    st.integers(
        to_micros(datetime.min.replace(tzinfo=UTC)), to_micros(datetime.max.replace(tzinfo=UTC))
    )
)
def test_format_time_of_any_stored_time(micros: int) -> None:
    moment = from_micros(micros)
    assert moment.tzinfo is UTC
    assert format_time(moment) == _format_time_before(moment)
    assert to_micros(moment) == micros


@settings(max_examples=500, deadline=None)
@given(
    st.integers(
        to_micros(datetime.min.replace(tzinfo=UTC)), to_micros(datetime.max.replace(tzinfo=UTC))
    ),
    st.integers(0, 999_999),
)
def test_format_micros_is_format_time_of_the_stored_time(micros: int, other: int) -> None:
    # Twice, and another time in the same second: the second's text is then looked up.
    same_second = micros - micros % 1_000_000 + other
    for us in (micros, micros, same_second):
        assert format_micros(us) == format_time(from_micros(us))


def test_format_micros_forgets_old_seconds_and_stays_right(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(audit_time, "_SECOND_TEXTS_MAX", 3)
    audit_time._SECOND_TEXTS.clear()
    for second in range(10):
        us = second * 1_000_000 + 7
        assert format_micros(us) == format_time(from_micros(us))
        assert len(audit_time._SECOND_TEXTS) <= 3
