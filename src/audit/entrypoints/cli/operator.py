"""The operator's commands: serve the API, manage tokens, verify, checkpoint and export
logs. They need the `[server]` extra; `audit` imports this module only to run one."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import sys
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from audit.container import Container, build_container, describe_storage_failure
from audit.domain.errors import SigningKeyChanged
from audit.domain.events import EventJson
from audit.domain.query import parse_filter
from audit.domain.tokens import TOKEN_NAME_RE
from audit.domain.validation import parse_token_request
from audit.entrypoints.cli.common import AuditGroup, ExitTwo
from audit.entrypoints.formats import EXPORT_FORMATS, token_document
from audit.settings import DEFAULT_DATABASE_URL, Settings

F = TypeVar("F", bound=Callable[..., Any])


class OperatorCommand(click.Command):
    """A command over the store: a database failure is one sentence naming its cause."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            message = describe_storage_failure(exc)
            if message is None:
                raise
            raise click.ClickException(message) from None


def database_url_option(func: F) -> F:
    return click.option(
        "--database-url",
        help="SQLAlchemy URL of the store: sqlite:///path or postgresql://user@host/db "
        f"(default: AUDIT_DATABASE_URL, else {DEFAULT_DATABASE_URL}).",
    )(func)


def _settings(database_url: str | None) -> Settings:
    """The settings of the environment, with the command line's options winning."""
    return Settings.from_env(database_url=database_url)


def _for_writing(settings: Settings, existing: bool = False) -> Container:
    """A container over a store whose schema is brought up to date first (`existing`: a
    SQLite file that must be there already, as for _for_reading)."""
    container = _for_reading(settings) if existing else build_container(settings)
    container.upgrade_schema()
    return container


def _for_reading(settings: Settings) -> Container:
    """A container over an existing store: never creates an empty SQLite file."""
    container = build_container(settings)
    path = container.database_file()
    if path is not None and not path.exists():
        raise click.ClickException(f"no database at {path} (set --database-url)")
    return container


def _check_free(host: str, port: int) -> None:
    """Refuse a port another program listens on, as gunicorn would, but before anything
    is written or printed."""
    if port == 0:
        return
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
        try:
            probe.bind((host, port))
        except OSError as exc:
            message = f"cannot listen on {host} port {port}: {exc.strerror}"
            raise click.ClickException(message) from None


@click.command(cls=OperatorCommand)
@database_url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--threads",
    default=8,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Threads per worker; on PostgreSQL a worker keeps up to twice as many connections.",
)
@click.option(
    "--accept-new-signing-key",
    is_flag=True,
    help="Sign with the configured key though the log's checkpoints were signed by another "
    "(monitors will report the change).",
)
def serve(
    database_url: str | None,
    host: str,
    port: int,
    workers: int,
    threads: int,
    accept_new_signing_key: bool,
) -> None:
    """Serve the HTTP API (creating or upgrading the schema first)."""
    settings = _settings(database_url)
    if settings.storage == "memory" and workers > 1:
        raise click.ClickException("memory:// storage cannot be shared by several workers")
    _check_free(host, port)  # before any token is made or printed
    container = _for_writing(settings)
    # Made (or read) once here, before the workers fork, so they all sign with one key.
    signer = container.signer()
    try:
        container.bind_signing_key()(accept_new=accept_new_signing_key)
    except SigningKeyChanged as exc:
        raise ExitTwo(exc.message) from None
    issued = container.bootstrap_token()()
    if issued is not None:
        base = f"http://{host}:{port}"
        click.echo(
            f"Created tenant {issued.token.tenant!r} and a token with every scope. "
            "It is shown only this once:\n\n"
            f"    {issued.secret}\n\n"
            f"Try: curl -H 'Authorization: Bearer {issued.secret}' {base}/v1/events\n"
        )
    else:
        click.echo(
            "This database already has tokens. Make another with: "
            "audit tokens create --tenant default --scope events:write --scope events:read"
        )
    click.echo(f"Checkpoints are signed by {signer.vkey}")
    where = f"[{host}]" if ":" in host else host
    click.echo(f"Web viewer: http://{where}:{port}/ui/ (sign in with a token holding events:read)")
    if settings.storage == "sql":
        container.engine().dispose()  # the workers open their own connections after the fork
    sys.stdout.flush()
    from audit.entrypoints.server import run_server

    run_server(settings, host, port, workers, threads)


