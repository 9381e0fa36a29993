"""The change request, its states and the legal transitions between them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from opskit.digests import canonical_json, sha256_text
from opskit.errors import ChangeError


class ChangeType(StrEnum):
    """The kind of change, ITIL's three: `standard` (pre-approved, from a
    runbook marked standard), `normal` (assessed and approved before it runs),
    `emergency` (may run first; the CAB reviews it retrospectively before it
    closes). `ChangeType("normal")` is `ChangeType.NORMAL`.
    """

    STANDARD = "standard"
    NORMAL = "normal"
    EMERGENCY = "emergency"


class State(StrEnum):
    """Where a change is in its process. `TRANSITIONS[state]` lists the states
    it may move to; `closed` and `cancelled` are final. The value is what the
    change tables and the ledger store, e.g. `State.IN_PROGRESS == "in_progress"`.
    """

    DRAFT = "draft"
    SUBMITTED = "submitted"
    ASSESSED = "assessed"
    APPROVED = "approved"
    REJECTED = "rejected"
    SCHEDULED = "scheduled"
    IN_PROGRESS = "in_progress"
    VERIFYING = "verifying"
    COMPLETED = "completed"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    # A rollback restored some changed hosts, not all (each host's outcome is recorded).
    PARTIALLY_ROLLED_BACK = "partially_rolled_back"
    CLOSED = "closed"
    # Withdrawn before it ran (`ChangeService.cancel`): final, never applied.
    CANCELLED = "cancelled"


S = State
# The legal transitions. Re-assessment (back to `assessed`) is allowed until
# the change starts: it is how a change whose binding went stale (runbook,
# targets, inventory or predicted diff changed) gets approved again.
# A change may be cancelled in any state before it starts; a partial rollback
# may be retried (to rolled_back, or partially again) or closed with a review.
TRANSITIONS: dict[State, frozenset[State]] = {
    S.DRAFT: frozenset({S.SUBMITTED, S.CANCELLED}),
    S.SUBMITTED: frozenset({S.ASSESSED, S.CANCELLED}),
    S.ASSESSED: frozenset({S.ASSESSED, S.APPROVED, S.REJECTED, S.CANCELLED}),
    S.APPROVED: frozenset({S.ASSESSED, S.SCHEDULED, S.CANCELLED}),
    S.REJECTED: frozenset({S.CLOSED}),
    S.SCHEDULED: frozenset({S.ASSESSED, S.SCHEDULED, S.IN_PROGRESS, S.CANCELLED}),
    S.IN_PROGRESS: frozenset({S.VERIFYING, S.FAILED, S.ROLLED_BACK}),
    S.VERIFYING: frozenset({S.COMPLETED, S.FAILED, S.ROLLED_BACK}),
    S.COMPLETED: frozenset({S.ROLLED_BACK, S.PARTIALLY_ROLLED_BACK, S.CLOSED}),
    S.FAILED: frozenset({S.ROLLED_BACK, S.PARTIALLY_ROLLED_BACK, S.CLOSED}),
    S.ROLLED_BACK: frozenset({S.CLOSED}),
    S.PARTIALLY_ROLLED_BACK: frozenset({S.ROLLED_BACK, S.PARTIALLY_ROLLED_BACK, S.CLOSED}),
    S.CLOSED: frozenset(),
    S.CANCELLED: frozenset(),
}

# The ledger event written when a change enters a state.
EVENT_FOR_STATE: dict[State, str] = {
    S.DRAFT: "change.created",
    S.SUBMITTED: "change.submitted",
    S.ASSESSED: "change.assessed",
    S.APPROVED: "change.approved",
    S.REJECTED: "change.rejected",
    S.SCHEDULED: "change.scheduled",
    S.IN_PROGRESS: "change.started",
    S.VERIFYING: "change.verifying",
    S.COMPLETED: "change.completed",
    S.FAILED: "change.failed",
    S.ROLLED_BACK: "change.rolled_back",
    S.PARTIALLY_ROLLED_BACK: "change.partially_rolled_back",
    S.CLOSED: "change.closed",
    S.CANCELLED: "change.cancelled",
}

# The action a person takes to move a change into a state (named in refusals).
ACTION_FOR_STATE: dict[State, str] = {
    S.SUBMITTED: "submit",
    S.ASSESSED: "assess",
    S.APPROVED: "approve",
    S.REJECTED: "reject",
    S.SCHEDULED: "schedule",
    S.IN_PROGRESS: "apply",
    S.ROLLED_BACK: "rollback",
    S.PARTIALLY_ROLLED_BACK: "rollback",
    S.CLOSED: "close",
    S.CANCELLED: "cancel",
}

ACTIVE_STATES = frozenset({S.IN_PROGRESS, S.VERIFYING})

# The request fields a `change.created` event carries (and the replay reads back).
CREATED_FIELDS = (
    "title",
    "description",
    "type",
    "requester",
    "runbook",
    "runbook_digest",
    "selection",
    "inventory",
    "inventory_digest",
    "targets",
    "parameters",
    "window_start",
    "window_end",
    "tickets",
    "plan",
)
FINISHED_STATES = frozenset({S.COMPLETED, S.FAILED, S.ROLLED_BACK, S.PARTIALLY_ROLLED_BACK})
# States a change may still be cancelled from (it has not started).
CANCELLABLE_STATES = frozenset(s for s in State if S.CANCELLED in TRANSITIONS[s])


def utcnow() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime | None) -> datetime | None:
    """`moment` in UTC: SQLite hands back naive datetimes; everything stored is UTC."""
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment


def transition_problem(current: State, target: State) -> str | None:
    """Why `current` -> `target` is illegal, or None when it is allowed."""
    if target in TRANSITIONS[current]:
        return None
    allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final state)"
    return f"cannot go from {current} to {target} (allowed from {current}: {allowed})"


def check_transition(change_id: str, current: State, target: State) -> None:
    problem = transition_problem(current, target)
    if problem is not None:
        raise ChangeError(f"{change_id}: {problem}")


@dataclass
class ChangeRequest:
    """A change as stored in the working index (`opskit.changes.store.changes`):
    what was asked (runbook pinned by name, version and digest, selection,
    targets resolved against an inventory digest, parameters, window), where
    it is (`state`), its assessment, approvals, per-host states and review.
    A value: the service returns a new one after each verb. `to_dict()` is
    its JSON form, e.g. `{"id": "CHG-000001", "state": "approved", "type":
    "normal", "targets": ["access-sw1"], ...}`."""

    id: str
    number: int
    title: str
    description: str
    type: ChangeType
    state: State
    requester: str
    runbook_name: str
    runbook_version: str
    runbook_digest: str
    selection: str
    inventory: str
    inventory_digest: str
    targets: list[str]
    parameters: dict[str, Any]
    window_start: datetime | None
    window_end: datetime | None
    tickets: list[str]
    plan: dict[str, Any]
    impact: dict[str, Any] | None = None
    predicted_diff: dict[str, Any] | None = None
    risk: dict[str, Any] | None = None
    assessment: dict[str, Any] | None = None
    review: dict[str, Any] | None = None
    retrospective: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    runner_host: str | None = None
    runner_pid: int | None = None
    heartbeat_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    approvals: list[dict[str, Any]] = field(default_factory=list)
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Set by `ChangeService.approve`: how far the approvals are (not stored).
    approval_progress: dict[str, Any] | None = None

    @property
    def runbook_ref(self) -> str:
        return f"{self.runbook_name}@{self.runbook_version}"

    def binding_document(self) -> dict[str, Any]:
        """Exactly what an approval approves (and what a signature covers)."""
        return binding_document(
            change_id=self.id,
            runbook={
                "name": self.runbook_name,
                "version": self.runbook_version,
                "digest": self.runbook_digest,
            },
            targets=self.targets,
            inventory_digest=self.inventory_digest,
            parameters=self.parameters,
            predicted_diff=self.predicted_diff,
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("window_start", "window_end", "heartbeat_at", "created_at", "updated_at"):
            value = data[key]
            data[key] = value.isoformat() if value else None
        data["type"] = str(self.type)
        data["state"] = str(self.state)
        data["runbook"] = self.runbook_ref
        return data


def binding_document(
    *,
    change_id: str,
    runbook: dict[str, str],
    targets: list[str],
    inventory_digest: str,
    parameters: dict[str, Any],
    predicted_diff: dict[str, Any] | None,
) -> dict[str, Any]:
    # Only the hash of each predicted diff: the document stays small, and a
    # changed diff still changes the binding.
    diffs = {
        host: (entry or {}).get("hash") for host, entry in sorted((predicted_diff or {}).items())
    }
    return {
        "change_id": change_id,
        "runbook": runbook,
        "targets": sorted(targets),
        "inventory_digest": inventory_digest,
        "parameters": parameters,
        "predicted_diff": diffs,
    }


def binding_hash(document: dict[str, Any]) -> str:
    return sha256_text(canonical_json(document))
