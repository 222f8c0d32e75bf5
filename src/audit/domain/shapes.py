"""The event's shape, declared once: its fields, in order, as a client sends them and as
the service returns them, with their rules (from `rules`) and what they mean.

To add a field to the event, declare it here, then make the places that follow it
agree; tests/unit/test_event_shape.py fails until every one does:

- derived from this: the OpenAPI schemas `NewEvent`, `NewParty`, `NewSource`, `Event`,
  `Party`, `Source` (entrypoints/http/openapi/schemas.py), and through them the
  checks that every HTTP response of the test suite matches; the CSV export's columns
  (`entrypoints/formats.py`);
- written by hand for speed, held to this by tests: `rules.EVENT_FIELDS` (and
  `PARTY_FIELDS`, `SOURCE_FIELDS`) and the parser (`validation.py`, also checked by
  generating events from the schema: tests/unit/test_request_schema.py); the classes and
  `to_document` of `events.py`, with `NewEvent.fingerprint`; the row mapping
  (`adapters/sql/rows.py`: `event_row`, `EVENT_COLUMNS`, `row_event`, `row_json`), the
  table (`adapters/sql/schema.py`) and a migration;
- by hand and not checked here: the viewer's event page
  (`entrypoints/http/ui/templates/ui/event.html`) shows each field under its own label.
"""

from __future__ import annotations

from enum import Enum

import attrs

from audit.domain import rules


class Kind(Enum):
    """What a field holds; each kind has one JSON Schema, in and out."""

    IDENTIFIER = "identifier"  # rules.ID_PATTERN
    TEXT = "text"  # free Unicode text: no NUL, no lone surrogate
    IP = "ip"  # an IPv4 or IPv6 address
    TIME = "time"  # RFC 3339: any offset in, UTC with six fractional digits out
    CHOICE = "choice"  # one of `choices`
    COUNT = "count"  # an integer from `minimum`
    HASH = "hash"  # 64 lowercase hex digits
    TENANT = "tenant"  # a tenant's name, from the token
    OBJECT = "object"  # a nested `shape`
    LIST = "list"  # a list of `shape`, at most `max_items`
    JSON_OBJECT = "json-object"  # any JSON object within the metadata rules


class Sent(Enum):
    """Whether a client sends a field."""

    REQUIRED = "required"
    OPTIONAL = "optional"  # absent and null are the same
    NEVER = "never"  # the service fills it in


@attrs.frozen
class Field:
    """One field of a shape: its JSON name, what it holds, its limits and its meaning."""

    name: str
    kind: Kind
    description: str = ""
    sent: Sent = Sent.OPTIONAL
    # Whether the stored form may hold null (it always holds the key).
    nullable: bool = False
    min_length: int = 1
    max_length: int | None = None
    choices: tuple[str, ...] = ()
    default: str | None = None
    minimum: int = 0
    max_items: int | None = None
    shape: Shape | None = None
    example: str | None = None


@attrs.frozen
class Shape:
    """An object's fields, in the order the service writes them; no other key is allowed."""

    name: str
    description: str
    fields: tuple[Field, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @property
    def sent_names(self) -> frozenset[str]:
        return frozenset(f.name for f in self.fields if f.sent is not Sent.NEVER)

    def field(self, name: str) -> Field:
        return next(f for f in self.fields if f.name == name)


PARTY = Shape(
    "Party",
    "Who acted, or what was acted on: an actor or a target.",
    (
        Field(
            "id",
            Kind.TEXT,
            "Its id in the client's system.",
            sent=Sent.REQUIRED,
            max_length=rules.PARTY_ID_MAX,
        ),
        Field(
            "type",
            Kind.TEXT,
            "What it is, e.g. `user`, `service`, `document`.",
            nullable=True,
            max_length=rules.PARTY_TYPE_MAX,
        ),
        Field("name", Kind.TEXT, "A name to show.", nullable=True, max_length=rules.PARTY_NAME_MAX),
    ),
)

SOURCE = Shape(
    "Source",
    "Where the action came from.",
    (
        Field(
            "ip",
            Kind.IP,
            "An IPv4 or IPv6 address.",
            nullable=True,
            max_length=rules.IP_MAX,
        ),
        Field(
            "user_agent",
            Kind.TEXT,
            "The client's User-Agent.",
            nullable=True,
            min_length=0,
            max_length=rules.USER_AGENT_MAX,
        ),
    ),
)

EVENT = Shape(
    "Event",
    "An audit event: who did what to what, when, with what outcome, from where.",
    (
        Field(
            "id",
            Kind.IDENTIFIER,
            "Makes retries safe; absent, the service makes a UUIDv7.",
            max_length=rules.ID_MAX,
        ),
        Field("seq", Kind.COUNT, "Its place in the tenant's log, from 1.", Sent.NEVER, minimum=1),
        Field("tenant", Kind.TENANT, "Whose log: from the token, never the body.", Sent.NEVER),
        Field(
            "action",
            Kind.IDENTIFIER,
            "What was done, conventionally `resource.verb`.",
            sent=Sent.REQUIRED,
            max_length=rules.ACTION_MAX,
            example="document.update",
        ),
        Field("actor", Kind.OBJECT, "Who did it.", sent=Sent.REQUIRED, shape=PARTY),
        Field(
            "targets",
            Kind.LIST,
            "What it was done to.",
            shape=PARTY,
            max_items=rules.MAX_TARGETS,
        ),
        Field(
            "outcome",
            Kind.CHOICE,
            "How it ended.",
            choices=rules.OUTCOMES,
            default=rules.DEFAULT_OUTCOME,
        ),
        Field("occurred_at", Kind.TIME, "When it happened; absent: when the service got it."),
        Field("received_at", Kind.TIME, "When the service got it.", Sent.NEVER),
        Field("source", Kind.OBJECT, "Where it came from.", shape=SOURCE),
        Field(
            "description",
            Kind.TEXT,
            "What happened, for people.",
            nullable=True,
            min_length=0,
            max_length=rules.DESCRIPTION_MAX,
        ),
        Field("metadata", Kind.JSON_OBJECT, "Anything else, as a JSON object."),
        Field(
            "prev_hash",
            Kind.HASH,
            "The hash of the event before it (64 zeros for the first).",
            Sent.NEVER,
        ),
        Field(
            "hash",
            Kind.HASH,
            "hex(SHA-256(unhex(prev_hash) || RFC 8785 of the event less its hashes)).",
            Sent.NEVER,
        ),
    ),
)
