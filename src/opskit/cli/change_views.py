"""`opskit change show` and `list`: what is recorded about changes."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from opskit.cli import compliance
from opskit.cli.change_common import IdArg, JsonOpt, brief, command, open_service, print_assessment
from opskit.cli.common import choice, console, err_console, plain, print_json


@command()
def show(change_id: IdArg, json_output: JsonOpt = False) -> None:
    """Everything about one change (and whether its rows agree with the ledger)."""
    from opskit.changes.tablecheck import disagreements

    service = open_service()
    change = service.get(change_id)
    # The rows shown are an index of the ledger: say when they disagree with it.
    differs = disagreements(service.context.ledger, change_id)
    if json_output:
        print_json({**change.to_dict(), "ledger_disagreements": differs})
        return
    if differs:
        more = f" (and {len(differs) - 1} more: opskit audit verify)" if len(differs) > 1 else ""
        err_console.print(
            f"[red]warning:[/red] this change's rows disagree with the ledger: "
            f"{plain(differs[0])}{more}",
            highlight=False,
            soft_wrap=True,
        )
    brief(change)
    console.print(
        f"type {change.type}, requested by {plain(change.requester)}, runbook digest "
        f"{change.runbook_digest}\nselection {plain(repr(change.selection))} on inventory "
        f"{plain(change.inventory)} ({change.inventory_digest})\n"
        f"targets: {plain(', '.join(change.targets))}",
        highlight=False,
    )
    if change.risk:
        print_assessment(change)
    for approval in change.approvals:
        signed = " (signed)" if approval.get("signature") else ""
        console.print(
            f"{approval['kind']} by {plain(approval['approver'])}{signed} "
            f"at {approval['created_at']}",
            highlight=False,
        )
    if change.hosts:
        table = Table("host", "status", "batch")
        for host, entry in sorted(change.hosts.items()):
            table.add_row(plain(host), entry["status"], str(entry["batch"]))
        console.print(table)
    compliance.print_after_change(change.summary or {})
    if change.review:
        console.print(
            f"review ({plain(change.review['outcome'])}): {plain(change.review['review'])}",
            highlight=False,
        )


@command("list")
def list_changes(
    state: Annotated[
        str | None, typer.Option("--state", help="Only changes in this state (draft, ...).")
    ] = None,
    all_changes: Annotated[bool, typer.Option("--all", help="Include cancelled changes.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Changes, oldest first (cancelled ones only with --all or --state cancelled)."""
    if state is not None:
        from opskit.changes import State

        choice("--state", state, State)
    changes = open_service().list(state, include_cancelled=all_changes)
    if json_output:
        print_json(
            [
                {
                    "id": c.id,
                    "state": str(c.state),
                    "type": str(c.type),
                    "title": c.title,
                    "runbook": c.runbook_ref,
                    "requester": c.requester,
                    "targets": len(c.targets),
                    "risk": (c.risk or {}).get("level"),
                }
                for c in changes
            ]
        )
        return
    table = Table("id", "state", "type", "risk", "runbook", "targets", "title")
    for c in changes:
        table.add_row(
            c.id, str(c.state), str(c.type), (c.risk or {}).get("level") or "-",
            plain(c.runbook_ref), str(len(c.targets)), plain(c.title),
        )  # fmt: skip
    console.print(table)
