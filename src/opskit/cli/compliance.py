"""`opskit compliance`: runs, history, the latest state, remediation as a
change: a thin layer over `opskit.compliance.runs`, `.history` and `.remediate`."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from opskit.cli.change_common import JunitOpt
from opskit.cli.common import choice, console, current_user, nonblank, plain, print_json, workspace

if TYPE_CHECKING:
    from opskit.compliance.runs import ComplianceRun

app = typer.Typer(
    help="Configuration compliance: run, history, show, remediate (as a change).",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
SelectOpt = Annotated[str | None, typer.Option("--select", help="Which CIs (default: all).")]
FeatureOpt = Annotated[
    list[str] | None, typer.Option("--feature", help="Only this feature (repeat for more).")
]
InventoryOpt = Annotated[
    str | None,
    typer.Option("--inventory", help="Inventory name under inventories/ (default: the policy's)."),
]
COLOURS = {"compliant": "green", "non-compliant": "red", "unknown": "yellow"}


def _state(state: str) -> str:
    colour = COLOURS.get(state, "dim")
    return f"[{colour}]{plain(state)}[/{colour}]"


@app.command("run")
def run(
    select: SelectOpt = None,
    source: Annotated[
        str, typer.Option("--source", help="live (the devices, read-only) or backup (the ledger).")
    ] = "live",
    feature: FeatureOpt = None,
    inventory: InventoryOpt = None,
    json_output: JsonOpt = False,
    junit: JunitOpt = None,
) -> None:
    """Evaluate the selected CIs and record the run in the ledger.

    Exit 0 only when everything evaluated is compliant; 1 when a CI is
    non-compliant or unknown (unreachable, no backup)."""
    from opskit.compliance.runs import SOURCES, run_compliance
    from opskit.reports.junit import check_junit_path, compliance_junit, write_junit

    choice("--source", source, SOURCES)
    check_junit_path(junit)
    result = run_compliance(
        workspace(),
        current_user(),
        select=select,
        source=source,
        features=feature or (),
        inventory=inventory,
    )
    if junit is not None:
        write_junit(compliance_junit(result.fleet), junit)
    report(result, json_output)
    if not result.ok:
        sys.exit(1)


def report(result: ComplianceRun, json_output: bool) -> None:
    """Prints a run (the seam for other report formats: they read `result`)."""
    if json_output:
        print_json(result.to_dict())
        return
    for ci in result.fleet.results:
        reason = f" ({plain(ci.reason)})" if ci.reason else ""
        console.print(f"[bold]{plain(ci.ci)}[/bold] {_state(str(ci.state))}{reason}")
        for f in ci.features:
            why = f"  {plain(f.reason)}" if f.reason and not ci.reason else ""
            console.print(f"  {plain(f.feature):<14} {_state(str(f.state))}{why}", highlight=False)
            for line in f.missing:
                console.print(f"      [green]+{plain(line)}[/green]", highlight=False)
            for line in f.extra:
                console.print(f"      [red]-{plain(line)}[/red]", highlight=False)
            if f.remediation and f.state == "non-compliant":
                console.print(
                    f"      remediation: {plain(' | '.join(f.remediation))}", highlight=False
                )
    fleet = result.fleet
    counts = ", ".join(f"{n} {state}" for state, n in fleet.counts.items() if n)
    rate = fleet.rate()
    shown = f"{rate:.0%}" if rate is not None else "-"
    console.print(
        f"run #{result.seq} ({result.source}): {len(fleet.results)} CI(s): {counts or 'none'}; "
        f"compliance rate {shown}",
        highlight=False,
    )


def print_after_change(summary: dict[str, Any]) -> None:
    """A change summary's compliance entry (`opskit.compliance.after`), one line per CI."""
    after = summary.get("compliance") or {}
    if after.get("error"):
        console.print(f"compliance: {plain(after['error'])}", highlight=False)
    for host, entry in sorted((after.get("hosts") or {}).items()):
        moves = "; ".join(entry.get("transitions") or []) or "no feature changed state"
        console.print(
            f"compliance after the change: {plain(host)} {_state(entry['state'])} ({plain(moves)})",
            highlight=False,
        )