@click.group(cls=AuditGroup)
def tokens() -> None:
    """Create, list and revoke API tokens."""


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or int(match[1]) == 0:
        raise click.BadParameter(
            "use a whole number and a unit: 90s, 15m, 12h, 30d", param_hint="'--expires-in'"
        )
    try:
        return timedelta(**{_UNITS[match[2]]: int(match[1])})
    except OverflowError:
        raise click.BadParameter(
            "is longer than any token can live", param_hint="'--expires-in'"
        ) from None


@tokens.command("create", cls=OperatorCommand)
@database_url_option
@click.option("--tenant", required=True, help="The tenant the token belongs to.")
@click.option("--scope", "scopes", multiple=True, required=True, help="Repeat for each scope.")
@click.option("--name", default="cli", show_default=True)
@click.option("--expires-in", help="Lifetime, e.g. 30d, 12h, 15m.")
@click.option("--json", "as_json", is_flag=True, help="Print the token object as JSON.")
def tokens_create(
    database_url: str | None,
    tenant: str,
    scopes: tuple[str, ...],
    name: str,
    expires_in: str | None,
    as_json: bool,
) -> None:
    """Make a token and print its secret (shown only this once)."""
    # The API's own rules for a token request (POST /v1/tokens), not a second copy.
    name, parsed_scopes, _ = parse_token_request({"name": name, "scopes": list(scopes)})
    lifetime = None if expires_in is None else _parse_duration(expires_in)
    container = _for_writing(_settings(database_url))
    try:
        expires_at = None if lifetime is None else container.clock().now() + lifetime
    except OverflowError:  # beyond year 9999
        raise click.BadParameter(
            "is longer than any token can live", param_hint="'--expires-in'"
        ) from None
    issued = container.issue_token()(tenant, name, parsed_scopes, expires_at)
    if as_json:
        click.echo(orjson.dumps(token_document(issued.token, issued.secret)))
    else:
        click.echo(issued.secret)


