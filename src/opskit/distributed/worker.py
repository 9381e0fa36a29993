"""`opskit worker`: a Celery worker for one workspace configuration.

It consumes its queues (a site's, e.g. `dc1`), runs one host per slot
(`concurrency`, threads in one process) with `opskit.distributed.hostjob`,
and writes the hosts' steps straight into the workspace's PostgreSQL ledger.
Its database URL, runbooks and credential references are its own; the
broker only carries `HostJob`s.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from opskit.distributed.app import TASK_NAME, make_app


def worker_app(ws: Any, broker: str) -> Any:
    """The Celery app with the host task bound to `ws` (a `Workspace`)."""
    from opskit.changes import ChangeService
    from opskit.distributed.hostjob import execute
    from opskit.distributed.schedule import register_tasks

    app = make_app(broker)
    service = ChangeService(ws)

    @app.task(name=TASK_NAME, bind=True)  # type: ignore[untyped-decorator]
    def host(task: Any, message: dict[str, Any]) -> dict[str, Any]:
        return execute(service, message, worker=str(task.request.hostname))

    del host
    register_tasks(app, ws)  # the policy's scheduled read-only jobs
    return app


def run_worker(ws: Any, broker: str, queues: list[str], concurrency: int) -> None:
    """Runs the worker until it is stopped (SIGTERM: finishes its hosts first)."""
    app = worker_app(ws, broker)
    name = f"opskit-{'-'.join(queues)}-{os.getpid()}@{socket.gethostname()}"
    app.worker_main(
        [
            "worker",
            "--queues", ",".join(queues),
            "--concurrency", str(concurrency),
            "--pool", "threads",
            "--hostname", name,
            "--loglevel", "WARNING",
            "--without-gossip",
            "--without-mingle",
        ]
    )  # fmt: skip
