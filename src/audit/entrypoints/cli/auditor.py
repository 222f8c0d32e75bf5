"""The auditor's commands: check proofs, exports and checkpoints with no database, and
no server packages (only `monitor` uses the network)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import click

from audit.entrypoints.cli.common import ExitTwo
from audit.verify import (
    Checkpoint,
    VerificationError,
    Verifier,
    parse_json_object,
    parse_vkey,
    verify_event_inclusion,
)
from audit.verify import verify_export as check_export

VKEY_HELP = (
    "The log's verifier key (as GET /v1/public-key names it, "
    "'<name>+<8 hex>+<base64>'), or a file holding it."
)


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


@click.command("verify-proof")
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


@click.command("verify-export")
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


@click.command()
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
        raise ExitTwo(f"could not check: {exc.message}") from None
    try:
        client = LogClient(url, token, timeout)
        report = run_monitor(client, MonitorState(Path(state)), verifier)
    except MonitorFailure as exc:
        raise click.ClickException(f"ALERT: {exc}") from None
    except CannotCheck as exc:
        raise ExitTwo(f"could not check: {exc}") from None
    if not quiet:
        click.echo(report.summary())
