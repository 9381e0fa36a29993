"""The executor's value types: what one step and one host run produced.

`StepRun` is one runbook step on one host (Nornir's `Result`); `HostRun` the
whole runbook on that host (its `MultiResult`): its steps, and its state
(`opskit.hoststate.HostState`: completed, failed, rolled_back,
rollback_failed or dry_run). What a host run says about its steps is
computed from them: `changed`, `failed_steps`, `counts`. Both turn into the
JSON-ready dicts the recorder and the CLI take with ``to_dict()``, e.g. a
step::

    {"phase": "apply", "name": "add vlan", "connector": "netmiko",
     "action": "config", "status": "changed", "changed": True, ...}
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opskit.hoststate import RUN_OK, STEP_PASSED, HostState
from opskit.runbooks.expectations import ExpectationResult
from opskit.runbooks.snapshot import Snapshot


def ms(seconds: float) -> int:
    """A duration in whole milliseconds, as records hold it."""
    return round(seconds * 1000)


@dataclass
class StepRun:
    """One runbook step on one host: what ran (phase, name, connector, action,
    the commands sent), what came back (output, data, diff, expectation
    results, the session transcript), its `status` and whether it `changed`
    the device; `failed` when the status is not a passing one. `to_dict()` is
    its record (see the module).
    """

    phase: str
    name: str
    connector: str
    action: str
    # ok, changed, warn or skipped; failed, or the connector's error state
    status: HostState = HostState.OK
    changed: bool = False
    commands: list[str] = field(default_factory=list)
    output: str = ""
    diff: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    expectations: list[ExpectationResult] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started: str = ""
    duration: float = 0.0
    check: str | None = None

    @property
    def failed(self) -> bool:
        return self.status not in STEP_PASSED

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "name": self.name,
            "connector": self.connector,
            "action": self.action,
            "status": str(self.status),
            "changed": self.changed,
            "commands": self.commands,
            "output": self.output,
            "diff": self.diff,
            "data": self.data,
            "expectations": [e.to_dict() for e in self.expectations],
            "transcript": self.transcript,
            "error": self.error,
            "started": self.started,
            "duration_ms": ms(self.duration),
            "check": self.check,
        }


@dataclass
class HostRun:
    """One runbook on one host: its steps in order, the snapshot taken before
    apply, the diff, and its `status` (completed, failed, rolled_back,
    rollback_failed or dry_run); `ok` for a completed run or a dry run.
    `to_dict()` is what the recorder and the CLI take.
    """

    ci: str
    platform: str
    runbook: str
    status: HostState = HostState.COMPLETED
    steps: list[StepRun] = field(default_factory=list)
    snapshot: Snapshot | None = None
    diff: str | None = None
    predicted_diff: str | None = None
    config_hash: str | None = None
    proof: dict[str, Any] | None = None
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_phase: str | None = None
    started: str = ""
    finished: str = ""
    duration: float = 0.0
    pending_confirm: bool = False

    @property
    def ok(self) -> bool:
        """The run went as planned: completed, or a dry run."""
        return self.status in RUN_OK

    @property
    def failed(self) -> bool:
        return not self.ok

    @property
    def changed(self) -> bool:
        """A step of the run changed the device (rollback steps included)."""
        return any(step.changed for step in self.steps)

    @property
    def failed_steps(self) -> list[StepRun]:
        return [step for step in self.steps if step.failed]

    @property
    def counts(self) -> dict[str, int]:
        """Steps per state, only the states that occur: ``{"ok": 3, "changed": 1}``."""
        counts: dict[str, int] = {}
        for step in self.steps:
            counts[str(step.status)] = counts.get(str(step.status), 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "platform": self.platform,
            "runbook": self.runbook,
            "status": str(self.status),
            "error": self.error,
            "failed_phase": self.failed_phase,
            "steps": [s.to_dict() for s in self.steps],
            "snapshot": self.snapshot.describe() if self.snapshot else None,
            "diff": self.diff,
            "predicted_diff": self.predicted_diff,
            "config_hash": self.config_hash,
            "proof": self.proof,
            "exceptions": self.exceptions,
            "facts": self.facts,
            "started": self.started,
            "finished": self.finished,
            "duration_ms": ms(self.duration),
        }


class StepFailed(Exception):
    """A step failed: the phase stops here (the phase machine decides what next)."""

    def __init__(self, step_run: StepRun) -> None:
        self.step_run = step_run
        super().__init__(step_run.error or step_run.name)


__all__ = ["HostRun", "StepFailed", "StepRun", "ms"]
