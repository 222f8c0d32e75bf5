"""The `audit` command: serve the API, manage tokens, verify and export logs, and check
proofs and checkpoints as an auditor (with no database)."""

from __future__ import annotations

import base64
import re
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from audit.container import Container, build_container
from audit.domain.errors import AuditError
from audit.domain.query import parse_filter
from audit.entrypoints.formats import EXPORT_FORMATS, token_document
from audit.settings import DEFAULT_DATABASE_URL, Settings
from audit.verify import (
    Checkpoint,
    VerificationError,
    Verifier,
    parse_json_object,
    parse_vkey,
    verify_event_inclusion,
)
from audit.verify import verify_export as check_export

F = TypeVar("F", bound=Callable[..., Any])


class _AuditGroup(click.Group):
    """Turns every failure into one clear sentence and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except AuditError as exc:
            raise click.ClickException(exc.message) from None
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            from sqlalchemy.exc import SQLAlchemyError

            if isinstance(exc, SQLAlchemyError):
                detail = str(getattr(exc, "orig", None) or type(exc).__name__).splitlines()[0]
                raise click.ClickException(f"the database failed: {detail}") from None
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


def database_url_option(func: F) -> F:
    return click.option(
        "--database-url",
        help="SQLAlchemy URL of the store: sqlite:///path or postgresql://user@host/db "
        f"(default: AUDIT_DATABASE_URL, else {DEFAULT_DATABASE_URL}).",
    )(func)


def _settings(database_url: str | None) -> Settings:
    """The settings of the environment, with the command line's options winning."""
    return Settings.from_env(database_url=database_url)