@tokens.command("list", cls=OperatorCommand)
@database_url_option
@click.option("--tenant", help="Only this tenant's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tokens_list(database_url: str | None, tenant: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    container = _for_reading(_settings(database_url))
    found = container.list_tokens()(tenant)
    if as_json:
        click.echo(orjson.dumps({"tokens": [token_document(t) for t in found]}))
        return
    now = container.clock().now()
    for token, doc in ((t, token_document(t)) for t in found):
        state = "revoked" if token.revoked_at else "active" if token.usable_at(now) else "expired"
        # A name stored before control characters were refused is shown escaped: a row
        # is one line.
        name = doc["name"] if TOKEN_NAME_RE.fullmatch(doc["name"]) else ascii(doc["name"])
        click.echo(
            f"{doc['id']}  {doc['tenant']}  {name}  {','.join(doc['scopes'])}  {state}"
            f"  expires={doc['expires_at'] or 'never'}"
        )


@tokens.command("revoke", cls=OperatorCommand)
@database_url_option
@click.argument("token_id")
def tokens_revoke(database_url: str | None, token_id: str) -> None:
    """Revoke a token: it fails with 401 from now on."""
    # A file not there holds no token: said so, rather than made empty.
    token = _for_writing(_settings(database_url), existing=True).revoke_token()(None, token_id)
    click.echo(f"revoked {token.id} ({token.tenant}/{token.name})")


@contextlib.contextmanager
def _progress(label: str, length: int) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr up to seq `length`, when stderr is a terminal; the callable
    takes the seq reached."""
    if length <= 0 or not sys.stderr.isatty():
        yield lambda seq: None
        return
    with click.progressbar(length=length, label=label, file=sys.stderr) as bar:
        done = 0

        def advance(seq: int) -> None:
            nonlocal done
            bar.update(seq - done)
            done = seq

        yield advance


def _advancing(events: Iterable[EventJson], advance: Callable[[int], None]) -> Iterator[EventJson]:
    for event in events:
        advance(event.seq)
        yield event


@click.command(cls=OperatorCommand)
@database_url_option
@click.option("--tenant", help="Only this tenant (default: every tenant).")
def verify(database_url: str | None, tenant: str | None) -> None:
    """Recompute hash chains; exit 1 at the first broken seq, 2 for no such tenant."""
    container = _for_reading(_settings(database_url))
    known = container.list_tenants()()
    if tenant is not None and tenant not in known and not container.list_tokens()(tenant):
        # A typo must never read as a passed check.
        raise ExitTwo(f"no such tenant {tenant!r}: it has neither events nor tokens")
    tenants = [tenant] if tenant else known
    if not tenants:
        click.echo("no tenant has events yet: nothing to verify")
    broken = False
    for name in tenants:
        with _progress(f"verifying {name}", container.log_head()(name).seq) as advance:
            report = container.verify_chain()(name, advance)
        if report.valid:
            head = f"head seq {report.head.seq} {report.head.hash}" if report.head else "empty"
            click.echo(f"{name}: valid, {report.checked} events checked, {head}")
        else:
            broken = True
            click.echo(
                f"{name}: BROKEN at seq {report.first_invalid_seq}: {report.reason} "
                f"({report.checked} events before it verified)"
            )
    if broken:
        sys.exit(1)


@click.command(cls=OperatorCommand)
@database_url_option
@click.option("--tenant", help="Only this tenant (default: every tenant).")
def checkpoint(database_url: str | None, tenant: str | None) -> None:
    """Sign a checkpoint of each tenant's log now, and keep it in AUDIT_CHECKPOINT_DIR.

    For cron: the folder then always holds recent signed checkpoints to ship elsewhere,
    whether or not anyone asked the API for one. Needs the service's signing key.
    """
    settings = _settings(database_url)
    if not settings.signing_key and not Path(settings.signing_key_file).exists():
        # Making a new key here would sign with a key nobody trusts.
        raise click.ClickException(
            f"no signing key at {settings.signing_key_file}: run it where the service's"
            " key is, or set AUDIT_SIGNING_KEY_FILE"
        )
    container = _for_reading(settings)
    tenants = [tenant] if tenant else container.list_tenants()()
    sign = container.sign_checkpoint()
    for name in tenants:
        click.echo(sign(name), nl=False)


@click.command(cls=OperatorCommand)
@database_url_option
@click.option("--tenant", required=True)
@click.option("--format", "fmt", type=click.Choice(sorted(EXPORT_FORMATS)), default="ndjson")
@click.option("--actor-id")
@click.option("--target-id")
@click.option("--action", help="Exact action, or a prefix ending in * (document.*).")
@click.option("--outcome")
@click.option("--since", help="RFC 3339, inclusive.")
@click.option("--until", help="RFC 3339, exclusive.")
@click.option("--q", help="Case-insensitive text in description, metadata or names.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    default="-",
    help="File (default stdout); a new one is readable by its owner only.",
)
def export(
    database_url: str | None, tenant: str, fmt: str, output: str, **filters: str | None
) -> None:
    """Export a tenant's events in ascending seq, as NDJSON or CSV."""
    where = parse_filter(dict(filters))
    container = _for_reading(_settings(database_url))
    _, render = EXPORT_FORMATS[fmt]
    events = container.export_events()(tenant, where)
    with (
        _written(output) as out,
        _progress("exporting", container.log_head()(tenant).seq) as advance,
    ):
        for chunk in render(_advancing(events, advance)):
            out.write(chunk)
        out.flush()


@contextlib.contextmanager
def _written(path: str) -> Iterator[Any]:
    """Standard output for "-"; else the file, made owner-only (0600) as every file of
    the service's log is: an export is the log's content."""
    if path == "-":
        yield sys.stdout.buffer
        return
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        raise click.ClickException(f"cannot write {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as out:
        yield out


@click.command(cls=OperatorCommand)
@database_url_option
@click.option("--tenant", required=True, help="The tenant whose log the events go to.")
@click.option("--amqp-url", required=True, help="amqp://user:pass@host:5672/vhost")
@click.option("--queue", required=True, help="The queue to read; bad messages go to QUEUE.dead.")
@click.option("--prefetch", default=1000, show_default=True, type=click.IntRange(1, 65535))
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    help="Serve the Prometheus metrics on 127.0.0.1:PORT/metrics (no token: loopback only).",
)
def consume(
    database_url: str | None,
    tenant: str,
    amqp_url: str,
    queue: str,
    prefetch: int,
    metrics_port: int | None,
) -> None:
    """Read events from a RabbitMQ queue into a tenant's log, until SIGTERM or SIGINT."""
    from audit.entrypoints.consumer import ConsumerOptions
    from audit.entrypoints.consumer import consume as run_consumer

    container = _for_writing(_settings(database_url))
    options = ConsumerOptions(amqp_url, queue, prefetch=prefetch)
    run_consumer(container, tenant, options, metrics_port)
