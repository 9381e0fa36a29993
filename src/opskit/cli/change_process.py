"""`opskit change` verbs of the change process before and after the rollout:
create, submit, assess, approve, reject, schedule, close, cancel, and the
signing of approvals (sign, keygen, verify-approvals)."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from opskit.cli.change_common import (
    IdArg,
    JsonOpt,
    brief,
    command,
    open_service,
    parse_params,
    print_assessment,
)
from opskit.cli.common import (
    choice,
    console,
    current_user,
    err_console,
    nonblank,
    plain,
    print_json,
)
from opskit.errors import OpskitError, UsageError


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


@command()
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
    params = parse_params(param or [])
    start, end = _window(window_start, window_end, ("--window-start", "--window-end"), future=True)
    change = open_service().create(
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
        brief(change)


@command()
def submit(change_id: IdArg) -> None:
    """Submit a draft for assessment."""
    brief(open_service().submit(change_id, current_user()))


@command()
def assess(
    change_id: IdArg,
    predict: Annotated[
        bool, typer.Option("--predict/--no-predict", help="Predict each host's diff (dry run).")
    ] = True,
    json_output: JsonOpt = False,
) -> None:
    """Assess risk and impact; print the risk factors and the approvals required."""
    change = open_service().assess(change_id, current_user(), predict=predict)
    if json_output:
        print_json(change.to_dict())
        return
    brief(change)
    print_assessment(change)


@command()
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
    change = open_service().approve(change_id, current_user(), comment=comment, signature=signature)
    brief(change)
    if change.approval_progress:
        console.print(plain(change.approval_progress["summary"]), highlight=False)


@command()
def reject(
    change_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it is rejected (recorded).")],
) -> None:
    """Reject a change, with the reason."""
    nonblank("--reason", reason)
    brief(open_service().reject(change_id, current_user(), reason))


@command()
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
    brief(open_service().schedule(change_id, current_user(), start=start_at, end=end_at))


@command()
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
    brief(
        open_service().close(
            change_id,
            current_user(),
            review=review,
            outcome=outcome,
            cause=cause,
            follow_ups=follow_up or [],
        )
    )


@command()
def cancel(
    change_id: IdArg,
    reason: Annotated[str, typer.Option("--reason", help="Why the change is withdrawn.")],
) -> None:
    """Cancel a change that has not started (requester or change manager)."""
    nonblank("--reason", reason)
    brief(open_service().cancel(change_id, current_user(), reason=reason))


@command()
def sign(
    change_id: IdArg,
    key: Annotated[Path, typer.Option("--key", help="Ed25519 private key (base64 raw or PEM).")],
) -> None:
    """Print a signature over exactly what an approval of this change binds to."""
    from opskit.changes.signing import load_private_key, sign_document

    change = open_service().get(change_id)
    # Plain output: a console would wrap the 88 characters.
    print(sign_document(load_private_key(key), change.binding_document()))


@command()
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


@command("verify-approvals")
def verify_approvals_cmd(change_id: IdArg, json_output: JsonOpt = False) -> None:
    """Re-check a change's approvals and signatures from the ledger (for auditors)."""
    from opskit.changes import verify_approvals

    service = open_service()
    report = verify_approvals(service.context.ledger, change_id, service.context.policy)
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
