"""`opskit lab up|down|status`: the emulated device lab of the workspace."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from opskit.cli.common import console, plain, print_json, workspace

if TYPE_CHECKING:
    from opskit.lab import Lab, LabStatus

app = typer.Typer(
    help="Start, show and stop the device lab (emulated IOS switches, sshd Linux hosts).",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _lab() -> Lab:
    from opskit.lab import Lab

    return Lab(workspace())


def _show(status: LabStatus, *, as_json: bool, title: str) -> None:
    if as_json:
        print_json(status.to_dict())
        return
    if not status.devices:
        console.print(f"{title}: no lab is running in {plain(status.workspace)}", highlight=False)
        return
    table = Table(title=title)
    for column in ("name", "kind", "host", "port", "pid"):
        table.add_column(column)
    for device in status.devices:
        table.add_row(
            plain(device.name), device.kind, plain(device.host), str(device.port), str(device.pid)
        )
    console.print(table)
    if status.inventory:
        console.print(f"inventory: {plain(status.inventory)}", highlight=False)


@app.command()
def up(
    devices: Annotated[
        int, typer.Option("--devices", "-n", help="Emulated Cisco IOS switches.")
    ] = 4,
    linux: Annotated[
        int | None,
        typer.Option(help="Real sshd Linux hosts (default: 1 when openssh-server is installed)."),
    ] = None,
    junos: Annotated[
        int, typer.Option(help="Emulated Juniper devices (NETCONF only: NAPALM junos, ncclient).")
    ] = 0,
    as_json: JsonOption = False,
) -> None:
    """Start the lab and write its inventory (inventories/lab/); reports a running lab."""
    status = _lab().up(devices=devices, linux=linux, junos=junos)
    title = "lab already running (nothing started)" if status.already_running else "lab started"
    _show(status, as_json=as_json, title=title)


@app.command()
def status(as_json: JsonOption = False) -> None:
    """Show what the lab runs."""
    _show(_lab().status(), as_json=as_json, title="lab")


@app.command()
def down(as_json: JsonOption = False) -> None:
    """Stop exactly the processes the lab started and remove its inventory."""
    _show(_lab().down(), as_json=as_json, title="lab stopped")
