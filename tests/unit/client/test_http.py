"""The client's backoff and Retry-After parsing."""

from __future__ import annotations

import email.utils
import time

from audit.client.http import backoff, parse_retry_after


def test_retry_after_takes_seconds_or_an_http_date() -> None:
    assert parse_retry_after("7") == 7.0
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 55 <= (parse_retry_after(in_a_minute) or 0) <= 61
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


def test_backoff_is_full_jitter_capped_and_never_below_retry_after() -> None:
    waits = [backoff(3, 0.1, 10.0, None) for _ in range(500)]
    assert all(0 <= w <= 0.8 for w in waits)
    assert max(waits) - min(waits) > 0.4  # spread over the whole range, not a fixed step
    assert all(backoff(20, 0.1, 10.0, None) <= 10.0 for _ in range(100))
    assert all(backoff(0, 0.1, 10.0, 2.0) >= 2.0 for _ in range(100))
