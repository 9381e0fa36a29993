"""Rolling back a finished change, host by host, and saying exactly what
happened on each: restored (the configuration compared equal to the
pre-change snapshot: the proof), not restored (no snapshot to restore or to
prove against, and why; the runbook's rollback steps ran when it has any),
or failed.

The change becomes `rolled_back` only when every changed host was restored;
when some were and some were not, `partially_rolled_back` (a later rollback
may finish the job; a review may close it); when none was, it keeps its
state and `change.rollback_failed` records the per-host detail.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opskit.changes.model import ChangeRequest, State
from opskit.changes.prediction import open_pool
from opskit.changes.rollout import Rollout
from opskit.changes.summary import ChangeSummary, HostSummary, not_restored_reason, unproven_kind
from opskit.errors import ChangeRefused
from opskit.hoststate import TOUCHED, HostState, rollback_outcome
from opskit.inventory.core import Inventory
from opskit.policy import Role

if TYPE_CHECKING:
    from opskit.runbooks.model import Runbook

# Re-exported: where the rollback's wording of a host it could not restore lives.
__all__ = ["not_restored_reason", "rollback_change", "unproven_kind"]

# Host states of a host whose configuration may differ from before the change.
MAY_HAVE_CHANGED = TOUCHED
# Ledger steps that show an apply step ran on the host.
APPLY_STEPS = frozenset({"host.applied", "host.verified", "host.verify_failed", "host.backup"})


def rollback_change(rollout: Rollout) -> ChangeSummary:
    """Rolls back every host of a completed, failed or partially rolled back
    change that may differ from before it; see the module docstring."""
    ctx, journal = rollout.ctx, rollout.journal
    change = rollout.store.get(rollout.change_id)
    journal.check_state(
        change,
        State.ROLLED_BACK,
        rollout.actor,
        "only a completed, failed or partially rolled back change can be rolled back "
        f"(it is {change.state})",
    )
    journal.require_role(rollout.actor, [Role.IMPLEMENTER], "rollback", change.id)
    book = ctx.catalog.get(change.runbook_ref)
    inv = ctx.inventory(change.inventory)
    todo = _changed_hosts(rollout, change)
    if todo:
        try:
            rollout.store.acquire_locks(ChangeRequest(**{**change.__dict__, "targets": todo}))
        except ChangeRefused as exc:  # recorded like every refusal
            journal.refuse(change.id, rollout.actor, "rollback", exc.reason.split("refused: ")[-1])
    try:
        journal.record(
            "change.rollback_started",
            actor=rollout.actor,
            change_id=change.id,
            payload={"hosts": todo},
        )
        results = _roll_back(rollout, change, book, inv, todo)
        return _conclude(rollout, change, results)
    finally:
        rollout.store.release_locks(change.id)


def _changed_hosts(rollout: Rollout, change: ChangeRequest) -> list[str]:
    """Every host that may differ from before: one whose run got past its
    start (a `host.failed` before any backup or apply step changed nothing)."""
    steps: dict[str, set[str]] = {}
    for event in rollout.ctx.ledger.events(change_id=change.id):
        if event.ci:
            steps.setdefault(event.ci, set()).add(event.kind)
    return [
        name
        for name, host in sorted(change.hosts.items())
        if host["status"] in MAY_HAVE_CHANGED
        and (host["status"] != HostState.FAILED or steps.get(name, set()) & APPLY_STEPS)
    ]


def _roll_back(
    rollout: Rollout, change: ChangeRequest, book: Runbook, inv: Inventory, todo: list[str]
) -> list[HostSummary]:
    for name, host in change.hosts.items():
        rollout.outcomes[name] = HostSummary(name, host["status"], batch=host.get("batch"))
    width = max(1, min(int(book.strategy.concurrency), len(todo) or 1))
    with (
        open_pool(width) as pool,
        rollout.journal.group_commit(),
        rollout.ctx.runner(width) as threads,
    ):
        results = list(
            threads.map(
                lambda name: rollout.rollback_one(
                    change,
                    book,
                    inv.get(name),
                    HostSummary(name, HostState.FAILED, ran=True),
                    pool,
                ),
                todo,
            )
        )
    for outcome in results:
        rollout.outcomes[outcome.ci] = outcome
    return results


def host_outcome(outcome: HostSummary) -> dict[str, Any]:
    """What the rollback did on one host, for the summary and the ledger."""
    rollback = outcome.detail.get("rollback") or {}
    proof = rollback.get("proof") or {}
    kind = rollback_outcome(outcome.status)
    if kind == HostState.RESTORED:
        return {
            "outcome": kind.value,
            "proof": {k: proof.get(k) for k in ("method", "equal", "snapshot_hash", "after_hash")},
        }
    return {"outcome": kind.value, "reason": outcome.error or "the rollback failed"}


def _conclude(rollout: Rollout, change: ChangeRequest, results: list[HostSummary]) -> ChangeSummary:
    hosts = {o.ci: host_outcome(o) for o in sorted(results, key=lambda o: o.ci)}
    restored = [name for name, h in hosts.items() if h["outcome"] == HostState.RESTORED]
    if len(restored) == len(hosts):
        final: State | None = State.ROLLED_BACK
        cause = (change.summary or {}).get("cause")
    else:
        final = State.PARTIALLY_ROLLED_BACK if restored else None
        left = [
            f"{name}: {h['reason']}"
            for name, h in hosts.items()
            if h["outcome"] != HostState.RESTORED
        ]
        cause = f"{len(left)} of {len(hosts)} changed host(s) not restored: " + "; ".join(left)
    summary = rollout.summary(change, final or change.state, cause=cause)
    summary.rollback = hosts
    rollout.store.set_summary(change.id, summary.to_dict())
    payload = {"counts": summary.counts, "requested": True, "hosts": hosts}
    if final is not None:
        rollout.journal.transition(change, final, actor=rollout.actor, payload=payload)
    else:
        rollout.journal.record(
            "change.rollback_failed", actor=rollout.actor, change_id=change.id, payload=payload
        )
    rollout.checkpoint()
    return summary
