"""`ProcessRunner`: a change's hosts in worker processes on this machine.

One Python process runs its SSH sessions one interpreter step at a time:
with a few dozen sessions in flight the interpreter, not the network or the
devices, bounds the wall time (netmiko polls every session, paramiko's
transport threads take every packet; docs/performance.md). This runner
shares the hosts among `processes` worker processes, each running its share
on threads, so the sessions use every core, as Ansible's forks do, without
a broker: jobs and results go over pipes.

A worker is what `opskit worker` is, on this machine: it opens the same
workspace (the database, runbooks, inventory and credential references are
its own reads; no secret and no parameter value crosses the pipe) and runs
each `HostJob` with `opskit.distributed.hostjob` (version and approved-digest
checks, the idempotency claim, the host's steps in the ledger, its steps
sharing one group commit). The rollout is unchanged: canary, batches, error
budget and group caps are decided in the coordinator, whose threads only
wait here. Works with SQLite (one machine, one file; every append takes the
database's write lock) and PostgreSQL.

A worker that ends while it holds hosts (killed, crashed): those hosts are
`unknown` (as after a crash of the thread runner; `opskit change recover`
and `opskit change rollback` handle them from the ledger); a host not yet
sent to it is failed, nothing touched, its key claimed by the coordinator.

>>> ProcessRunner("/srv/ops", processes=2).processes
2
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import resource
import signal
import threading
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NamedTuple

from opskit.changes.runners import HostJob
from opskit.errors import OpskitError
from opskit.hoststate import HostState

# Imported once by the fork server, so that a worker starts in milliseconds
# instead of importing the engine again (about a second of CPU each).
PRELOAD = [
    "opskit.distributed.hostjob",
    "opskit.changes.service",
    "opskit.runbooks.executor",
    "opskit.connectors.netmiko_conn",
]


def default_processes() -> int:
    """As many workers as this process may use cores, at least one."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class ProcessRunner:
    """Runs a change's hosts in local worker processes (module docstring).

    `root` and `db` name the workspace the workers open (`Workspace.open`);
    `processes` is how many (default: the usable cores). The hosts are
    shared among them, each sent to the worker holding the fewest."""

    def __init__(self, root: str | Path, *, db: str | None = None, processes: int | None = None):
        self.root = Path(root)
        self.db = db
        self.processes = processes or default_processes()
        self._workers: list[_Worker] = []
        self._lock = threading.Lock()
        # The CPU seconds of the workers that ended (their own report).
        self.worker_cpu_seconds = 0.0

    def prepare(self, *, background: bool = False) -> None:
        """Starts the fork server and waits until it has imported the engine
        (about a second of CPU, once per process), so that no rollout waits
        for it; with `background`, returns at once. A rollout starts it
        itself when nobody did."""
        if background:
            threading.Thread(target=self.prepare, name="opskit fork server", daemon=True).start()
            return
        process = self._context().Process(target=_nothing, name="opskit warm-up")
        process.start()
        process.join()

    # -- RunnerFactory --------------------------------------------------------
    def __call__(self, workers: int) -> Executor:
        """The rollout's threads (each waits for one host); the worker
        processes live as long as they do."""
        return _WaitingThreads(self, workers)

    def start(self, jobs: int) -> None:
        """Starts the workers for up to `jobs` hosts at once (the rollout's
        threads: its device semaphore keeps the hosts in flight to its width)."""
        processes = max(1, min(self.processes, jobs))
        threads = -(-jobs // processes)
        context = self._context()
        with self._lock:
            self._workers = [
                _Worker.start(context, n, self.root, self.db, threads) for n in range(processes)
            ]

    @staticmethod
    def _context() -> Any:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        return context

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the workers running now (none between rollouts)."""
        with self._lock:
            return [w.process.pid for w in self._workers if w.alive]

    def stop(self) -> None:
        """Asks every worker to finish its hosts and end, and waits for it."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            self.worker_cpu_seconds += worker.stop()

    # -- RemoteHosts ------------------------------------------------------------
    def dispatch(self, job: HostJob, ci: Any, ctx: Any) -> dict[str, Any]:
        with self._lock:
            live = [w for w in self._workers if w.alive]
            worker = min(live, key=lambda w: w.in_flight) if live else None
        if worker is None:
            ended = [w.ended for w in self._workers if w.ended] or ["no worker process is running"]
            return _abandon(ctx, job, f"unreachable: {ended[0]}")
        waiting = worker.send(job)
        if waiting is None:  # gone before it took the job: its reader says why
            worker.wait_ended(timeout=5)
            ended = worker.ended or f"worker process {worker.name} ended"
            return _abandon(ctx, job, f"unreachable: {ended}")
        try:
            return waiting.result()
        except NotReceived as exc:
            return _abandon(ctx, job, str(exc))

    def blockers(self, ws: Any, cis: list[Any]) -> list[str]:
        """An in-memory database cannot be shared with another process."""
        url = str(ws.db_url)
        if url.startswith("sqlite") and (url.endswith(":memory:") or url == "sqlite://"):
            return ["the process runner needs a database file or server, not in-memory SQLite"]
        return []

    def queue_problems(self, cis: list[Any]) -> list[str]:
        """Every CI can run on this machine."""
        return []


class NotReceived(OpskitError):
    """A worker ended before it took the job (it could not start)."""


class _WaitingThreads(ThreadPoolExecutor):
    """The rollout's threads, with the workers started before them and
    stopped after them."""

    def __init__(self, runner: ProcessRunner, workers: int) -> None:
        runner.start(workers)
        super().__init__(max_workers=workers, thread_name_prefix="opskit host")
        self._runner = runner

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        super().shutdown(wait, cancel_futures=cancel_futures)
        if wait:
            self._runner.stop()


class _Worker:
    """One worker process, its pipe, and the hosts it holds."""

    def __init__(self, name: str, process: Any, connection: Connection) -> None:
        self.name = name
        self.process = process
        self.connection = connection
        self.alive = True
        self.ended: str | None = None  # why it ended, once it has
        self._waiting: dict[int, Future[dict[str, Any]]] = {}
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"opskit {name}", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, context: Any, n: int, root: Path, db: str | None, threads: int) -> _Worker:
        name = f"worker-{n + 1}"
        ours, theirs = context.Pipe()
        # The fork server's environment and folder are those of when it started:
        # a worker takes this process's, as a process started now would.
        place = Place(str(root), db, dict(os.environ), os.getcwd())
        process = context.Process(
            target=serve, args=(theirs, place, threads, name), name=f"opskit {name}"
        )
        process.start()
        theirs.close()
        return cls(f"{name}/{process.pid}", process, ours)

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def send(self, job: HostJob) -> Future[dict[str, Any]] | None:
        """The future of `job`'s result; None when the worker is gone
        before it received the job."""
        waiting: Future[dict[str, Any]] = Future()
        with self._lock:
            if not self.alive:
                return None
            number = next(self._numbers)
            self._waiting[number] = waiting
            try:
                self.connection.send((number, job.to_message()))
            except (OSError, ValueError):
                del self._waiting[number]
                return None
        return waiting

    def wait_ended(self, timeout: float) -> None:
        self._reader.join(timeout)

    def stop(self) -> float:
        """Ends the worker once its hosts are done; its CPU seconds."""
        with self._lock, contextlib.suppress(OSError, ValueError):  # already gone
            self.connection.send(None)
        self.process.join()
        self._reader.join()
        self.connection.close()
        return self._cpu_seconds

    def _read(self) -> None:
        self._cpu_seconds = 0.0
        while True:
            try:
                number, result = self.connection.recv()
            except (EOFError, OSError):
                break
            if number is None and isinstance(result, str):  # it could not start
                self._refused(result)
                break
            if number is None:  # its last word: the CPU it used
                self._cpu_seconds = result
                continue
            with self._lock:
                waiting = self._waiting.pop(number, None)
            if waiting is not None:
                waiting.set_result(result)
        self.process.join()
        reason = f"worker process {self.name} ended (exit code {self.process.exitcode})"
        with self._lock:
            self.alive = False
            self.ended = self.ended or reason
            held, self._waiting = self._waiting, {}
        for waiting in held.values():
            waiting.set_result(_unknown(reason))

    def _refused(self, reason: str) -> None:
        """The worker could not start: it took no job, so each job sent to it
        is given up (`NotReceived`), nothing touched."""
        with self._lock:
            self.alive, self.ended = False, reason
            held, self._waiting = self._waiting, {}
        for waiting in held.values():
            waiting.set_exception(NotReceived(reason))


