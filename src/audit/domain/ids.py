"""Event ids the service makes when a client sends none: time-ordered and unique."""

from __future__ import annotations

import secrets
import threading
import time
import uuid

_lock = threading.Lock()
_last = (0, 0)  # (milliseconds, 12-bit counter) of the last id made in this process


def new_event_id() -> str:
    """A UUIDv7 (RFC 9562): 48 bits of Unix milliseconds, a 12-bit counter, random bits.

    Within one millisecond the counter (seeded at random) counts up, so ids made in one
    process sort in the order they were made (RFC 9562 section 6.2, method 1).
    """
    global _last
    with _lock:
        millis = time.time_ns() // 1_000_000
        last_millis, last_counter = _last
        if millis <= last_millis:
            millis, counter = last_millis, last_counter + 1
            if counter > 0xFFF:
                millis, counter = last_millis + 1, secrets.randbits(11)
        else:
            counter = secrets.randbits(11)  # leaves room to count up
        _last = (millis, counter)
    value = (millis & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76  # version
    value |= counter << 64
    value |= 0b10 << 62  # variant
    value |= secrets.randbits(62)
    return str(uuid.UUID(int=value))
