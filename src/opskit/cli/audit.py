"""`opskit audit`: verify, read, checkpoint and export the change ledger."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from opskit.cli.common import GLOBALS, console, err_console, plain, print_json, workspace
from opskit.errors import UsageError

# The ledger (SQLAlchemy, cryptography) is imported by the commands that use it:
# `opskit --help` must not pay for it.
if TYPE_CHECKING:
    from opskit.ledger import Ledger, VerifyReport

app = typer.Typer(
    help="The tamper-evident change ledger: verify, log, checkpoint, export.",
    no_args_is_help=True,
)


def _actor() -> str:
    """Who signs: --as / OPSKIT_USER, else the OS user (documented)."""
    from opskit.ledger.core import default_actor

    return GLOBALS.user or default_actor()


def _ledger() -> Ledger:
    from opskit.ledger import Ledger

    return Ledger.open(workspace())


def _report(report: VerifyReport, as_json: bool, what: str, note: str | None = None) -> None:
    if as_json:
        print_json({**report.to_dict(), **({"note": note} if note else {})})
    elif report.ok:
        counts = ", ".join(f"{value} {name}" for name, value in report.counts.items())
        console.print(
            f"[green]{what} OK[/green]: {counts}; head seq {report.head_seq} "
            f"hash {report.head_hash}" + (f"; {plain(note)}" if note else ""),
            highlight=False,
            soft_wrap=True,
        )
    else:
        # One line, however many records a tampering touched; --json lists them all.
        more = len(report.problems) - 1
        where = f" at seq {report.first_bad_seq}" if report.first_bad_seq is not None else ""
        err_console.print(
            f"[red]{what} FAILED[/red]{where}: "
            f"{plain(report.problem or '')}"
            + (f" (and {more} more problem(s): --json lists them)" if more > 0 else ""),
            highlight=False,
            soft_wrap=True,
        )
    if not report.ok:
        raise typer.Exit(1)


@app.command("verify")
def verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="An exported checkpoint the ledger must extend."),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="The trust policy the --checkpoint must satisfy."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable report.")] = False,
) -> None:
    """Check the whole chain, every blob and every checkpoint signature, and the
    change tables against the ledger (exit 1 on failure; 3: a --checkpoint note
    without a --trust policy is not verified)."""
    from opskit.changes.tablecheck import verify_change_tables
    from opskit.ledger import VerifyReport

    ledger = _ledger()
    trusted = audit_bundle.checkpoint_trust(ledger, checkpoint, trust)
    if trusted is not None:  # a checkpoint note: checked above against the tree
        checkpoint = None
    report = ledger.verify(since_checkpoint=checkpoint)
    # The change tables are an index of the ledger: every row is rebuilt
    # from the events and compared (`opskit.changes.tablecheck`).
    tables = verify_change_tables(ledger)
    counts = report.counts if tables.skipped else {**report.counts, "changes": tables.changes}
    report = VerifyReport.from_problems(
        report.problems + tables.problems,
        counts=counts,
        head_seq=report.head_seq,
        head_hash=report.head_hash,
    )
    note = f"change tables not checked: {tables.skipped}" if tables.skipped else None
    note = "; ".join(n for n in (trusted, note) if n) or None
    _report(report, as_json, "ledger", note=note)


@app.command("log")
def log(
    change: Annotated[str | None, typer.Option("--change", help="Only this change.")] = None,
    ci: Annotated[str | None, typer.Option("--ci", help="Only this CI.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only this event kind.")] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only events at or after this ISO 8601 time (no offset: UTC)."
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON list of events.")] = False,
) -> None:
    """List ledger events, oldest first."""
    if since is not None:
        try:
            datetime.fromisoformat(since)
        except ValueError:
            raise UsageError(
                f"--since {since!r}: use ISO 8601, e.g. 2026-12-01T22:00+01:00 (no offset: UTC)"
            ) from None
    ledger = _ledger()
    events = ledger.events(change_id=change, ci=ci, kind=kind, since=since)
    if as_json:
        print_json([event.to_dict() for event in events])
        return
    table = Table(show_lines=False)
    for column in ("seq", "at (UTC)", "actor", "kind", "change", "ci", "payload"):
        table.add_column(column, overflow="fold")
    for event in events:
        payload = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"))
        table.add_row(
            str(event.seq),
            event.at.strftime("%Y-%m-%d %H:%M:%S"),
            plain(event.actor),
            plain(event.kind),
            plain(event.change_id or ""),
            plain(event.ci or ""),
            plain(payload if len(payload) <= 120 else payload[:117] + "..."),
        )
    console.print(table)


@app.command("checkpoint")
def checkpoint(
    save: Annotated[
        Path | None, typer.Option("--save", help="Also write the checkpoint note to this file.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Also write the checkpoint as JSON (the older format)."),
    ] = None,
) -> None:
    """Sign the ledger's tree (and head) with the workspace's log key and print
    the checkpoint note exactly (C2SP tlog-checkpoint) on stdout."""
    from opskit.ledger.output import OutputFile

    ledger = _ledger()
    if save is None:
        signed = ledger.checkpoint(actor=_actor(), out=out)
    else:
        with OutputFile(save) as target:  # an unwritable --save signs nothing
            signed = ledger.checkpoint(actor=_actor(), out=out)
            target.stage(signed.note or "")
            target.commit()
    typer.echo(signed.note or "", nl=False)
    err_console.print(
        f"checkpoint seq {signed.seq} head {signed.head} signed by key {signed.key_id}"
        + "".join(f" -> {plain(str(path))}" for path in (save, out) if path),
        highlight=False,
        soft_wrap=True,
    )
    audit_bundle.witness_warnings(ledger)  # an unreachable witness, a quorum not met


@app.command("pubkey")
def pubkey(
    fmt: Annotated[str, typer.Option("--format", help="pem or base64 (raw 32-byte key).")] = "pem",
    vkey: Annotated[
        bool,
        typer.Option(
            "--vkey", help="Print the note verifier key: origin, key id and key, joined by +."
        ),
    ] = False,
) -> None:
    """Print the workspace's public key (to verify checkpoints and bundles elsewhere)."""
    if vkey:
        from opskit.ledger.proofs import log_vkey

        typer.echo(log_vkey(_ledger()))
        return
    if fmt not in ("pem", "base64"):
        raise UsageError(f"--format {fmt}: choose pem or base64")
    from opskit.ledger.keys import key_id as key_fingerprint
    from opskit.ledger.keys import load_private_key, public_key_b64, public_key_pem

    key = load_private_key(workspace().keys_dir).public_key()
    if fmt == "pem":
        typer.echo(public_key_pem(key).decode(), nl=False)
    else:
        typer.echo(public_key_b64(key))
    err_console.print(f"key id {key_fingerprint(key)}", highlight=False)


from opskit.cli import audit_bundle  # noqa: E402  (registers export and verify-bundle on `app`)

audit_bundle.register(app)
from opskit.cli import audit_proofs  # noqa: E402  (registers prove and verify-proof on `app`)

audit_proofs.register(app)
