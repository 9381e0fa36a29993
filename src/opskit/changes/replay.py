"""Rebuilding a change's working-table rows from its ledger events.

The ledger is the record; `opskit.changes.store` is an index of it. Folding
a change's events, oldest first, gives what its rows must say: the state
(the last transition event, `model.EVENT_FOR_STATE`), the fields the events
carry (what was requested, assessed, scheduled, reviewed), each host's
status and batch, the approval rows, and whether it may hold locks.
`opskit.changes.tablecheck` compares these with the tables.

Which event sets what (see `service.py` and `rollout.py`):

| event | columns |
| --- | --- |
| change.created | the request: title ... plan; state draft |
| change.<state> | state (every transition event, `EVENT_FOR_STATE`) |
| change.assessed | runbook_digest, targets, inventory_digest, predicted_diff, risk, |
|  | impact, assessment |
| change.scheduled | window_start, window_end |
| change.closed | review, summary.outcome |
| change.approval / rejected / retrospective_reviewed | an approval row (and retrospective) |
| change.started | a host row per target, `pending`, with its batch; locks held |
| host.verified / failed / rolled_back / rollback_failed | the host's status |
| change.halted | hosts of later batches that never started: `skipped` |
| change.verifying | hosts that finished without a closing step: `ok` |
| change.recovered | every host's status as recovery found it |
| change.rollback_started | locks held on the hosts rolled back, until it ends |
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from opskit.changes.model import ACTIVE_STATES, CREATED_FIELDS, EVENT_FOR_STATE, State
from opskit.hoststate import HostState

STATE_FOR_EVENT: dict[str, str] = {kind: state.value for state, kind in EVENT_FOR_STATE.items()}
ACTIVE = frozenset(state.value for state in ACTIVE_STATES)

# The host steps that set a host's status; the other steps (backup, applied,
# ...) change nothing in the rows, so the replay does not read them.
HOST_STATUS_KINDS = frozenset(
    {
        "host.verified",
        "host.failed",
        "host.rolled_back",
        "host.rollback_failed",
        "host.not_restored",
    }
)
# The events whose payload the fold reads; of all others only the kind and CI.
PAYLOAD_KINDS = frozenset(
    {
        "change.created",
        "change.assessed",
        "change.scheduled",
        "change.closed",
        "change.approval",
        "change.rejected",
        "change.retrospective_reviewed",
        "change.started",
        "change.recovered",
        "change.rollback_started",
        "host.failed",
    }
)
# The events after which a rollback requested on a finished change is over.
ROLLBACK_ENDS = frozenset({"change.rollback_failed"}) | {
    kind for kind, state in STATE_FOR_EVENT.items() if "rolled_back" in state
}
# The request as recorded; `runbook` (NAME@VERSION) is split into two columns.
_CREATED_COLUMNS = tuple(field for field in CREATED_FIELDS if field != "runbook")
_ASSESSED_COLUMNS = {
    "runbook_digest": "runbook_digest",
    "targets": "targets",
    "inventory_digest": "inventory_digest",
    "predicted_diff": "predicted_diff",
    "risk": "risk",
    "impact": "impact",
}


@dataclass
class Expected:
    """What a change's rows must say, as far as its ledger events tell.

    `columns` and `sources` hold, per changes-table column (or `column.key`
    for a key inside a JSON column), the expected value and the seq of the
    event that set it."""

    change_id: str
    created_seq: int
    state: str = State.DRAFT.value
    state_seq: int = 0
    columns: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)
    plan: list[list[str]] | None = None
    # ci -> (status, batch), the form of the host rows (the status a plain
    # string, as the table holds it); and the seq that set it.
    hosts: dict[str, tuple[str, int | None]] = field(default_factory=dict)
    host_seqs: dict[str, int] = field(default_factory=dict)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    rollback_hosts: list[str] | None = None
    last_host_event: dict[str, str] = field(default_factory=dict)

    @property
    def running(self) -> bool:
        """A rollout or a requested rollback is under way (or was cut off)."""
        return self.state in ACTIVE or self.rollback_hosts is not None

    def lockable(self) -> set[str]:
        """The CIs this change may hold locks on now."""
        if self.state in ACTIVE:
            return set(self.columns.get("targets") or []) | set(self.hosts)
        return set(self.rollback_hosts or [])

    def set(self, column: str, value: Any, seq: int) -> None:
        self.columns[column] = value
        self.sources[column] = seq


def start(change_id: str, seq: int, payload: dict[str, Any]) -> Expected:
    """The expected rows right after `change.created`."""
    expected = Expected(change_id=change_id, created_seq=seq, state_seq=seq)
    for column in _CREATED_COLUMNS:
        if column in payload:
            expected.set(column, payload[column], seq)
    name, _, version = str(payload.get("runbook", "")).rpartition("@")
    if name:
        expected.set("runbook_name", name, seq)
        expected.set("runbook_version", version, seq)
    return expected


def fold(
    expected: Expected,
    seq: int,
    kind: str,
    actor: str,
    ci: str | None,
    payload: dict[str, Any] | None,
) -> None:
    """Applies one event of the change (in seq order) to its expected rows."""
    payload = payload or {}
    if ci:
        host_step(expected, seq, kind, ci, payload)
        return
    state = STATE_FOR_EVENT.get(kind)
    if state is not None and kind != "change.created":
        expected.state, expected.state_seq = state, seq
    if kind in ROLLBACK_ENDS:
        expected.rollback_hosts = None
    handler = _HANDLERS.get(kind)
    if handler is not None:
        handler(expected, seq, actor, payload)


def _assessed(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    for key, column in _ASSESSED_COLUMNS.items():
        if key in payload:
            expected.set(column, payload[key], seq)
    if "required_approvals" in payload:
        expected.set("assessment.required", payload["required_approvals"], seq)
    expected.set("assessment.assessed_by", actor, seq)


def _scheduled(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    for column in ("window_start", "window_end"):
        if column in payload:
            expected.set(column, payload[column], seq)


def _closed(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    review = payload.get("review")
    if isinstance(review, dict):
        expected.set("review", review, seq)
        expected.set("summary.outcome", review.get("outcome"), seq)


def _approval(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    expected.approvals.append(
        {
            "seq": seq,
            "kind": "approval",
            "approver": payload.get("approver"),
            "roles": payload.get("roles"),
            "binding_hash": payload.get("binding_hash"),
            "signature": payload.get("signature"),
            "comment": payload.get("comment"),
        }
    )


def _rejected(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    expected.approvals.append(
        {"seq": seq, "kind": "rejection", "approver": actor, "comment": payload.get("reason")}
    )


def _retrospective(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    expected.approvals.append(
        {"seq": seq, "kind": "retrospective", "approver": actor, "comment": payload.get("comment")}
    )
    for key in ("reviewers", "required", "complete"):
        if key in payload:
            expected.set(f"retrospective.{key}", payload[key], seq)


def _started(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    batches = payload.get("batches")
    expected.plan = batches if isinstance(batches, list) else []
    hosts: dict[str, tuple[str, int | None]] = {}
    for number, names in enumerate(expected.plan):
        if isinstance(names, list):
            hosts.update(dict.fromkeys(map(str, names), (HostState.PENDING.value, number)))
    expected.hosts = hosts
    expected.host_seqs = dict.fromkeys(hosts, seq)


def _halted(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    # A rollout halts after a whole batch has finished, on a failure: the
    # halting batch is the last one with a finished host; later ones never ran.
    reached = max(
        (batch or 0 for status, batch in expected.hosts.values() if status != HostState.PENDING),
        default=0,
    )
    for ci, (_status, batch) in expected.hosts.items():
        if (batch or 0) > reached:
            _set_host(expected, ci, HostState.SKIPPED, seq)


def _verifying(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    # A host whose run records no closing step (no apply or verify step
    # changed anything) finished `ok`.
    hosts = expected.hosts
    pending = [ci for ci, (status, _batch) in hosts.items() if status == HostState.PENDING]
    hosts.update({ci: (HostState.OK.value, hosts[ci][1]) for ci in pending})
    expected.host_seqs.update(dict.fromkeys(pending, seq))


def _recovered(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    hosts = payload.get("hosts")
    for ci, entry in (hosts if isinstance(hosts, dict) else {}).items():
        if isinstance(entry, dict) and isinstance(entry.get("status"), str):
            _set_host(expected, ci, entry["status"], seq)


def _rollback_started(expected: Expected, seq: int, actor: str, payload: dict[str, Any]) -> None:
    hosts = payload.get("hosts")
    expected.rollback_hosts = [str(h) for h in hosts] if isinstance(hosts, list) else []


_HANDLERS = {
    "change.assessed": _assessed,
    "change.scheduled": _scheduled,
    "change.closed": _closed,
    "change.approval": _approval,
    "change.rejected": _rejected,
    "change.retrospective_reviewed": _retrospective,
    "change.started": _started,
    "change.halted": _halted,
    "change.verifying": _verifying,
    "change.recovered": _recovered,
    "change.rollback_started": _rollback_started,
}


_AFTER_ROLLBACK = {
    "host.rolled_back": HostState.ROLLED_BACK,
    "host.rollback_failed": HostState.ROLLBACK_FAILED,
    "host.not_restored": HostState.NOT_RESTORED,
}
# The host steps that set a host's state (`HOST_STATUS_KINDS`), and the state
# each sets; `host.failed` is worked out from the step before it.
_STATE_OF_STEP = {"host.verified": HostState.OK, **_AFTER_ROLLBACK}


def host_step(expected: Expected, seq: int, kind: str, ci: str, payload: dict[str, Any]) -> None:
    """A host step. Only a run's steps count: a dry run's come before the
    change starts (or say `dry_run`)."""
    host = expected.hosts.get(ci)
    if host is None or payload.get("dry_run"):
        return
    previous = expected.last_host_event.get(ci)
    expected.last_host_event[ci] = kind
    status = _STATE_OF_STEP.get(kind)
    if kind == "host.failed":
        # After a rollback the executor records the failure too: the step
        # just before says how the rollback ended (an unproven one is
        # recorded `host.not_restored`).
        status = _AFTER_ROLLBACK.get(previous or "") or (
            HostState.ROLLED_BACK if payload.get("rolled_back") is True else HostState.FAILED
        )
    if status is not None:
        expected.hosts[ci] = (status.value, host[1])
        expected.host_seqs[ci] = seq


def _set_host(expected: Expected, ci: str, status: str, seq: int) -> None:
    """`ci`'s status from `seq` on; its batch stays (none for a CI not planned)."""
    status = str(status)  # as the table holds it
    expected.hosts[ci] = (status, expected.hosts.get(ci, (status, None))[1])
    expected.host_seqs[ci] = seq