def _sqlite_path(database_url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _for_writing(settings: Settings) -> Container:
    """A container over a store whose schema is brought up to date first."""
    if settings.storage == "sql":
        from audit.adapters.sql import upgrade_schema

        upgrade_schema(settings.database_url)
    return build_container(settings)


def _for_reading(settings: Settings) -> Container:
    """A container over an existing store: never creates an empty SQLite file."""
    path = _sqlite_path(settings.database_url)
    if path is not None and not path.exists():
        raise click.ClickException(f"no database at {path} (set --database-url)")
    return build_container(settings)


@click.group(cls=_AuditGroup)
@click.version_option(package_name="audit-log-service")
def cli() -> None:
    """A tamper-evident, multi-tenant audit log service."""


@cli.command()
@database_url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256))
def serve(database_url: str | None, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API (creating or upgrading the schema first)."""
    settings = _settings(database_url)
    if settings.storage == "memory" and workers > 1:
        raise click.ClickException("memory:// storage cannot be shared by several workers")
    container = _for_writing(settings)
    # Made (or read) once here, before the workers fork, so they all sign with one key.
    signer = container.signer()
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


@cli.group(cls=_AuditGroup)
def tokens() -> None:
    """Create, list and revoke API tokens."""


_DURATION = re.compile(r"^(\d+)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _parse_duration(text: str) -> timedelta:
    match = _DURATION.match(text)
    if not match or int(match[1]) == 0:
        raise click.BadParameter("use a whole number and a unit: 90s, 15m, 12h, 30d")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


@tokens.command("create")
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
    from audit.application.tokens import parse_scopes

    container = _for_writing(_settings(database_url))
    expires_at = None
    if expires_in is not None:
        expires_at = container.clock().now() + _parse_duration(expires_in)
    issued = container.issue_token()(tenant, name, parse_scopes(scopes), expires_at)
    if as_json:
        click.echo(orjson.dumps(token_document(issued.token, issued.secret)))
    else:
        click.echo(issued.secret)


@tokens.command("list")
@database_url_option
@click.option("--tenant", help="Only this tenant's tokens.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def tokens_list(database_url: str | None, tenant: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    found = _for_reading(_settings(database_url)).list_tokens()(tenant)
    docs = [token_document(t) for t in found]
    if as_json:
        click.echo(orjson.dumps({"tokens": docs}))
        return
    for doc in docs:
        state = "revoked" if doc["revoked_at"] else "active"
        click.echo(
            f"{doc['id']}  {doc['tenant']}  {doc['name']}  {','.join(doc['scopes'])}  {state}"
            f"  expires={doc['expires_at'] or 'never'}"
        )


@tokens.command("revoke")
@database_url_option
@click.argument("token_id")
def tokens_revoke(database_url: str | None, token_id: str) -> None:
    """Revoke a token: it fails with 401 from now on."""
    token = _for_writing(_settings(database_url)).revoke_token()(None, token_id)
    click.echo(f"revoked {token.id} ({token.tenant}/{token.name})")


@cli.command()
@database_url_option
@click.option("--tenant", help="Only this tenant (default: every tenant).")
def verify(database_url: str | None, tenant: str | None) -> None:
    """Recompute hash chains; exit 1 at the first broken seq."""
    container = _for_reading(_settings(database_url))
    tenants = [tenant] if tenant else container.list_tenants()()
    broken = False
    for name in tenants:
        report = container.verify_chain()(name)
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


@cli.command()
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


@cli.command()
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
@click.option("-o", "--output", type=click.File("wb"), default="-", help="File (default stdout).")
def export(
    database_url: str | None, tenant: str, fmt: str, output: Any, **filters: str | None
) -> None:
    """Export a tenant's events in ascending seq, as NDJSON or CSV."""
    where = parse_filter(dict(filters))
    container = _for_reading(_settings(database_url))
    _, render = EXPORT_FORMATS[fmt]
    events = container.export_events()(tenant, where)
    if sys.stderr.isatty():
        head = container.log_head()(tenant).seq
        with click.progressbar(length=head, label="exporting", file=sys.stderr) as bar:
            done = 0

            def advancing(events: Any) -> Any:
                nonlocal done
                for event in events:
                    bar.update(event.seq - done)
                    done = event.seq
                    yield event

            for chunk in render(advancing(events)):
                output.write(chunk)
    else:
        for chunk in render(events):
            output.write(chunk)
    output.flush()


# -- the auditor's commands: no database, and only `monitor` uses the network ------------

VKEY_HELP = (
    "The log's verifier key (as GET /v1/public-key names it, "
    "'<name>+<8 hex>+<base64>'), or a file holding it."
)


class CannotCheckError(click.ClickException):
    """The check could not be made (network, token, state): exit status 2."""

    exit_code = 2


def _verifier(value: str) -> Verifier:
    text = value
    try:
        if Path(value).is_file():
            text = Path(value).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise click.ClickException(f"cannot read the verifier key file {value}: {exc}") from None
    try:
        return parse_vkey(text)
    except VerificationError as exc:
        raise click.ClickException(f"--vkey is not a verifier key ({exc})") from None


def _json_object_file(path: str, what: str) -> dict[str, Any]:
    """A file holding one JSON object, read as strictly as the API writes it."""
    try:
        return parse_json_object(Path(path).read_bytes())
    except OSError as exc:
        raise click.ClickException(f"cannot read {what} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise click.ClickException(f"{what} {path} is {exc}") from None


def _root(checkpoint: Checkpoint) -> str:
    return base64.b64encode(checkpoint.root_hash).decode("ascii")


@cli.command("verify-proof")
@click.option("--vkey", required=True, help=VKEY_HELP)
@click.option("--origin", help="The checkpoint's expected origin, e.g. localhost/audit/acme.")
@click.argument("event_file", metavar="EVENT.json", type=click.Path(exists=True, dir_okay=False))
@click.argument("proof_file", metavar="PROOF.json", type=click.Path(exists=True, dir_okay=False))
def verify_proof(vkey: str, origin: str | None, event_file: str, proof_file: str) -> None:
    """Check that an event is in the log's signed tree, with no database and no network.

    EVENT.json is the event as GET /v1/events/{id} returns it; PROOF.json the answer of
    GET /v1/events/{id}/proof. Checks the event's hash against its content, the inclusion
    proof against the checkpoint's root, and the checkpoint's signature (and origin).
    Exit status 0 when all hold, 1 otherwise.
    """
    verifier = _verifier(vkey)
    event = _json_object_file(event_file, "the event file")
    proof = _json_object_file(proof_file, "the proof file")
    try:
        checkpoint = verify_event_inclusion(event, proof, verifier, origin)
    except (VerificationError, ValueError) as exc:
        raise click.ClickException(f"the proof does not verify: {exc}") from None
    click.echo(
        f"OK: event seq {event['seq']} (id {event.get('id')}) is leaf {event['seq'] - 1} of the "
        f"tree of size {checkpoint.size} with root {_root(checkpoint)}, signed by "
        f"{verifier.name} for {checkpoint.origin}"
    )


@cli.command("verify-export")
@click.option("--vkey", required=True, help=VKEY_HELP)
@click.option(
    "--checkpoint",
    "checkpoint_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A signed checkpoint (GET /v1/checkpoint) kept apart from the service.",
)
@click.option("--origin", help="The checkpoint's expected origin, e.g. localhost/audit/acme.")
@click.argument("export_file", metavar="EXPORT.ndjson", type=click.File("rb"))
def verify_export(vkey: str, checkpoint_file: str, origin: str | None, export_file: Any) -> None:
    """Check that an NDJSON export from seq 1 is complete and unmodified up to a checkpoint.

    Recomputes the hash chain, and the Merkle root of the first SIZE events against the
    signed root; events after the checkpoint's size are chain-checked and reported as not
    covered by it. EXPORT.ndjson may be - for standard input. Exit status 0 when all hold,
    1 with the first problem otherwise.
    """
    verifier = _verifier(vkey)
    try:
        note = Path(checkpoint_file).read_bytes().decode("utf-8")
    except OSError as exc:
        raise click.ClickException(f"cannot read {checkpoint_file}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise click.ClickException(f"the checkpoint {checkpoint_file} is not UTF-8") from None
    try:
        report = check_export(export_file, note, verifier, origin)
    except VerificationError as exc:
        raise click.ClickException(f"the checkpoint does not verify: {exc}") from None
    if not report.valid:
        where = f" at seq {report.first_invalid_seq}" if report.first_invalid_seq else ""
        raise click.ClickException(f"the export does not verify{where}: {report.reason}")
    checkpoint = report.checkpoint
    line = (
        f"OK: events 1 to {report.covered} match the checkpoint of {checkpoint.origin} at size "
        f"{checkpoint.size} (root {_root(checkpoint)})"
    )
    if report.not_covered:
        line += (
            f"; {report.not_covered} later events (seq {checkpoint.size + 1} to "
            f"{report.checked}) are chain-checked only, not covered by this checkpoint"
        )
    click.echo(line)


@cli.command()
@click.option("--url", required=True, help="The service's base URL, e.g. https://audit.example.")
@click.option(
    "--token",
    envvar="AUDIT_MONITOR_TOKEN",
    required=True,
    help="A token with events:read (better: environment AUDIT_MONITOR_TOKEN).",
)
@click.option(
    "--state",
    required=True,
    help="The folder where the monitor keeps the trusted key and the last checkpoint.",
)
@click.option("--vkey", help=VKEY_HELP + " Default: the kept key, or trust on first use.")
@click.option("--timeout", default=30.0, show_default=True, type=click.FloatRange(min=0.1))
@click.option("-q", "--quiet", is_flag=True, help="Print nothing when the check passes.")
def monitor(
    url: str, token: str, state: str, vkey: str | None, timeout: float, quiet: bool
) -> None:
    """Check that the log still extends the checkpoint kept in --state, then keep the new one.

    Run it on a schedule, with its state where the service's operators cannot write. Exit
    status 0 when the log only grew; 1 when it was truncated, rolled back or rewritten, or
    its key or origin changed (the kept state is left as it was); 2 when it could not check
    (network, token, state).
    """
    from audit.verify.monitor import (
        CannotCheck,
        LogClient,
        MonitorFailure,
        MonitorState,
        run_monitor,
    )

    try:
        verifier = _verifier(vkey) if vkey is not None else None
    except click.ClickException as exc:
        raise CannotCheckError(f"could not check: {exc.message}") from None
    try:
        client = LogClient(url, token, timeout)
        report = run_monitor(client, MonitorState(Path(state)), verifier)
    except MonitorFailure as exc:
        raise click.ClickException(f"ALERT: {exc}") from None
    except CannotCheck as exc:
        raise CannotCheckError(f"could not check: {exc}") from None
    if not quiet:
        click.echo(report.summary())


@cli.command()
@database_url_option
@click.option("--tenant", required=True, help="The tenant whose log the events go to.")
@click.option("--amqp-url", required=True, help="amqp://user:pass@host:5672/vhost")
@click.option("--queue", required=True, help="The queue to read; bad messages go to QUEUE.dead.")
@click.option("--prefetch", default=1000, show_default=True, type=click.IntRange(1, 65535))
def consume(
    database_url: str | None, tenant: str, amqp_url: str, queue: str, prefetch: int
) -> None:
    """Read events from a RabbitMQ queue into a tenant's log, until SIGTERM or SIGINT."""
    from audit.entrypoints.consumer import ConsumerOptions
    from audit.entrypoints.consumer import consume as run_consumer

    container = _for_writing(_settings(database_url))
    run_consumer(container, tenant, ConsumerOptions(amqp_url, queue, prefetch=prefetch))


def main() -> None:
    cli(prog_name="audit")
