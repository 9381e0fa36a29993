"""How a rollout's per-host jobs run: the runner seam, and today's thread
pool as its default.

The rollout decides *which* hosts run together (canary, batches, error
budget, group caps; `opskit.changes.rollout`) and `opskit.changes.hostrun`
*what* happens on one host; a runner only runs those jobs. The seam is the
standard `concurrent.futures.Executor` (`submit`, `map`, a context manager
whose exit waits for the jobs), made by a `RunnerFactory` given how many jobs
may run at once. In the spirit of Nornir's runner plugins, another
implementation (a distributed one) replaces the thread pool behind it:
`ChangeService(ws, runner=...)`, kept as `EngineContext.runner`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor

# Makes the runner for a rollout or rollback, given how many jobs may run at once.
RunnerFactory = Callable[[int], Executor]


def thread_runner(workers: int) -> Executor:
    """The default runner: a pool of `workers` threads in this process."""
    return ThreadPoolExecutor(max_workers=workers)
