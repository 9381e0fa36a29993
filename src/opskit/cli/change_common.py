"""What the `opskit change` commands share: the argument types, the service
and the printing of a change, its assessment and a host's predicted diff."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer
from rich.table import Table

from opskit.cli.common import console, plain, workspace
from opskit.errors import UsageError

# The change engine (runbooks, connectors, SQLAlchemy) is imported by the
# commands that use it: `opskit --help` must not pay for it.
if TYPE_CHECKING:
    from opskit.changes import ChangeRequest, ChangeService

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
JunitOpt = Annotated[
    Path | None,
    typer.Option("--junit", help="Also write the result as JUnit XML (one testsuite per host)."),
]
IdArg = Annotated[str, typer.Argument(help="The change id, e.g. CHG-000001.")]

Command = TypeVar("Command", bound=Callable[..., None])
# The `opskit change` commands by name, filled by `command()` as their modules
# load; `opskit.cli.change` registers them.
COMMANDS: dict[str, Callable[..., None]] = {}


def command(name: str | None = None) -> Callable[[Command], Command]:
    """Declares a function the `opskit change` command `name` (default: the
    function's name with `-` for `_`, as typer names it)."""

    def declare(function: Command) -> Command:
        COMMANDS[name or function.__name__.replace("_", "-")] = function
        return function

    return declare


def open_service(runner: str | None = None, *, hosts: bool = False) -> ChangeService:
    """The change service; `runner` (thread, process, celery) overrides the
    policy's; `hosts`: the command will run hosts (the process runner then
    starts its launcher at once)."""
    from opskit.changes import ChangeService

    ws = workspace()
    kind = runner or ws.policy.runner.kind
    if kind not in ("thread", "process", "celery"):
        raise UsageError(f"--runner {kind}: give thread, process or celery")
    if kind == "thread":
        return ChangeService(ws)
    if kind == "process":
        from opskit.distributed.processes import ProcessRunner

        processes = ProcessRunner(ws.root, db=ws.db_url, processes=ws.policy.runner.processes)
        if hosts:
            processes.prepare()  # its imports, while the change is read
        return ChangeService(ws, runner=processes)
    from opskit.distributed.runner import runner_from_policy

    return ChangeService(ws, runner=runner_from_policy(ws.policy))


def brief(change: ChangeRequest) -> None:
    console.print(
        f"[bold]{plain(change.id)}[/bold] {change.state}  {plain(change.runbook_ref)}  "
        f"{len(change.targets)} target(s)  {plain(change.title)}",
        highlight=False,
    )


def print_assessment(change: ChangeRequest) -> None:
    risk = change.risk or {}
    table = Table(
        "factor", "points", "reason", title=f"risk {risk.get('score')} → {risk.get('level')}"
    )
    for factor in risk.get("factors", []):
        table.add_row(plain(factor["name"]), str(factor["points"]), plain(factor["reason"]))
    console.print(table)
    impact = change.impact or {}
    console.print(
        f"impact: {len(impact.get('targets', []))} target(s), "
        f"{len(impact.get('dependants', []))} dependant(s); inform: "
        f"{plain(', '.join(impact.get('owners', [])) or '-')}",
        highlight=False,
    )
    required = (change.assessment or {}).get("required") or {}
    console.print(f"approvals required: {plain(required.get('reason', '-'))}", highlight=False)
    if required.get("eligible"):
        console.print(f"  eligible: {', '.join(required['eligible'])}", highlight=False)
    for host, entry in (change.predicted_diff or {}).items():
        print_prediction(host, entry)


def print_prediction(host: str, entry: dict[str, Any]) -> None:
    """One host's predicted diff: the diff, "no change needed" (an empty
    prediction) or why none could be made."""
    from opskit.changes.prediction import describe

    line = describe(entry)
    if entry.get("diff"):
        console.print(f"[bold]{plain(host)}[/bold] {plain(line)}:", highlight=False)
        console.print(plain(entry["diff"]), highlight=False)
    else:
        console.print(f"{plain(host)}: {plain(line)}", highlight=False)


def parse_params(items: list[str]) -> dict[str, Any]:
    """`k=v` pairs; a value that parses as JSON is taken as JSON (numbers,
    booleans, `{"env": "VAR"}` secret references), anything else as text."""
    params: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {item!r}: use KEY=VALUE")
        try:
            params[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            params[key.strip()] = value
    return params
