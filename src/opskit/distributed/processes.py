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
its own reads, in this process's environment, as any child process's would
be; a job names the change, host and step, never a credential or a
parameter value) and runs
each `HostJob` with `opskit.distributed.hostjob` (version and approved-digest
checks, the idempotency claim, the host's steps in the ledger, its steps
sharing one group commit). The rollout is unchanged: canary, batches, error
budget and group caps are decided in the coordinator, whose threads only
wait here. Works with SQLite (one machine, one file; every append takes the
database's write lock) and PostgreSQL.

The workers are forked, when a rollout starts, from a launcher: a fresh
Python process that imported the engine beforehand (`prepare`; about a
second of CPU) and nothing of the coordinator's program
(`opskit.distributed.launcher`). They end with the rollout.

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
import os
import socket
import subprocess
import sys
import threading
import weakref
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import opskit
from opskit.changes.runners import HostJob
from opskit.distributed.hostjob import give_up, unknown
from opskit.distributed.launcher import LAUNCH, Place
from opskit.errors import OpskitError

# How long a worker's exit code is waited for once its pipe closed.
EXIT_CODE_WAIT_S = 5.0


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
        self.start_error: str | None = None  # why the last start failed
        # The CPU seconds of the workers that ended (their own report).
        self.worker_cpu_seconds = 0.0
        self._launcher: _Launcher | None = None
        self._workers: list[_Worker] = []
        self._ending: list[threading.Thread] = []  # reaping stopped workers
        self._lock = threading.Lock()

    def prepare(self, *, wait: bool = False) -> None:
        """Starts the launcher now, so that its imports (about a second of
        CPU) overlap with the reading of the change; with `wait`, returns
        once it is ready. A rollout starts one itself when none is ready."""
        with self._lock:
            if self._launcher is None:
                try:
                    self._launcher = _Launcher(self.processes)
                except OSError as exc:  # shown when the rollout starts, in one line
                    self.start_error = f"worker processes could not start: {exc.strerror or exc}"
            launcher = self._launcher
        if wait and launcher is not None:
            launcher.wait_ready()

    # -- RunnerFactory --------------------------------------------------------
    def __call__(self, workers: int) -> Executor:
        """The rollout's threads (each waits for one host); the worker
        processes live as long as they do."""
        return _WaitingThreads(self, workers)

    def start(self, jobs: int) -> None:
        """Starts the workers for up to `jobs` hosts at once (the rollout's
        threads: its device semaphore keeps the hosts in flight to its width)."""
        self.start_error = None
        self.prepare()
        with self._lock:
            launcher, self._launcher = self._launcher, None
        if launcher is None:
            return
        count = max(1, min(self.processes, jobs))
        place = Place(str(self.root), self.db, dict(os.environ), os.getcwd())
        try:
            workers = launcher.go(place, -(-jobs // count), count)
        except OpskitError as exc:
            self.start_error = str(exc)
            workers = []
        with self._lock:
            self._workers = workers

    @property
    def worker_pids(self) -> list[int]:
        """The process ids of the workers running now (none between rollouts)."""
        with self._lock:
            return [w.pid for w in self._workers if w.alive]

    def stop(self, *, wait: bool = True) -> None:
        """Tells every worker to end once its hosts are done; with `wait`,
        waits until they have (else `wait_stopped` does). A rollout does not
        wait: when its threads are done, every host's steps are durable and
        its result is in, so the workers only have to close."""
        with self._lock:
            workers, self._workers = self._workers, []
        for worker in workers:
            worker.tell_to_stop()
        ending = threading.Thread(target=self._reap, args=(workers,), name="opskit workers end")
        ending.start()  # not a daemon: the interpreter's exit waits for it
        with self._lock:
            self._ending.append(ending)
        if wait:
            self.wait_stopped()

    def wait_stopped(self) -> None:
        """Waits until the workers told to stop have ended."""
        with self._lock:
            ending, self._ending = self._ending, []
        for thread in ending:
            thread.join()

    def _reap(self, workers: list[_Worker]) -> None:
        seconds = sum(worker.join() for worker in workers)
        if workers:
            workers[0].launcher.close()
        with self._lock:
            self.worker_cpu_seconds += seconds

    # -- RemoteHosts ------------------------------------------------------------
    def dispatch(self, job: HostJob, ci: Any, ctx: Any) -> dict[str, Any]:
        with self._lock:
            live = [w for w in self._workers if w.alive]
            worker = min(live, key=lambda w: w.in_flight) if live else None
            ended = [w.ended for w in self._workers if w.ended] + [self.start_error]
        if worker is None:
            why = next((e for e in ended if e), "no worker process is running")
            return give_up(ctx, job, f"unreachable: {why}")
        waiting = worker.send(job)
        if waiting is None:  # gone before it took the job: its reader says why
            worker.wait_ended(EXIT_CODE_WAIT_S)
            return give_up(ctx, job, f"unreachable: {worker.ended or worker.name + ' ended'}")
        try:
            return waiting.result()
        except NotReceived as exc:
            return give_up(ctx, job, str(exc))

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
            self._runner.stop(wait=False)


class _Launcher:
    """A launcher process (`opskit.distributed.launcher`) with a control
    pipe and one pipe for each worker it may fork."""

    def __init__(self, slots: int) -> None:
        control = socket.socketpair()
        pairs = [socket.socketpair() for _ in range(slots)]
        theirs = [control[1], *(pair[1] for pair in pairs)]
        # The launcher finds this opskit whatever put it on this process's path.
        source = str(Path(opskit.__file__).resolve().parents[1])
        path = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH")])])
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-c", LAUNCH, *(str(end.fileno()) for end in theirs)],
                pass_fds=[end.fileno() for end in theirs],
                stdin=subprocess.DEVNULL,
                env={**os.environ, "PYTHONPATH": path},
            )
        finally:
            for end in theirs:
                end.close()
        self.control = Connection(control[0].detach())
        self.ends = [Connection(pair[0].detach()) for pair in pairs]
        # A launcher prepared for a rollout that never started (refused, say)
        # ends when this object goes, or at exit: its pipes close, it returns.
        weakref.finalize(self, _end_unused, self.process, [self.control, *self.ends])
        self._ready: bool | None = None  # not known until it says so, or ends
        self._exit_codes: dict[int, Future[int]] = {}
        self._statuses: threading.Thread | None = None

    def wait_ready(self) -> None:
        """Blocks until the launcher has imported the engine (or ended)."""
        if self._ready is None:
            self._ready = self._receive() == ("ready",)

    def go(self, place: Place, threads: int, count: int) -> list[_Worker]:
        """Forks `count` workers of `threads` threads each."""
        self.wait_ready()
        if not self._ready:
            raise OpskitError(self._failure())
        try:
            self.control.send(("go", place, threads, count))
            word = self._receive()
        except (OSError, ValueError):
            word = None
        if isinstance(word, tuple) and word[0] == "failed":
            self._failure()
            raise OpskitError(f"worker processes could not start: {word[1]}")
        if not (isinstance(word, tuple) and word[0] == "pids"):
            raise OpskitError(self._failure())
        for end in self.ends[count:]:
            end.close()
        self._exit_codes = {index: Future() for index in range(count)}
        self._statuses = threading.Thread(target=self._read_statuses, daemon=True)
        self._statuses.start()
        return [_Worker(self, index, pid, self.ends[index]) for index, pid in enumerate(word[1])]

    def exit_code(self, index: int, timeout: float) -> int | None:
        try:
            return self._exit_codes[index].result(timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        """Waits for the launcher, whose workers have all been told to stop."""
        self.process.wait()
        if self._statuses is not None:
            self._statuses.join()
        self.control.close()

    def _receive(self) -> Any:
        try:
            return self.control.recv()
        except (EOFError, OSError):
            return None

    def _failure(self) -> str:
        self.process.wait()
        self.control.close()
        for end in self.ends:
            end.close()
        return f"worker processes could not start (launcher exit code {self.process.returncode})"

    def _read_statuses(self) -> None:
        while (word := self._receive()) is not None:
            if word[0] == "ended" and word[1] in self._exit_codes:
                self._exit_codes[word[1]].set_result(word[2])


def _end_unused(process: subprocess.Popen[bytes], pipes: list[Connection]) -> None:
    for pipe in pipes:
        pipe.close()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


class _Worker:
    """One worker process, its pipe, and the hosts it holds."""

    def __init__(self, launcher: _Launcher, index: int, pid: int, connection: Connection) -> None:
        self.launcher = launcher
        self.index = index
        self.pid = pid
        self.name = f"worker-{index + 1}/{pid}"
        self.connection = connection
        self.alive = True
        self.ended: str | None = None  # why it ended, once it has
        self._cpu_seconds = 0.0
        self._waiting: dict[int, Future[dict[str, Any]]] = {}
        self._numbers = itertools.count()
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, name=f"opskit {self.name}", daemon=True)
        self._reader.start()

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

    def tell_to_stop(self) -> None:
        """The worker ends once its hosts are done."""
        with self._lock, contextlib.suppress(OSError, ValueError):  # already gone
            self.connection.send(None)

    def join(self) -> float:
        """Waits until the worker has ended; its CPU seconds."""
        self._reader.join()
        self.connection.close()
        return self._cpu_seconds

    def _read(self) -> None:
        while True:
            try:
                number, result = self.connection.recv()
            except (EOFError, OSError):
                break
            if number is None and isinstance(result, str):  # it could not start
                self._refused(result)
                return
            if number is None:  # its last word: the CPU it used
                self._cpu_seconds = result
                continue
            with self._lock:
                waiting = self._waiting.pop(number, None)
            if waiting is not None:
                waiting.set_result(result)
        code = self.launcher.exit_code(self.index, EXIT_CODE_WAIT_S)
        reason = f"worker process {self.name} ended (exit code {code})"
        with self._lock:
            self.alive = False
            self.ended = self.ended or reason
            held, self._waiting = self._waiting, {}
        for waiting in held.values():
            waiting.set_result(unknown(reason))

    def _refused(self, reason: str) -> None:
        """The worker could not start: it took no job, so each job sent to it
        is given up (`NotReceived`), nothing touched."""
        with self._lock:
            self.alive, self.ended = False, reason
            held, self._waiting = self._waiting, {}
        for waiting in held.values():
            waiting.set_exception(NotReceived(reason))