@app.command("history")
def history(
    ci: Annotated[str | None, typer.Argument(help="One CI (default: all).")] = None,
    feature: Annotated[str | None, typer.Option("--feature", help="Only this feature.")] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="From this ISO date or time.")
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """When each CI's features changed state, and what caused it (a change, or
    something outside opskit)."""
    from opskit.compliance.history import feature_history
    from opskit.ledger.core import Ledger

    transitions = feature_history(Ledger.open(workspace()), ci=ci, feature=feature, since=since)
    if json_output:
        print_json([t.to_dict() for t in transitions])
        return
    table = Table("at", "ci", "feature", "from", "to", "cause", "result")
    for t in transitions:
        table.add_row(
            t.at[:19] + "Z",
            plain(t.ci),
            plain(t.feature),
            _state(t.before or "-"),
            _state(t.after),
            plain(t.cause),
            f"#{t.seq} ({plain(t.source or '-')})",
        )
    console.print(table)


@app.command("show")
def show(
    ci: Annotated[str, typer.Argument(help="The CI's name.")], json_output: JsonOpt = False
) -> None:
    """A CI's latest compliance result, with its differences."""
    from opskit.compliance.history import latest_result
    from opskit.errors import UsageError
    from opskit.ledger.core import Ledger

    ledger = Ledger.open(workspace())
    event = latest_result(ledger, ci)
    if event is None:
        raise UsageError(f"{ci}: no compliance result recorded (opskit compliance run)")
    data: dict[str, Any] = {"seq": event.seq, "at": event.at_text, **event.payload}
    diff = event.blobs.get("diff")
    data["diff"] = ledger.get_blob(diff).decode() if diff else ""
    if json_output:
        print_json(data)
        return
    reason = f" ({plain(data['reason'])})" if data.get("reason") else ""
    console.print(
        f"[bold]{plain(ci)}[/bold] {_state(data['state'])}{reason}  result #{event.seq} "
        f"{event.at_text[:19]}Z, {plain(data.get('source'))} {plain(data.get('origin') or '')}",
        highlight=False,
    )
    for f in data.get("features", []):
        why = f"  {plain(f['reason'])}" if f.get("reason") else ""
        console.print(f"  {plain(f['feature']):<14} {_state(f['state'])}{why}", highlight=False)
    if data["diff"]:
        sys.stdout.write(data["diff"])


@app.command("remediate")
def remediate(
    select: Annotated[str, typer.Option("--select", help="Which CIs.")],
    title: Annotated[str, typer.Option("--title", help="The change's title.")],
    feature: FeatureOpt = None,
    change_type: Annotated[
        str | None,
        typer.Option("--type", help="normal or emergency (default: the policy's)."),
    ] = None,
    inventory: InventoryOpt = None,
    ticket: Annotated[list[str] | None, typer.Option("--ticket", help="Linked INC/PRB id.")] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a change request whose lines are the remediation of the latest
    compliance results (then submit, assess, approve and apply it)."""
    from opskit.changes import ChangeService
    from opskit.compliance.remediate import remediate as create

    if change_type is not None:
        choice("--type", change_type, ("normal", "emergency"))
    nonblank("--title", title)
    change, plan = create(
        ChangeService(workspace()),
        select=select,
        requester=current_user(),
        title=title,
        features=feature or (),
        inventory=inventory,
        change_type=change_type,
        tickets=ticket or (),
    )
    if json_output:
        print_json({"change": change.to_dict(), "unfixable": plan.unfixable})
        return
    console.print(
        f"[bold]{plain(change.id)}[/bold] {change.state}  {plain(change.runbook_ref)}  "
        f"{plain(change.title)}",
        highlight=False,
    )
    for host in plan.hosts:
        console.print(
            f"  {plain(host.ci)} ({plain(', '.join(plan.features[host.ci]))}):", highlight=False
        )
        for line in host.lines:
            console.print(f"    {plain(line)}", highlight=False)
    for item in plan.unfixable:
        console.print(f"  not remediated: {plain(item)}", highlight=False)
    console.print(
        f"next: opskit change submit {plain(change.id)}; opskit change assess {plain(change.id)}",
        highlight=False,
    )