class Place(NamedTuple):
    """Where a worker runs: the workspace, its database, the environment
    (credential references resolve in it) and the current folder."""

    root: str
    db: str | None
    environ: dict[str, str]
    cwd: str


def serve(connection: Connection, place: Place, threads: int, name: str) -> None:
    """A worker process: runs the jobs it receives, `threads` at a time,
    until it receives None or its coordinator's end of the pipe closes.
    Ctrl-C is the coordinator's to handle: it ends the workers when its
    hosts are done."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.clear()
    os.environ.update(place.environ)
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


def _nothing() -> None:
    """A warm-up process's work."""


def _execute(service: Any, message: dict[str, Any], name: str) -> dict[str, Any]:
    from opskit.distributed.hostjob import execute

    try:
        return execute(service, message, worker=f"{name}@{os.getpid()}")
    except OpskitError as exc:
        return _unknown(f"worker error: {exc}")
    except Exception as exc:  # the host's state is not known: say so, keep serving
        return _unknown(f"worker error: {type(exc).__name__}")


def _abandon(ctx: Any, job: HostJob, reason: str) -> dict[str, Any]:
    """The host is given up before a worker received it: the coordinator
    claims its key, so nothing runs it later."""
    from opskit.distributed.hostjob import claim

    if not claim(ctx, job, worker="coordinator (gave up)"):
        return _unknown(f"{reason}, after a worker claimed the host")
    return {"status": HostState.FAILED, "ran": False, "error": reason, "detail": {}}


def _unknown(reason: str) -> dict[str, Any]:
    return {"status": HostState.UNKNOWN, "ran": True, "error": reason, "detail": {}}
