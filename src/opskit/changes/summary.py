"""A change's typed results: each host's summary, and the change's.

In the spirit of Nornir's results: the executor's `StepRun` is one step
(`Result`) and its `HostRun` one host's run (`MultiResult`); here a
`HostSummary` is one host of a change (its state in the change, and the run
it came from) and a `ChangeSummary` the whole change (`AggregatedResult`).
What a summary says about its hosts is computed from them, never kept
beside them: `counts`, `failed`, `changed`, `failed_hosts`. States are
`opskit.hoststate.HostState`.

They turn into JSON only at the edge, with ``to_dict()``: the store keeps it
as the change's summary, the CLI prints it with ``--json``, e.g.::

    {"change_id": "CHG-0001", "state": "completed", "runbook": "vlan@1.0.0",
     "cause": None,
     "counts": {"pending": 0, "running": 0, "ok": 2, "failed": 0, ...},
     "hosts": {"sw1": {"status": "ok", "batch": 0, "config_hash": "sha256:...",
                       "error": None, "restored_by": None}, ...}}

A `ChangeSummary` is also a read-only mapping of that JSON form, so
``summary["state"]`` reads like the stored summary does (`JsonResult`); so
are a dry run's `DryRunSummary` and recovery's `RecoveryReport`, e.g.::

    {"change_id": "CHG-0001", "state": "approved", "dry_run": True,
     "predicted_diff": {"sw1": {"available": True, "diff": "+vlan 10", ...}},
     "matches_assessment": {"sw1": True}}
    {"change_id": "CHG-0002", "state": "failed", "action": "recovered",
     "locks_released": 2,
     "hosts": {"sw1": {"indexed": "running", "status": "ok",
                       "ledger_steps": ["host.backup", "host.applied", "host.verified"],
                       "last_step": "host.verified", "backup": True}}}
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opskit.hoststate import NOT_PUT_BACK, HostState, count_states

if TYPE_CHECKING:
    from opskit.changes.model import State
    from opskit.inventory.model import CI
    from opskit.runbooks.executor import HostRun
    from opskit.runbooks.model import Runbook

UNPROVEN = "rollback steps ran, but no pre-change snapshot proves the host is as before"


@dataclass
class HostSummary:
    """One host of a change: its state in the change, and what the rollout
    knows of it. `run` is the executor's run (its steps), when this process
    ran one; `ran` says the rollout ran the runbook on it at all.

    >>> HostSummary("sw1", HostState.OK, batch=0).to_dict()["status"]
    'ok'
    """

    ci: str
    status: HostState | str
    batch: int | None = None
    ran: bool = False
    config_hash: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    run: HostRun | None = None  # the executor's run, for rollback
    # Whether the run changed the device, as a remote worker reported it
    # (`run` is None then); None: not known.
    remote_changed: bool | None = None

    @property
    def failed(self) -> bool:
        """Its run failed (the executor's, when this process ran it), or it
        failed and is not known to be put back (`NOT_PUT_BACK`). A host a
        rollback restored after a good run has not failed."""
        return (self.run is not None and self.run.failed) or self.status in NOT_PUT_BACK

    @property
    def changed(self) -> bool:
        """A step of its run changed the device (from the run's steps, or as
        the remote worker that ran it reported)."""
        if self.run is None:
            return bool(self.remote_changed)
        return self.run.changed

    @property
    def restored_by(self) -> str | None:
        """Which restoration method made the device equal to its snapshot."""
        return ((self.detail.get("rollback") or {}).get("proof") or {}).get("method")

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": str(self.status),
            "batch": self.batch,
            "config_hash": self.config_hash,
            "error": self.error,
            "restored_by": self.restored_by,
        }


class JsonResult(Mapping[str, Any]):
    """A typed result that reads as the mapping of its JSON form (``to_dict``)."""

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def __getitem__(self, key: str) -> Any:
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())


@dataclass(eq=False)
class ChangeSummary(JsonResult):
    """A change after a rollout or a rollback: its state, why, and its hosts.
    `rollback` is the requested rollback's per-host outcome (restored with
    its proof, not restored and why, or failed), when there was one."""

    change_id: str
    state: State
    runbook: str
    cause: str | None
    hosts: dict[str, HostSummary]
    rollback: dict[str, dict[str, Any]] | None = None
    # The compliance of the changed CIs after the change (opskit.compliance.after).
    compliance: dict[str, Any] | None = None

    @property
    def counts(self) -> dict[str, int]:
        """Hosts per state, every change-host state named (0 when none)."""
        return count_states(host.status for host in self.hosts.values())

    @property
    def failed(self) -> bool:
        """A host did not end as planned."""
        return any(host.failed for host in self.hosts.values())

    @property
    def changed(self) -> bool:
        """A host's run changed its device."""
        return any(host.changed for host in self.hosts.values())

    @property
    def failed_hosts(self) -> dict[str, HostSummary]:
        return {name: host for name, host in self.hosts.items() if host.failed}

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (the stored summary, ``--json``)."""
        data: dict[str, Any] = {
            "change_id": self.change_id,
            "state": self.state.value,
            "runbook": self.runbook,
            "cause": self.cause,
            "counts": self.counts,
            "hosts": {name: host.to_dict() for name, host in sorted(self.hosts.items())},
        }
        if self.rollback is not None:
            data["rollback"] = self.rollback
        if self.compliance is not None:
            data["compliance"] = self.compliance
        return data


@dataclass(eq=False)
class DryRunSummary(JsonResult):
    """A dry run: each host's predicted diff (`opskit.changes.prediction`)
    and whether it matches the one the change was approved with."""

    change_id: str
    state: State
    predicted_diff: dict[str, dict[str, Any]]
    matches_assessment: dict[str, bool]

    def to_dict(self) -> dict[str, Any]:
        return {
            "change_id": self.change_id,
            "state": self.state.value,
            "dry_run": True,
            "predicted_diff": self.predicted_diff,
            "matches_assessment": self.matches_assessment,
        }


@dataclass
class RecoveredHost:
    """A host of a recovered change: its state in the working index, its
    state as its ledger events tell, those events and whether a backup was taken."""

    indexed: HostState | str
    status: HostState | str
    ledger_steps: list[str]
    last_step: str | None
    backup: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "indexed": self.indexed,
            "status": self.status,
            "ledger_steps": self.ledger_steps,
            "last_step": self.last_step,
            "backup": self.backup,
        }


STILL_RUNNING = "still running"
RECOVERED = "recovered"
ORPHAN_LOCKS = "released orphan locks"


@dataclass(eq=False)
class RecoveryReport(JsonResult):
    """What `recover` did with one change: `action` is `STILL_RUNNING` (its
    runner's pid), `RECOVERED` (its hosts; with the requested rollback's
    summary) or `ORPHAN_LOCKS` (the locks released)."""

    change_id: str
    state: str
    action: str
    locks_released: int = 0
    runner_pid: int | None = None
    hosts: dict[str, RecoveredHost] | None = None
    rollback: ChangeSummary | None = None

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "change_id": self.change_id,
            "state": self.state,
            "action": self.action,
        }
        if self.action == STILL_RUNNING:
            data["runner_pid"] = self.runner_pid
        else:
            data["locks_released"] = self.locks_released
        if self.hosts is not None:
            data["hosts"] = {name: host.to_dict() for name, host in self.hosts.items()}
        if self.rollback is not None:
            data["rollback"] = self.rollback.to_dict()
        return data


def unproven_kind(kind: str, payload: Mapping[str, Any] | None) -> bool:
    """A `host.rolled_back` without a proof: rollback steps ran, but nothing
    shows the host is as it was (there was no snapshot to compare with)."""
    return kind == "host.rolled_back" and not (payload or {}).get("proof")


def not_restored_reason(book: Runbook, ci: CI, ran_steps: bool) -> str:
    reason = f"no pre-change snapshot of {ci.name} (the runbook backs up no {ci.platform} state)"
    if ran_steps:
        names = "; ".join(s.name for s in book.steps_for("rollback", ci.platform))
        return f"{reason}; its rollback steps ran ({names}) but cannot restore it"
    return f"{reason} and it has no rollback steps for {ci.platform}"
