"""The `audit` command: two programs under one name.

- The auditor's commands (`auditor.py`: verify-proof, verify-export, monitor) need no
  database and no server packages: they work in a plain `pip install audit-log-service`.
- The operator's commands (`operator.py`: serve, tokens, verify, checkpoint, export, consume) need
  the `[server]` extra; they are imported only when one of them runs, so a core install
  still starts, and says what to install when one is asked for.
"""

from __future__ import annotations

import importlib

import click

from audit.entrypoints.cli.auditor import monitor, verify_export, verify_proof
from audit.entrypoints.cli.common import AuditGroup

# name -> "module:attribute", imported on first use. A new server command is one line.
SERVER_COMMANDS = {
    "serve": "audit.entrypoints.cli.operator:serve",
    "tokens": "audit.entrypoints.cli.operator:tokens",
    "verify": "audit.entrypoints.cli.operator:verify",
    "checkpoint": "audit.entrypoints.cli.operator:checkpoint",
    "export": "audit.entrypoints.cli.operator:export",
    "consume": "audit.entrypoints.cli.operator:consume",
}

SERVER_EXTRA = "audit-log-service[server]"


def _missing_server(name: str, missing: str) -> click.Command:
    """Stands in for a server command whose packages are not installed."""

    def refuse() -> None:
        raise click.ClickException(
            f"audit {name} needs the server's packages (no module named {missing!r}): "
            f"pip install '{SERVER_EXTRA}'"
        )

    return click.Command(
        name,
        callback=refuse,
        help=f"(needs pip install '{SERVER_EXTRA}')",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
        add_help_option=False,
    )


class _Audit(AuditGroup):
    """The top group: the auditor's commands, and the server's loaded when asked for."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *SERVER_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = SERVER_COMMANDS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, attribute = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if (exc.name or "audit").partition(".")[0] == "audit":
                raise  # our own module missing is a bug, not a missing extra
            return _missing_server(cmd_name, exc.name or "?")
        command: click.Command = getattr(module, attribute)
        return command


@click.group(cls=_Audit)
@click.version_option(package_name="audit-log-service")
def cli() -> None:
    """A tamper-evident, multi-tenant audit log service."""


for _command in (verify_proof, verify_export, monitor):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="audit")
