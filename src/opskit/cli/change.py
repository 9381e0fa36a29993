"""`opskit change`: the change process, a thin layer over `opskit.changes.ChangeService`."""

from __future__ import annotations

import json
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from opskit.cli import compliance
from opskit.cli.common import (
    choice,
    console,
    current_user,
    err_console,
    nonblank,
    plain,
    print_json,
    workspace,
)
from opskit.errors import ChangeRefused, OpskitError, UsageError

# The change engine (runbooks, connectors, SQLAlchemy) is imported by the
# commands that use it: `opskit --help` must not pay for it.
if TYPE_CHECKING:
    from opskit.changes import ChangeRequest, ChangeService

app = typer.Typer(
    help="Change requests: create, assess, approve, apply, roll back, close.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
IdArg = Annotated[str, typer.Argument(help="The change id, e.g. CHG-000001.")]


def _service() -> ChangeService:
    from opskit.changes import ChangeService

    return ChangeService(workspace())


def _parse_params(items: list[str]) -> dict[str, Any]:
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


def _when(value: str | None, option: str) -> datetime | None:
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise UsageError(f"{option} {value!r}: use ISO 8601, e.g. 2026-12-01T22:00+01:00") from None
    if moment.tzinfo is None:
        raise UsageError(f"{option} {value!r}: give a timezone offset (e.g. +00:00)")
    return moment


def _window(
    start: str | None, end: str | None, options: tuple[str, str], *, future: bool = False
) -> tuple[datetime | None, datetime | None]:
    """Both ends parsed; an end not after the start (or, with `future`, an
    end already past) is a usage error (exit 2)."""
    start_at, end_at = _when(start, options[0]), _when(end, options[1])
    if start_at and end_at and end_at <= start_at:
        raise UsageError(f"{options[1]} {end}: must be after {options[0]} {start}")
    if future:
        from opskit.changes.intake import window_problem

        problem = window_problem(start_at, end_at, datetime.now(UTC), options)
        if problem:
            raise UsageError(problem)
    return start_at, end_at


def _brief(change: ChangeRequest) -> None:
    console.print(
        f"[bold]{plain(change.id)}[/bold] {change.state}  {plain(change.runbook_ref)}  "
        f"{len(change.targets)} target(s)  {plain(change.title)}",
        highlight=False,
    )


@app.command()
def create(
    runbook: Annotated[str, typer.Option("--runbook", help="NAME@VERSION")],
    select: Annotated[str, typer.Option("--select", help="Target selection expression.")],
    title: Annotated[str, typer.Option("--title", help="One-line summary of the change.")],
    param: Annotated[list[str] | None, typer.Option("--param", help="KEY=VALUE (repeat).")] = None,
    change_type: Annotated[
        str, typer.Option("--type", help="standard, normal or emergency.")
    ] = "normal",
    description: Annotated[
        str, typer.Option("--description", help="What and why, for the approvers.")
    ] = "",
    window_start: Annotated[
        str | None,
        typer.Option("--window-start", help="Window start, ISO 8601 with offset."),
    ] = None,
    window_end: Annotated[
        str | None, typer.Option("--window-end", help="Window end, ISO 8601 with offset.")
    ] = None,
    ticket: Annotated[list[str] | None, typer.Option("--ticket", help="Linked INC/PRB id.")] = None,
    inventory: Annotated[
        str | None,
        typer.Option(
            "--inventory", help="Inventory name under inventories/ (default: the policy's)."
        ),
    ] = None,
    json_output: JsonOpt = False,
) -> None:
    """Create a change request (draft)."""
    from opskit.changes import ChangeType

    # Wrong option values are usage errors, found before anything is opened.
    choice("--type", change_type, ChangeType)
    nonblank("--title", title)
    params = _parse_params(param or [])
    start, end = _window(window_start, window_end, ("--window-start", "--window-end"), future=True)
    change = _service().create(
        runbook=runbook,
        select_expr=select,
        requester=current_user(),
        title=title,
        params=params,
        type=change_type,
        description=description,
        window_start=start,
        window_end=end,
        tickets=ticket or [],
        inventory=inventory,
    )
    if "@" not in runbook:
        # Named without a version: say which one was taken (change.created records it).
        err_console.print(
            f"note: --runbook {plain(runbook)} has no @VERSION: took the newest, "
            f"{plain(change.runbook_ref)}",
            highlight=False,
        )
    if json_output:
        print_json(change.to_dict())
    else:
        _brief(change)


@app.command()
def submit(change_id: IdArg) -> None:
    """Submit a draft for assessment."""
    _brief(_service().submit(change_id, current_user()))


@app.command()
def assess(
    change_id: IdArg,
    predict: Annotated[
        bool, typer.Option("--predict/--no-predict", help="Predict each host's diff (dry run).")
    ] = True,
    json_output: JsonOpt = False,
) -> None:
    """Assess risk and impact; print the risk factors and the approvals required."""
    change = _service().assess(change_id, current_user(), predict=predict)
    if json_output:
        print_json(change.to_dict())
        return
    _brief(change)
    _print_assessment(change)


def _print_assessment(change: ChangeRequest) -> None:
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
        _print_prediction(host, entry)


def _print_prediction(host: str, entry: dict[str, Any]) -> None:
    """One host's predicted diff: the diff, "no change needed" (an empty
    prediction) or why none could be made."""
    from opskit.changes.prediction import describe

    line = describe(entry)
    if entry.get("diff"):
        console.print(f"[bold]{plain(host)}[/bold] {plain(line)}:", highlight=False)
        console.print(plain(entry["diff"]), highlight=False)
    else:
        console.print(f"{plain(host)}: {plain(line)}", highlight=False)


@app.command()
def approve(
    change_id: IdArg,
    signature: Annotated[
        str | None, typer.Option("--signature", help="Ed25519 signature from 'opskit change sign'.")
    ] = None,
    comment: Annotated[
        str | None, typer.Option("--comment", help="A note recorded with the approval.")
    ] = None,
) -> None:
    """Approve (or, for an emergency change already run, review it retrospectively)."""
    change = _service().approve(change_id, current_user(), comment=comment, signature=signature)
    _brief(change)
    if change.approval_progress:
        console.print(plain(change.approval_progress["summary"]), highlight=False)


@app.command()
def reject(
    change_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it is rejected (recorded).")],
) -> None:
    """Reject a change, with the reason."""
    nonblank("--reason", reason)
    _brief(_service().reject(change_id, current_user(), reason))


@app.command()
def schedule(
    change_id: IdArg,
    start: Annotated[
        str | None, typer.Option("--start", help="Window start, ISO 8601 with offset.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--end", help="Window end, ISO 8601 with offset.")
    ] = None,
) -> None:
    """Schedule an approved change into its window."""
    start_at, end_at = _window(start, end, ("--start", "--end"))
    _brief(_service().schedule(change_id, current_user(), start=start_at, end=end_at))


class _ProgressView:
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


@app.command()
def apply(
    change_id: IdArg,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Predicted diffs only.")] = False,
    json_output: JsonOpt = False,
) -> None:
    """Apply an approved change. Exit code 0 only when the change completed."""
    service = _service()
    actor = current_user()
    change = service.get(change_id)
    view = None if (json_output or dry_run) else _ProgressView(len(change.targets))
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
    if json_output:
        print_json(summary)
    else:
        _print_summary(summary)
    if not dry_run and summary["state"] != "completed":
        raise typer.Exit(1)


def _print_summary(summary: dict[str, Any]) -> None:
    if summary.get("dry_run"):
        for host, entry in summary["predicted_diff"].items():
            _print_prediction(host, entry)
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


@app.command()
def rollback(change_id: IdArg, json_output: JsonOpt = False) -> None:
    """Roll a completed (or failed) change back to its pre-change snapshots."""
    summary = _service().rollback(change_id, current_user())
    if json_output:
        print_json(summary)
    else:
        _print_summary(summary)
    if summary["state"] != "rolled_back":
        raise typer.Exit(1)


@app.command()
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
    if stale_after < 0:
        raise UsageError(f"--stale-after {stale_after:g}: give 0 or more seconds")
    reports = _service().recover(
        current_user(), rollback=rollback_hosts, stale_after=stale_after, change_id=change_id
    )
    if json_output:
        print_json(reports)
        return
    if not reports:
        console.print("no change is in progress")
    for report in reports:
        console.print(f"[bold]{report['change_id']}[/bold]: {report['action']} → {report['state']}")
        for host, entry in (report.get("hosts") or {}).items():
            console.print(
                f"  {plain(host)}: {entry['status']} "
                f"(last ledger step: {plain(entry['last_step'] or '-')})",
                highlight=False,
            )
        if report.get("action") == "recovered" and not rollback_hosts:
            console.print(f"  roll back with: opskit change rollback {report['change_id']}")


@app.command()
def close(
    change_id: IdArg,
    review: Annotated[str, typer.Option("--review", help="Post-implementation review.")],
    outcome: Annotated[
        str | None,
        typer.Option(
            "--outcome", help="rejected, completed, failed or rolled_back (default: its state)."
        ),
    ] = None,
    cause: Annotated[
        str | None, typer.Option("--cause", help="Root cause, when the change failed.")
    ] = None,
    follow_up: Annotated[
        list[str] | None,
        typer.Option("--follow-up", help="A follow-up action or ticket (repeat)."),
    ] = None,
) -> None:
    """Close a change with its post-implementation review."""
    nonblank("--review", review)
    if outcome is not None:
        from opskit.changes import TRANSITIONS, State

        # What a review may report: a state a change can be closed from.
        choice("--outcome", outcome, [s for s in State if State.CLOSED in TRANSITIONS[s]])
    _brief(
        _service().close(
            change_id,
            current_user(),
            review=review,
            outcome=outcome,
            cause=cause,
            follow_ups=follow_up or [],
        )
    )


@app.command()
def show(change_id: IdArg, json_output: JsonOpt = False) -> None:
    """Everything about one change (and whether its rows agree with the ledger)."""
    from opskit.changes.tablecheck import disagreements

    service = _service()
    change = service.get(change_id)
    # The rows shown are an index of the ledger: say when they disagree with it.
    differs = disagreements(service.ledger, change_id)
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
    _brief(change)
    console.print(
        f"type {change.type}, requested by {plain(change.requester)}, runbook digest "
        f"{change.runbook_digest}\nselection {plain(repr(change.selection))} on inventory "
        f"{plain(change.inventory)} ({change.inventory_digest})\n"
        f"targets: {plain(', '.join(change.targets))}",
        highlight=False,
    )
    if change.risk:
        _print_assessment(change)
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


@app.command()
def cancel(
    change_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why the change is withdrawn.")],
) -> None:
    """Cancel a change that has not started (requester or change manager)."""
    nonblank("--reason", reason)
    _brief(_service().cancel(change_id, current_user(), reason=reason))


@app.command("list")
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
    changes = _service().list(state, include_cancelled=all_changes)
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


@app.command()
def sign(
    change_id: IdArg,
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (base64 raw or PEM).")],
) -> None:
    """Print a signature over exactly what an approval of this change binds to."""
    from opskit.changes.signing import load_private_key, sign_document

    change = _service().get(change_id)
    # Plain output: a console would wrap the 88 characters.
    print(sign_document(load_private_key(key), change.binding_document()))


@app.command()
def keygen(
    out: Annotated[Path, typer.Option("--out", help="Where to write the private key (mode 0600).")],
) -> None:
    """Create an Ed25519 key pair for signed approvals; prints the public key
    to put into the policy as `people.NAME.signing_key`."""
    from opskit.changes.signing import generate_keypair

    if out.exists():
        raise UsageError(f"{out}: exists; refusing to overwrite a key")
    private, public = generate_keypair()
    try:
        # Created owner-only and exclusively: the key is never readable by others.
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise UsageError(f"{out}: exists; refusing to overwrite a key") from None
    except OSError as exc:
        raise OpskitError(f"{out}: cannot write the key ({exc.strerror})") from None
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(private + "\n")
    print(public)


@app.command("verify-approvals")
def verify_approvals_cmd(change_id: IdArg, json_output: JsonOpt = False) -> None:
    """Re-check a change's approvals and signatures from the ledger (for auditors)."""
    from opskit.changes import verify_approvals

    service = _service()
    report = verify_approvals(service.ledger, change_id, service.policy)
    if json_output:
        print_json(report)
    else:
        for entry in report["approvals"]:
            sig = {True: "signature valid", False: "SIGNATURE INVALID", None: "unsigned"}[
                entry["signature_valid"]
            ]
            console.print(
                f"seq {entry['seq']}: {plain(entry['approver'])} "
                f"({plain(', '.join(entry['roles'] or []))}) {sig}",
                highlight=False,
            )
        for problem in report["problems"]:
            err_console.print(f"[red]problem:[/red] {plain(problem)}", highlight=False)
        console.print("approvals verify" if report["ok"] else "[red]approvals do NOT verify[/red]")
    if not report["ok"]:
        raise typer.Exit(1)
