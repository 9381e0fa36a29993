"""`opskit schedule`: the policy's recurring read-only jobs on Celery beat,
a thin layer over `opskit.distributed.schedule` (docs/distributed.md)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from opskit.cli.common import console, plain, print_json, workspace
from opskit.errors import UsageError

app = typer.Typer(
    help="Recurring backups, compliance runs and inspections (Celery beat).",
    no_args_is_help=True,
)


@app.command("list")
def list_entries(
    json_output: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """The schedules of opskit.yaml, one row per queue they run on."""
    from opskit.distributed.schedule import plan

    entries = plan(workspace())
    if json_output:
        print_json([e.to_dict() for e in entries])
        return
    table = Table("entry", "job", "when", "queue", "selection", "CIs")
    for e in entries:
        table.add_row(
            plain(e.key),
            e.job,
            plain(e.when),
            plain(e.queue),
            plain(e.selection or "*"),
            str(len(e.cis)),
        )
    console.print(table)
    if not entries:
        console.print("no schedules in opskit.yaml (schedules: [...])", highlight=False)


@app.command("run")
def run(
    broker: Annotated[
        str | None, typer.Option(help="Broker URL (default: runner.broker in opskit.yaml).")
    ] = None,
) -> None:
    """Run Celery beat: send each schedule's job to its queues when it is due
    (the workers of those queues run it; `opskit worker`)."""
    from opskit.distributed.schedule import run_beat

    ws = workspace()
    url = broker or ws.policy.runner.broker
    if not url:
        raise UsageError("opskit schedule run needs a broker: --broker or runner.broker")
    if not ws.policy.schedules:
        raise UsageError("no schedules in opskit.yaml: nothing to run")
    run_beat(ws, url)


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="schedule")
