"""`opskit worker`: a Celery worker for one workspace configuration.

It consumes its queues (a site's, e.g. `dc1`), runs one host per slot
(`concurrency`, threads in one process) with `opskit.distributed.hostjob`,
and writes the hosts' steps straight into the workspace's PostgreSQL ledger,
the steps of all its hosts sharing commits (one group commit, open while the
worker runs, as the local rollout does for its threads). It announces its
queues in Redis while it runs (`opskit.distributed.liveness`).
Its database URL, runbooks and credential references are its own; the
broker only carries `HostJob`s.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any

from opskit.distributed.app import TASK_NAME, broker_problem, make_app
from opskit.errors import UsageError


def worker_app(ws: Any, broker: str, stack: contextlib.ExitStack | None = None) -> Any:
    """The Celery app with the host task bound to `ws` (a `Workspace`); with
    `stack`, the journal's group commit is opened in it at the first host (the
    ledger is opened when a host needs it, as before any worker ran one)."""
    from opskit.changes import ChangeService
    from opskit.distributed.hostjob import execute
    from opskit.distributed.schedule import register_tasks

    app = make_app(broker)
    service = ChangeService(ws)
    opening = threading.Lock()
    app.steps["worker"].add(PromptPickup)

    def group_commit() -> None:
        journal = service.context.journal
        with opening:
            if stack is not None and journal.group_writer is None:
                stack.enter_context(journal.group_commit())

    @app.task(name=TASK_NAME, bind=True)  # type: ignore[untyped-decorator]
    def host(task: Any, message: dict[str, Any]) -> dict[str, Any]:
        group_commit()
        return execute(service, message, worker=str(task.request.hostname))

    del host
    register_tasks(app, ws)  # the policy's scheduled read-only jobs
    return app


# How often the worker's event loop turns at the least (see PromptPickup).
PICKUP_S = 0.01


def _prompt_pickup_step() -> Any:
    from celery import bootsteps

    class Step(bootsteps.StartStopStep):  # type: ignore[misc]
        """With `worker_disable_prefetch` a worker asks Redis for a message
        only when its event loop turns, and a slot freed by a finished host
        does not turn it: the next host could wait for the loop's next timer
        (up to seconds; measured: 400 ms a host). A timer every `PICKUP_S`
        turns it; it costs the worker about 100 idle turns a second."""

        requires = {"celery.worker.components:Hub"}

        def start(self, worker: Any) -> None:
            if worker.hub is not None:
                worker.hub.call_repeatedly(PICKUP_S, _turn)

    return Step


def _turn() -> None:
    """Nothing: the turn of the event loop is the point."""


PromptPickup = _prompt_pickup_step()


def run_worker(ws: Any, broker: str, queues: list[str], concurrency: int) -> None:
    """Runs the worker until it is stopped (SIGTERM: finishes its hosts first)."""
    from opskit.distributed.liveness import Announcer

    problem = broker_problem(broker)  # before the announcer's Redis client sees it
    if problem:
        raise UsageError(problem)
    name = f"opskit-{'-'.join(queues)}-{os.getpid()}@{socket.gethostname()}"
    with contextlib.ExitStack() as stack:  # closed last: the queued steps are written
        stack.enter_context(Announcer(broker, name, queues))
        app = worker_app(ws, broker, stack)
        _serve(app, name, queues, concurrency)


def _serve(app: Any, name: str, queues: list[str], concurrency: int) -> None:
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
