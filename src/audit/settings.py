"""The service's settings: one frozen object, built once from the environment and the
command line, and handed to the container (which feeds its `config` from it).

To add a setting, add ONE line to `Settings`:

    auth_failure_limit: int = variable("AUDIT_AUTH_FAILURE_LIMIT", 100, int)

`Settings.from_env` then reads it (an empty variable counts as unset), the command line
can override it (`Settings.from_env(auth_failure_limit=5)`), and the container sees it as
`config.auth_failure_limit`. A setting with no environment variable is a plain attrs
attribute with a default. Document each variable in the README's settings table.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from audit.domain import rules
from audit.domain.errors import AuditError

T = TypeVar("T")

MEMORY_URL = "memory://"
DEFAULT_DATABASE_URL = "sqlite:///audit.db"
DEFAULT_ORIGIN = "localhost/audit"
DEFAULT_SIGNING_KEY_FILE = "audit-signing.key"

_ENV = "audit_env"
_PARSE = "audit_parse"


class SettingsError(AuditError):
    """A setting has a value the service cannot use."""

    code = "invalid_settings"


def variable(name: str, default: T, parse: Callable[[str], T] | None = None) -> T:
    """A setting read from the environment variable `name` (parsed by `parse`, else kept
    as the string), `default` when the variable is unset or empty."""
    return attrs.field(default=default, metadata={_ENV: name, _PARSE: parse or str})


def _key_beside(database_url: str) -> str:
    """The default key file: `audit-signing.key` in the SQLite database's folder."""
    scheme, _, rest = database_url.partition(":///")
    if scheme in ("sqlite", "sqlite+pysqlite") and rest and not rest.startswith(":memory:"):
        return str(Path(rest.partition("?")[0]).parent / DEFAULT_SIGNING_KEY_FILE)
    return DEFAULT_SIGNING_KEY_FILE


def _positive(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if value <= 0:
        raise ValueError(f"{attribute.name} must be a positive number, not {value}")


@attrs.frozen(kw_only=True)
class Settings:
    """Everything configurable about one process of the service."""

    database_url: str = variable("AUDIT_DATABASE_URL", DEFAULT_DATABASE_URL)
    max_body_bytes: int = attrs.field(
        default=rules.MAX_BODY_BYTES,
        validator=_positive,
        metadata={_ENV: "AUDIT_MAX_BODY_BYTES", _PARSE: int},
    )
    log_origin: str = variable("AUDIT_LOG_ORIGIN", DEFAULT_ORIGIN)
    # Default: beside the SQLite database (so it does not hang on the working folder), or
    # in the working folder for PostgreSQL; the database records the key it was signed by.
    signing_key_file: str = attrs.field(
        default=attrs.Factory(lambda self: _key_beside(self.database_url), takes_self=True),
        metadata={_ENV: "AUDIT_SIGNING_KEY_FILE", _PARSE: str},
    )
    signing_key: str | None = variable("AUDIT_SIGNING_KEY", None)
    checkpoint_dir: str | None = variable("AUDIT_CHECKPOINT_DIR", None)
    # prometheus_client's own variable: where gunicorn's workers count, so /metrics adds
    # up every worker (None: one process, counting in memory).
    metrics_dir: str | None = variable("PROMETHEUS_MULTIPROC_DIR", None)
    # Failed authentications from one client address within a minute before its requests
    # without a known token are answered 429 (0: never).
    auth_failure_limit: int = variable("AUDIT_AUTH_FAILURE_LIMIT", 100, int)
    # Set by `audit serve`, not by the environment: the Unix socket of the one process
    # that writes for the server (adapters/writer.py). None: each process commits its own
    # requests.
    writer_socket: str | None = None
    # Set by `audit serve`, not by the environment: the file where its workers note the
    # tokens they accepted (adapters/known_tokens.py), which the throttle spares on every
    # worker. None: each process spares the tokens it accepted itself.
    known_tokens_file: str | None = None
    # Set by `audit serve` to its threads per worker: the database connections a process
    # keeps. Fewer than the threads reading at once, and PostgreSQL connections were
    # closed and opened again under load (bench/README.md).
    db_connections: int = attrs.field(default=5, validator=_positive)

    @property
    def storage(self) -> str:
        """Which unit of work the container builds: "memory" or "sql"."""
        return "memory" if self.database_url == MEMORY_URL else "sql"

    def as_config(self) -> dict[str, Any]:
        """The container's `config`: every setting by its name, and the storage kind."""
        return {
            **attrs.asdict(self),
            "storage": self.storage,
            "writer": "local" if self.writer_socket is None else "process",
            # A worker waits for the writer as long as a writer may wait for the lock,
            # and then some: the writer answers a lock timeout itself.
            "writer_timeout_s": 30.0,
        }

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings of `env` (default: the process environment), with `overrides`
        (the command line's options) winning; an override of None means "not given"."""
        source = os.environ if env is None else env
        values: dict[str, Any] = {}
        for field in attrs.fields(cls):
            name = field.metadata.get(_ENV)
            raw = source.get(name) if name else None
            if raw:
                try:
                    values[field.name] = field.metadata[_PARSE](raw)
                except ValueError:
                    raise SettingsError(f"{name}={raw!r} is not a valid value") from None
        values.update({key: value for key, value in overrides.items() if value is not None})
        try:
            return cls(**values)
        except ValueError as exc:
            raise SettingsError(str(exc)) from None
