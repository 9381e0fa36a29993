"""`opskit backup`: configuration backups, a thin layer over `opskit.backups`."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from opskit.cli.common import console, current_user, plain, print_json, workspace
from opskit.hoststate import HostState

app = typer.Typer(
    help="Configuration backups in the ledger: take, list, diff, restore (as a change).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
CiArg = Annotated[str, typer.Argument(help="The CI's name.")]
InventoryOpt = Annotated[
    str | None,
    typer.Option("--inventory", help="Inventory name under inventories/ (default: the policy's)."),
]
REF_HELP = "latest, latest~N, a ledger seq, a configuration hash prefix or an ISO date"


@app.command("run")
def run_backups(
    select: Annotated[
        str | None, typer.Option("--select", help="Which CIs (default: all).")
    ] = None,
    inventory: InventoryOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Back up the running (and startup) configuration of the selected CIs.

    Read-only on the devices. Exit 1 when a CI could not be backed up (the
    others are recorded)."""
    from opskit.backups import take_backups

    run = take_backups(workspace(), current_user(), select=select, inventory=inventory)
    if json_output:
        print_json(run.to_dict())
    else:
        table = Table("ci", "status", "ledger", "configuration hash", "detail")
        for r in run.results:
            colour = "green" if r.ok else ("yellow" if r.status == HostState.SKIPPED else "red")
            table.add_row(
                plain(r.ci),
                f"[{colour}]{r.status}[/{colour}]",
                f"#{r.seq}" if r.seq else "-",
                plain((r.hash or "-")[:23]),
                plain(r.reason or ("running + startup" if r.startup else "running")),
            )
        console.print(table)
        counts = ", ".join(f"{n} {status}" for status, n in run.counts().items())
        console.print(f"{len(run.results)} CI(s): {counts or 'none selected'}", highlight=False)
    if not run.ok:
        sys.exit(1)


@app.command("list")
def list_backups(ci: CiArg, json_output: JsonOpt = False) -> None:
    """A CI's backups, oldest first: backup runs and the change engine's snapshots."""
    from opskit.backups import backup_history
    from opskit.ledger.core import Ledger

    history = backup_history(Ledger.open(workspace()), ci)
    if json_output:
        print_json([b.to_dict() for b in history])
        return
    table = Table("seq", "at", "by", "origin", "configuration hash", "startup")
    for b in history:
        origin = plain(b.change_id) + " snapshot" if b.origin == "change" else "backup"
        if b.unchanged:
            origin += " (unchanged)"
        table.add_row(
            f"#{b.seq}",
            b.at[:19] + "Z",
            plain(b.actor),
            origin,
            plain((b.hash or "-")[:23]),
            "yes" if b.startup_blob else "-",
        )
    console.print(table)
    if not history:
        console.print(f"no backup of {plain(ci)}: opskit backup run --select name:{plain(ci)}")


@app.command("diff")
def diff_backups(
    ci: CiArg,
    from_ref: Annotated[
        str, typer.Option("--from", help=f"The older backup: {REF_HELP}.")
    ] = "latest~1",
    to_ref: Annotated[str, typer.Option("--to", help=f"The newer backup: {REF_HELP}.")] = "latest",
) -> None:
    """The diff between two backups, normalised (volatile lines ignored)."""
    from opskit.backups import backup_diff, backup_history, resolve
    from opskit.ledger.core import Ledger

    ledger = Ledger.open(workspace())
    history = backup_history(ledger, ci)
    before = resolve(history, from_ref, ci=ci)
    after = resolve(history, to_ref, ci=ci)
    text = backup_diff(ledger, before, after)
    if text:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    else:
        console.print(
            f"{plain(before.label)} and {plain(after.label)}: no difference "
            "(volatile lines ignored)",
            highlight=False,
        )


@app.command("restore")
def restore(
    ci: CiArg,
    to_ref: Annotated[str, typer.Option("--to", help=f"The backup to restore: {REF_HELP}.")],
    title: Annotated[str | None, typer.Option("--title", help="The change's title.")] = None,
    inventory: InventoryOpt = None,
    ticket: Annotated[list[str] | None, typer.Option("--ticket", help="Linked INC/PRB id.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a change request that restores a backup (then submit, assess,
    approve and apply it like any change)."""
    from opskit.backups import restore_change
    from opskit.changes import ChangeService

    change = restore_change(
        ChangeService(workspace()),
        ci,
        to_ref,
        requester=current_user(),
        title=title,
        inventory=inventory,
        tickets=tuple(ticket or ()),
    )
    if json_output:
        print_json(change.to_dict())
        return
    console.print(
        f"[bold]{plain(change.id)}[/bold] {change.state}  {plain(change.runbook_ref)}  "
        f"{plain(change.title)}",
        highlight=False,
    )
    for line in change.parameters["lines"][ci]:
        console.print(f"  {plain(line)}", highlight=False)
    console.print(
        f"next: opskit change submit {plain(change.id)}; opskit change assess {plain(change.id)}",
        highlight=False,
    )
