"""`opskit change apply`, `rollback` and `recover`: the commands that run a
change on its hosts, with the progress bar and the per-host summary."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from opskit.cli import compliance
from opskit.cli.change_common import (
    IdArg,
    JsonOpt,
    JunitOpt,
    command,
    open_service,
    print_prediction,
)
from opskit.cli.common import console, current_user, err_console, plain, print_json
from opskit.errors import ChangeRefused, UsageError


class ProgressView:
    """A rich progress bar: hosts done, failed, rolled back and skipped, each
    host counted once (`opskit.changes.progress.ProgressTally`)."""

    def __init__(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        from opskit.changes.progress import ProgressTally

        self.tally = ProgressTally(total)
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            transient=False,
        )
        self.task = self.progress.add_task(self._text(), total=total)
        self.started = False
        self.lock = threading.Lock()

    def stop(self) -> None:
        if self.started:
            self.progress.stop()

    def _text(self) -> str:
        c = self.tally.counts
        return (
            f"[green]done {c['ok']}[/green] [red]failed {c['failed']}[/red] "
            f"[yellow]rolled back {c['rolled_back']}[/yellow] skipped {c['skipped']}"
        )

    def __call__(self, ci: str, status: str, change_id: str) -> None:
        # Shown from the first host event on: a refused apply prints only its one line.
        with self.lock:  # hosts report from the rollout's worker threads
            if not self.started:
                self.progress.start()
                self.started = True
            if self.tally.update(ci, status):
                self.progress.update(
                    self.task, completed=self.tally.completed, description=self._text()
                )


@command()
def apply(
    change_id: IdArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Predicted diffs only.")] = False,
    json_output: JsonOpt = False,
    junit: JunitOpt = None,
    runner: Annotated[
        str | None,
        typer.Option(help="thread, process or celery (default: runner.kind in opskit.yaml)."),
    ] = None,
) -> None:
    """Apply an approved change. Exit code 0 only when the change completed."""
    from opskit.reports.junit import check_junit_path

    check_junit_path(junit)
    service = open_service(runner, hosts=not dry_run)
    actor = current_user()
    change = service.get(change_id)
    view = None if (json_output or dry_run) else ProgressView(len(change.targets))
    try:
        if view is not None:
            try:
                summary = service.apply(change_id, actor, dry_run=dry_run, progress=view)
            finally:
                view.stop()
        else:
            summary = service.apply(change_id, actor, dry_run=dry_run)
    except ChangeRefused as exc:
        if json_output:
            print_json({"change_id": change_id, "state": "refused", "reason": exc.reason})
        raise
    if junit is not None:
        write_apply_junit(summary, junit, change.predicted_diff)
    if json_output:
        print_json(summary)
    else:
        print_summary(summary)
    if not dry_run and summary["state"] != "completed":
        raise typer.Exit(1)


def write_apply_junit(summary: Any, path: Path, predicted: dict[str, Any] | None = None) -> None:
    """The rollout (or the dry run's predictions) as JUnit XML; `predicted`:
    the change's assessed predictions, for hosts whose run made no diff."""
    from opskit.reports.junit import change_junit, dry_run_junit, write_junit

    xml = dry_run_junit(summary) if summary.get("dry_run") else change_junit(summary, predicted)
    write_junit(xml, path)


def print_summary(summary: dict[str, Any]) -> None:
    if summary.get("dry_run"):
        for host, entry in summary["predicted_diff"].items():
            print_prediction(host, entry)
        return
    table = Table("host", "status", "proof", "error")
    requested = summary.get("rollback") or {}
    for host, entry in summary.get("hosts", {}).items():
        method = entry.get("restored_by") or ((requested.get(host) or {}).get("proof") or {}).get(
            "method"
        )
        proof = f"equal to snapshot ({method})" if method else ""
        table.add_row(plain(host), entry["status"], proof, plain(entry.get("error") or ""))
    console.print(table)
    colour = "green" if summary["state"] == "completed" else "red"
    cause = f" ({plain(summary['cause'])})" if summary.get("cause") else ""
    console.print(
        f"{summary['change_id']}: [{colour}]{summary['state']}[/{colour}]{cause}", highlight=False
    )
    compliance.print_after_change(summary)


@command()
def rollback(change_id: IdArg, json_output: JsonOpt = False) -> None:
    """Roll a completed (or failed) change back to its pre-change snapshots."""
    summary = open_service(hosts=True).rollback(change_id, current_user())
    if json_output:
        print_json(summary)
    else:
        print_summary(summary)
    if summary["state"] != "rolled_back":
        raise typer.Exit(1)


@command()
def recover(
    change_id: Annotated[
        str | None, typer.Argument(help="Only this change (default: every change in progress).")
    ] = None,
    rollback_hosts: Annotated[
        bool, typer.Option("--rollback", help="Also roll back every host that may have changed.")
    ] = False,
    stale_after: Annotated[
        float, typer.Option(help="Seconds without heartbeat before a remote runner counts as gone.")
    ] = 30.0,
    json_output: JsonOpt = False,
) -> None:
    """Find changes left in progress by a crashed run; report, release locks, mark failed."""
    from opskit.changes.summary import RECOVERED

    if stale_after < 0:
        raise UsageError(f"--stale-after {stale_after:g}: give 0 or more seconds")
    reports = open_service().recover(
        current_user(), rollback=rollback_hosts, stale_after=stale_after, change_id=change_id
    )
    if json_output:
        print_json(reports)
        return
    if not reports:
        console.print("no change is in progress")
    for report in reports:
        console.print(f"[bold]{report.change_id}[/bold]: {report.action} → {report.state}")
        for host, entry in (report.hosts or {}).items():
            console.print(
                f"  {plain(host)}: {entry.status} "
                f"(last ledger step: {plain(entry.last_step or '-')})",
                highlight=False,
            )
        if report.action == RECOVERED and not rollback_hosts:
            console.print(f"  roll back with: opskit change rollback {report.change_id}")
