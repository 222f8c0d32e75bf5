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
# RFC 3339 date-time; the offset is required (a time without one is ambiguous).
RFC3339_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})$"
RFC3339_RE = re.compile(RFC3339_PATTERN)

PAGE_LIMIT_DEFAULT = 50
PAGE_LIMIT_MAX = 1000
MAX_BODY_BYTES = 5 * 1024 * 1024
