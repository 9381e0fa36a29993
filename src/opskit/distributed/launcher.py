"""The worker side of `ProcessRunner` (`opskit.distributed.processes`).

A launcher is a fresh Python process (`python -c LAUNCH`) that imports the
engine once, says it is ready, and waits. Told to go, it takes the
coordinator's environment and folder, forks the workers (each a copy of it,
with nothing to import and no thread yet) and waits for them, reporting each
one's exit code. A worker runs the `HostJob`s it receives on its pipe,
several at a time, with `opskit.distributed.hostjob`, as an `opskit worker`
does, until its pipe says stop or closes.

Nothing else is imported in a worker: not the coordinator's `__main__` (a
script that applies a change is not run again there, whether or not it
guards its work with `if __name__ == "__main__":`).

Messages (pickled, over socket pairs made by the coordinator):

- launcher → coordinator: `("ready",)`, `("pids", [pid, ...])` or
  `("failed", reason)`, then `("ended", index, exit_code)` (a negative code:
  killed by that signal);
- coordinator → launcher: `("go", Place, threads, count)`, or the pipe closed;
- coordinator → worker: `(number, HostJob.to_message())`, or None to stop;
- worker → coordinator: `(number, result)`, `(None, "could not start: ...")`,
  and last `(None, cpu_seconds)`.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import resource
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from typing import Any, NamedTuple

from opskit.errors import OpskitError

# What the launcher imports before it says it is ready: what every host needs,
# including what the engine imports only on first use (the database layer and
# its drivers, the policy's models, the ledger's writer): each would otherwise
# cost every worker its import time (SQLAlchemy alone about 0.3 s) before its
# first host.
PRELOAD = (
    "opskit.distributed.hostjob",
    "opskit.changes.service",
    "opskit.runbooks.executor",
    "opskit.connectors.netmiko",
    "opskit.db",
    "opskit.policy",
    "opskit.ledger.core",
    "opskit.ledger.groupcommit",
    "sqlalchemy.dialects.sqlite.pysqlite",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
)

LAUNCH = """\
import sys
try:
    from opskit.distributed.launcher import launch
    launch([int(fd) for fd in sys.argv[1:]])
except Exception as exc:  # one line, never a traceback; the hosts fail untouched
    sys.exit(f"opskit worker launcher: {type(exc).__name__}: {exc}")
"""


class Place(NamedTuple):
    """Where the workers run: the workspace, its database, the environment
    (credential references resolve in it) and the current folder, all the
    coordinator's when the rollout starts."""

    root: str
    db: str | None
    environ: dict[str, str]
    cwd: str


def launch(fds: list[int]) -> None:
    """The launcher's life: `fds` are its control pipe, then one pipe per
    possible worker."""
    # Ctrl-C reaches the whole process group: the coordinator decides, and
    # ends its workers once their hosts are done.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    control, ends = Connection(fds[0]), [Connection(fd) for fd in fds[1:]]
    for module in PRELOAD:
        # An optional part missing (a driver): a host needing it says so itself.
        with contextlib.suppress(ImportError):
            importlib.import_module(module)
    try:
        control.send(("ready",))
        _, place, threads, count = control.recv()
    except (EOFError, OSError):  # the coordinator went away first
        return
    os.environ.clear()
    os.environ.update(place.environ)
    pids: dict[int, int] = {}
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:
                control.close()
                others = [e for i, e in enumerate(ends) if i != index]
                _worker(ends[index], others, place, threads, f"worker-{index + 1}")
            pids[pid] = index
    except OSError as exc:  # no more processes: those forked see their pipes close
        control.send(("failed", f"fork: {exc.strerror or exc}"))
        pids.clear()
    for end in ends:
        end.close()
    if not pids:
        return
    # The coordinator may be gone (killed): its workers still finish their
    # hosts, and are waited for, with nobody to tell.
    with contextlib.suppress(OSError):
        control.send(("pids", sorted(pids, key=pids.__getitem__)))
    while pids:
        pid, status = os.wait()
        if pid in pids:
            with contextlib.suppress(OSError):
                control.send(("ended", pids.pop(pid), os.waitstatus_to_exitcode(status)))


def _worker(
    connection: Connection, others: list[Connection], place: Place, threads: int, name: str
) -> None:
    """A forked worker: serves its pipe, then ends without returning."""
    code = 1
    try:
        for other in others:
            other.close()
        serve(connection, place, threads, name)
        code = 0
    finally:
        os._exit(code)  # never back into the launcher's loop


def serve(connection: Connection, place: Place, threads: int, name: str) -> None:
    """Runs the jobs received on `connection`, `threads` at a time, until it
    receives None or the pipe closes; then reports its CPU seconds."""
    from opskit.changes.service import ChangeService
    from opskit.workspace import Workspace

    try:
        os.chdir(place.cwd)
        service = ChangeService(Workspace.open(place.root, db=place.db))
    except (OSError, OpskitError) as exc:  # nothing received is run: the coordinator fails it
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        connection.send((None, f"worker process {name} could not start: {why}"))
        return
    sending = threading.Lock()

    def run(number: int, message: dict[str, Any]) -> None:
        result = _execute(service, message, name)
        with sending:
            connection.send((number, result))

    with service.context.journal.group_commit(), ThreadPoolExecutor(threads) as pool:
        while True:
            try:
                received = connection.recv()
            except (EOFError, OSError):
                break
            if received is None:
                break
            pool.submit(run, *received)
    service.context.ws.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    with sending:
        connection.send((None, usage.ru_utime + usage.ru_stime))


def _execute(service: Any, message: dict[str, Any], name: str) -> dict[str, Any]:
    from opskit.distributed.hostjob import execute, unknown

    try:
        return execute(service, message, worker=f"{name}@{os.getpid()}")
    except OpskitError as exc:
        return unknown(f"worker error: {exc}")
    except Exception as exc:  # the host's state is not known: say so, keep serving
        return unknown(f"worker error: {type(exc).__name__}")
