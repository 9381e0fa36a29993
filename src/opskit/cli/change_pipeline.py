"""`opskit change wait` and `opskit change run --standard`: the commands a
CI pipeline uses around the change process (docs/pipelines.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from opskit.cli.change_common import (
    IdArg,
    JsonOpt,
    JunitOpt,
    brief,
    command,
    open_service,
    parse_params,
)
from opskit.cli.change_rollout import print_summary, write_apply_junit
from opskit.cli.common import console, current_user, err_console, nonblank, plain, print_json
from opskit.errors import UsageError


@command()
def wait(
    change_id: IdArg,
    goal: Annotated[
        str, typer.Option("--for", help="approved (default) or completed.")
    ] = "approved",
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 3600.0,
    interval: Annotated[float, typer.Option(help="Seconds between two reads.")] = 5.0,
    json_output: JsonOpt = False,
) -> None:
    """Wait until a change is approved (or completed): exit 0 yes, 1 never, 3 timeout.

    Exit 1 when it never will be: rejected or cancelled (--for approved);
    failed or rolled back as well (--for completed)."""
    from opskit.changes.waiting import wait_for

    service = open_service()
    try:
        outcome = wait_for(service, change_id, goal, timeout=timeout, interval=interval)
    except KeyboardInterrupt:
        err_console.print(f"interrupted while waiting for {plain(change_id)}", highlight=False)
        raise typer.Exit(130) from None
    if json_output:
        print_json({**outcome.__dict__, "exit_code": outcome.exit_code})
    elif not outcome.decided:
        console.print(
            f"{plain(change_id)}: still {outcome.state} after {outcome.waited:.0f}s "
            f"(timed out waiting for {goal})",
            highlight=False,
        )
    else:
        verdict = goal if outcome.reached else f"not {goal}"
        console.print(f"{plain(change_id)}: {outcome.state} ({verdict})", highlight=False)
    if outcome.exit_code:
        raise typer.Exit(outcome.exit_code)


@command()
def run(
    runbook: Annotated[str, typer.Option("--runbook", help="NAME@VERSION")],
    select: Annotated[str, typer.Option("--select", help="Target selection expression.")],
    title: Annotated[str, typer.Option("--title", help="One-line summary of the change.")],
    standard: Annotated[
        bool, typer.Option("--standard", help="Required: a pre-approved standard change.")
    ] = False,
    param: Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE (repeat).")] = None,
    description: Annotated[str, typer.Option("--description", help="What and why.")] = "",
    ticket: Annotated[list[str] | None, typer.Option("--ticket", help="Linked INC/PRB id.")] = None,
    json_output: JsonOpt = False,
    junit: JunitOpt = None,
) -> None:
    """Create, assess and apply a pre-approved standard change in one command.

    The same ledger records as the verbs one by one. Exit 0 only when it completed."""
    from opskit.changes.standard import run_standard
    from opskit.reports.junit import check_junit_path

    if not standard:
        raise UsageError("change run: only --standard changes run in one command")
    nonblank("--title", title)
    check_junit_path(junit)
    params = parse_params(param or [])
    service = open_service(hosts=True)
    change, summary = run_standard(
        service,
        runbook=runbook,
        select_expr=select,
        actor=current_user(),
        title=title,
        params=params,
        description=description,
        tickets=tuple(ticket or []),
    )
    if junit is not None:
        write_apply_junit(summary, junit, service.get(change.id).predicted_diff)
    if json_output:
        print_json(summary)
    else:
        brief(change)
        print_summary(summary)
    if summary["state"] != "completed":
        raise typer.Exit(1)
