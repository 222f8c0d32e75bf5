"""What every `audit` command shares: one clear sentence for every failure."""

from __future__ import annotations

from typing import Any

import click

from audit.domain.errors import AuditError, ValidationFailed


def sentence(exc: AuditError) -> str:
    """An error as one line: its message, and the problems of a validation failure."""
    if isinstance(exc, ValidationFailed) and exc.problems:
        problems = "; ".join(
            f"{problem.field} {problem.message}" if problem.field else problem.message
            for problem in exc.problems
        )
        return f"{exc.message}: {problems}"
    return exc.message


class AuditGroup(click.Group):
    """Turns every failure into one clear sentence and a non-zero exit, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except AuditError as exc:
            raise click.ClickException(sentence(exc)) from None
        except KeyboardInterrupt:
            raise click.Abort() from None
        except Exception as exc:
            raise click.ClickException(f"{type(exc).__name__}: {exc}") from None


class ExitTwo(click.ClickException):
    """A check that could not be made, or asked of something that is not there: status 2."""

    exit_code = 2
