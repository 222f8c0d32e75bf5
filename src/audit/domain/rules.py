"""The event rules, in one place: validation and the OpenAPI document both read them."""

from __future__ import annotations

import re

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
ACTION_PATTERN = ID_PATTERN
ID_MAX = 128
ACTION_MAX = 128
PARTY_ID_MAX = 256
PARTY_TYPE_MAX = 128
PARTY_NAME_MAX = 256
USER_AGENT_MAX = 1024
IP_MAX = 64  # the longest IPv6 text with a zone id fits
TIME_MAX = 64
DESCRIPTION_MAX = 1024
MAX_TARGETS = 32
METADATA_MAX_BYTES = 16 * 1024
METADATA_MAX_DEPTH = 32
MAX_BATCH = 1000
MAX_SAFE_INTEGER = 2**53 - 1
OUTCOMES = ("success", "failure", "unknown")
DEFAULT_OUTCOME = "success"

EVENT_FIELDS = frozenset(
    {
        "id",
        "action",
        "actor",
        "targets",
        "occurred_at",
        "outcome",
        "source",
        "description",
        "metadata",
    }
)
PARTY_FIELDS = frozenset({"id", "type", "name"})
SOURCE_FIELDS = frozenset({"ip", "user_agent"})

ID_RE = re.compile(ID_PATTERN)
# RFC 3339 date-time; the offset is required (a time without one is ambiguous), its hours
# 00-23 and minutes 00-59. Any number of fractional digits (the RFC sets no limit); times
# are kept to the microsecond. ASCII digits only: Python's \d also takes other scripts'.
RFC3339_PATTERN = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
RFC3339_RE = re.compile(RFC3339_PATTERN)

PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 1000
MAX_BODY_BYTES = 5 * 1024 * 1024
