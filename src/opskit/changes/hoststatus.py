"""A host's state in a change (the `status` of its row in `change_hosts`),
the rollout's per-host outcome, and the counts a summary reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.inventory.model import CI
    from opskit.runbooks.executor import HostRun
    from opskit.runbooks.model import Runbook

# Per-host statuses in `change_hosts`.
PENDING, RUNNING, OK, FAILED = "pending", "running", "ok", "failed"
ROLLED_BACK, ROLLBACK_FAILED, SKIPPED, UNKNOWN = (
    "rolled_back",
    "rollback_failed",
    "skipped",
    "unknown",
)
# Rolled back without proof: no snapshot to restore or compare with (see changes.rollback).
NOT_RESTORED = "not_restored"
# A host in one of these has had (or may have had) its configuration changed.
TOUCHED = frozenset({RUNNING, OK, FAILED, ROLLBACK_FAILED, UNKNOWN, NOT_RESTORED})
UNPROVEN = "rollback steps ran, but no pre-change snapshot proves the host is as before"


@dataclass
class HostOutcome:
    """What the rollout did on one host."""

    ci: str
    status: str
    batch: int | None = None
    changed: bool = False
    config_hash: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    run: HostRun | None = None  # the executor's run, for rollback


def counts(outcomes: Iterable[HostOutcome]) -> dict[str, int]:
    """Hosts per status, every status named (0 when none)."""
    statuses = (PENDING, RUNNING, OK, FAILED, ROLLED_BACK, ROLLBACK_FAILED, SKIPPED, UNKNOWN)
    result = {s: 0 for s in (*statuses, NOT_RESTORED)}
    for outcome in outcomes:
        result[outcome.status] = result.get(outcome.status, 0) + 1
    return result


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
