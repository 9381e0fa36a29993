"""`opskit worker`: runs a Celery worker for this workspace (docs/distributed.md)."""

from __future__ import annotations

from typing import Annotated

import typer

from opskit.cli.common import workspace
from opskit.errors import UsageError


def worker(
    queues: Annotated[
        str, typer.Option("--queues", "-Q", help="Comma-separated queues (sites) to serve.")
    ] = "default",
    concurrency: Annotated[int, typer.Option(help="Hosts run at once.")] = 4,
    broker: Annotated[
        str | None, typer.Option(help="Broker URL (default: runner.broker in opskit.yaml).")
    ] = None,
) -> None:
    """Serve a change's hosts from the Celery queues (PostgreSQL ledger only)."""
    from opskit.distributed.worker import run_worker

    ws = workspace()
    if concurrency < 1:
        raise UsageError(f"--concurrency {concurrency}: give 1 or more")
    if not ws.db_url.startswith("postgresql"):
        raise UsageError("opskit worker needs the PostgreSQL ledger (--db postgresql://...)")
    url = broker or ws.policy.runner.broker
    if not url:
        raise UsageError("opskit worker needs a broker: --broker or runner.broker in opskit.yaml")
    names = [q.strip() for q in queues.split(",") if q.strip()]
    if not names:
        raise UsageError(f"--queues {queues!r}: name at least one queue")
    run_worker(ws, url, names, concurrency)


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
