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

A runner whose hosts run in other processes (`opskit.distributed`'s Celery
runner) is also a `RemoteHosts`: the rollout's threads then only wait, and
`HostWork.run` sends each host as a serializable `HostJob`.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol, runtime_checkable

from opskit import __version__

# Makes the runner for a rollout or rollback, given how many jobs may run at once.
RunnerFactory = Callable[[int], Executor]


def thread_runner(workers: int) -> Executor:
    """The default runner: a pool of `workers` threads in this process."""
    return ThreadPoolExecutor(max_workers=workers)


PHASES = ("run", "rollback")


@dataclass(frozen=True)
class HostJob:
    """One host's work as a message another process can run: what to do,
    never how to log in. A worker reads the change (its parameters, its
    targets) from its own database and resolves credentials itself, so the
    message carries no secret and no parameter value.

    >>> HostJob("CHG-0001", "sw1", "run", "sha256:ab", batch=0).to_message()["key"]
    'CHG-0001/sw1/run'
    """

    change_id: str
    ci: str
    phase: str  # "run" (precheck, backup, apply, verify) or "rollback"
    runbook_digest: str
    batch: int | None = None
    actor: str = ""
    version: str = __version__

    @property
    def key(self) -> str:
        """The idempotency key: one delivery per (change, host, step) may act."""
        return f"{self.change_id}/{self.ci}/{self.phase}"

    def to_message(self) -> dict[str, Any]:
        return {**asdict(self), "key": self.key}

    @classmethod
    def from_message(cls, message: Any) -> HostJob:
        """The job a message describes; `ValidationError` naming the field
        when a message (a hand-made one, say) is not a job."""
        from opskit.errors import ValidationError

        if not isinstance(message, dict):
            raise ValidationError("a host job message must be a mapping", field="message")
        values: dict[str, Any] = {}
        for spec in fields(cls):
            value = message.get(spec.name, spec.default)
            if spec.name == "batch":
                if value is not None and (type(value) is not int or value < 0):
                    raise ValidationError("must be a whole number >= 0 or null", field="batch")
            elif not isinstance(value, str) or not value.isprintable() or len(value) > 512:
                raise ValidationError("must be printable text", field=spec.name)
            values[spec.name] = value
        if values["phase"] not in PHASES:
            raise ValidationError(f"must be one of {', '.join(PHASES)}", field="phase")
        return cls(**values)


@runtime_checkable
class RemoteHosts(Protocol):
    """A runner whose hosts run elsewhere: `dispatch` sends the job and
    returns the host's outcome (`HostSummary.to_dict()` plus `detail`); `ci`
    (the CMDB item) chooses the queue; `ctx` is the coordinator's `EngineContext`."""

    def dispatch(self, job: HostJob, ci: Any, ctx: Any) -> dict[str, Any]: ...

    def blockers(self, ws: Any, cis: list[Any]) -> list[str]:
        """Why a change over `cis` cannot run on it now (empty: go)."""
        ...

    def queue_problems(self, cis: list[Any]) -> list[str]:
        """The CIs it could not place on a queue, one line each, naming the CI."""
        ...


def remote_hosts(factory: RunnerFactory) -> RemoteHosts | None:
    """The factory as a `RemoteHosts`, when its hosts run elsewhere."""
    if factory is thread_runner:
        # Asked once a host: a runtime Protocol check walks every member.
        return None
    return factory if isinstance(factory, RemoteHosts) else None


def runner_blockers(factory: RunnerFactory, ws: Any, cis: list[Any]) -> list[str]:
    """Why the runner cannot run a change over `cis` (the thread pool: never)."""
    remote = remote_hosts(factory)
    return remote.blockers(ws, cis) if remote is not None else []


def runner_queue_problems(factory: RunnerFactory, cis: list[Any]) -> list[str]:
    """The CIs the runner could not place (checked at assess; the thread pool: none)."""
    remote = remote_hosts(factory)
    return remote.queue_problems(cis) if remote is not None else []
