"""`opskit notify`: the webhook outbox (`opskit.notify`).

- ``deliver [--once] [--now]``: post what is due (``--once``: one pass; else
  until nothing is pending or due within a minute); ``--now`` ignores the backoff.
- ``status [--json]``: pending / delivered / failed counts and the oldest pending.

Every command that appends ledger events also starts a background sender
(`opskit.notify.trigger`), so ``deliver`` is needed only to retry sooner.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Annotated

import typer

from opskit.cli.common import print_json, workspace

if TYPE_CHECKING:
    from opskit.notify.sender import Delivery
    from opskit.workspace import Workspace

app = typer.Typer(
    help="Webhook notifications and source-of-truth write-back of ledger events: deliver, status."
)


@app.command("deliver")
def deliver(
    once: Annotated[
        bool, typer.Option("--once", help="One pass over what is due, then exit.")
    ] = False,
    now: Annotated[
        bool, typer.Option("--now", help="Retry pending rows now (no backoff).")
    ] = False,
    linger_pid: Annotated[
        int | None,
        typer.Option("--linger-pid", hidden=True, help="Deliver while this process runs."),
    ] = None,
) -> None:
    """Post the pending notifications, signed; failures stay pending (retried with backoff)."""
    from opskit.notify import sender

    ws = workspace()
    if linger_pid is not None:
        report = sender.deliver_while(ws, linger_pid)
    elif once:
        report = sender.deliver(ws, force=now)
    else:
        report = _until_done(ws, force=now)
    typer.echo(
        f"delivered {report.delivered}, retry later {report.retried}, failed {report.failed}"
    )


def _until_done(ws: Workspace, *, force: bool) -> Delivery:
    """Delivers until nothing is pending, for at most a minute."""
    from opskit.notify import sender
    from opskit.notify.status import outbox_status

    engine = sender.Sender(ws)
    total = engine.deliver(force=force)
    deadline = time.monotonic() + 60
    while outbox_status(ws).pending and time.monotonic() < deadline:
        time.sleep(1)
        report = engine.deliver()
        total.delivered += report.delivered
        total.retried += report.retried
        total.failed += report.failed
    return total


@app.command("status")
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """How many notifications are pending, delivered and failed; the oldest pending."""
    from opskit.notify.status import outbox_status

    result = outbox_status(workspace())
    if as_json:
        print_json(result.to_dict())
        return
    typer.echo(f"pending {result.pending}, delivered {result.delivered}, failed {result.failed}")
    oldest = result.oldest_pending
    if oldest is not None:
        error = f", last error: {oldest.last_error}" if oldest.last_error else ""
        typer.echo(
            f"oldest pending: seq {oldest.seq} {oldest.kind} -> {oldest.url}"
            f" since {oldest.created_at:%Y-%m-%d %H:%M:%S}Z, {oldest.attempts} attempts{error}"
        )


def register(parent: typer.Typer) -> None:
    """Adds `opskit notify`. The background sender is enabled by `opskit.cli.main`
    while a command runs, not here: importing the CLI must not make library
    callers in the same process start senders."""
    parent.add_typer(app, name="notify")
