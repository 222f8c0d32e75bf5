"""The `audit` command: serve the API, manage tokens, verify and export logs."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from audit.container import (
    DEFAULT_DATABASE_URL,
    MEMORY_URL,
    Container,
    build_container,
    signing_settings,
    storage_kind,
)
from audit.domain.errors import AuditError
from audit.domain.query import parse_filter
from audit.entrypoints.formats import EXPORT_FORMATS, token_document

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
        envvar="AUDIT_DATABASE_URL",
        default=DEFAULT_DATABASE_URL,
        show_default=True,
        help="SQLAlchemy URL of the store: sqlite:///path or postgresql://user@host/db.",
    )(func)


def _settings(database_url: str) -> dict[str, Any]:
    return {
        "database_url": database_url,
        "storage": storage_kind(database_url),
        **signing_settings(),
    }


def _sqlite_path(database_url: str) -> Path | None:
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _for_writing(database_url: str) -> Container:
    """A container over a store whose schema is brought up to date first."""
    if database_url != MEMORY_URL:
        from audit.adapters.sql import upgrade_schema

        upgrade_schema(database_url)
    return build_container(_settings(database_url))


def _for_reading(database_url: str) -> Container:
    """A container over an existing store: never creates an empty SQLite file."""
    path = _sqlite_path(database_url)
    if path is not None and not path.exists():
        raise click.ClickException(f"no database at {path} (set --database-url)")
    return build_container(_settings(database_url))


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
def serve(database_url: str, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API (creating or upgrading the schema first)."""
    if database_url == MEMORY_URL and workers > 1:
        raise click.ClickException("memory:// storage cannot be shared by several workers")
    container = _for_writing(database_url)
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
    if database_url != MEMORY_URL:
        container.engine().dispose()  # the workers open their own connections after the fork
    sys.stdout.flush()
    from audit.entrypoints.server import run_server

    run_server(_settings(database_url), host, port, workers, threads)


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
    database_url: str,
    tenant: str,
    scopes: tuple[str, ...],
    name: str,
    expires_in: str | None,
    as_json: bool,
) -> None:
    """Make a token and print its secret (shown only this once)."""
    from audit.application.tokens import parse_scopes

    container = _for_writing(database_url)
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
def tokens_list(database_url: str, tenant: str | None, as_json: bool) -> None:
    """List tokens (never their secrets)."""
    found = _for_reading(database_url).list_tokens()(tenant)
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
def tokens_revoke(database_url: str, token_id: str) -> None:
    """Revoke a token: it fails with 401 from now on."""
    token = _for_writing(database_url).revoke_token()(None, token_id)
    click.echo(f"revoked {token.id} ({token.tenant}/{token.name})")


@cli.command()
@database_url_option
@click.option("--tenant", help="Only this tenant (default: every tenant).")
def verify(database_url: str, tenant: str | None) -> None:
    """Recompute hash chains; exit 1 at the first broken seq."""
    container = _for_reading(database_url)
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
def export(database_url: str, tenant: str, fmt: str, output: Any, **filters: str | None) -> None:
    """Export a tenant's events in ascending seq, as NDJSON or CSV."""
    where = parse_filter(dict(filters))
    container = _for_reading(database_url)
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


def main() -> None:
    cli(prog_name="audit")
