"""What is read before a change is scheduled or applied, and the decisions
made on it: the binding as the change would run now (`binding_drift`),
every reason it may not be applied (`apply_blockers`), and the group caps
(`group_blockers`), plus the `schedule` verb the rollout also uses. The
rules themselves are `opskit.changes.rules`; this module reads for them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from opskit.changes import rules
from opskit.changes.context import EngineContext, select_names
from opskit.changes.model import ChangeRequest, State, aware
from opskit.errors import ChangeError, OpskitError
from opskit.inventory.core import Inventory
from opskit.policy import Role


def binding_drift(
    ctx: EngineContext, change: ChangeRequest, *, predicted: dict[str, Any] | None = None
) -> list[str]:
    """What differs between the change as approved and as it would run now."""
    approvals = rules.approval_bindings(change)
    if not approvals:
        return []
    try:
        book = ctx.catalog.get(change.runbook_ref)
    except OpskitError as exc:
        return [f"runbook {change.runbook_ref} cannot be loaded: {exc}"]
    inv = ctx.inventory(change.inventory)
    problem = None
    try:
        targets = select_names(inv, change.selection)
    except OpskitError as exc:
        targets, problem = [], str(exc)
    current = rules.CurrentBinding(
        runbook_digest=book.digest,
        inventory_digest=inv.digest,
        targets=targets,
        selection_problem=problem,
    )
    return rules.binding_drift(change, approvals[-1], current, predicted=predicted)


def apply_blockers(ctx: EngineContext, change: ChangeRequest, actor: str) -> list[str]:
    """Every reason the change may not be applied now by `actor` (empty: go);
    see `rules.apply_blockers`."""
    drift: list[str] = []
    held: dict[str, str] = {}
    if change.state in (State.APPROVED, State.SCHEDULED):
        drift = binding_drift(ctx, change)
        held = ctx.store.locks_held_by_others(change)
    return rules.apply_blockers(
        change, ctx.policy, ctx.clock(), actor=actor, drift=drift, held=held
    )


def group_blockers(ctx: EngineContext, change: ChangeRequest, inv: Inventory) -> str | None:
    """A capped group already at its cap with other changes' CIs."""
    for cap in ctx.policy.concurrency:
        mine = [n for n in change.targets if cap.group in inv.get(n).groups]
        if not mine:
            continue
        rows = ctx.store.group_slot_holders(cap.group, besides=change.id)
        if len(rows) >= cap.max_changing:
            busy = ", ".join(f"{ci} ({cid})" for ci, cid in rows)
            return f"group {cap.group} is at its cap of {cap.max_changing} changing CI(s): {busy}"
    return None


def schedule(
    ctx: EngineContext,
    change_id: str,
    actor: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> ChangeRequest:
    """Moves an approved change to `scheduled` in its window (`start`..`end`,
    default: the window it was created with), naming the freezes it overlaps."""
    change = ctx.store.get(change_id)
    if actor != change.requester:
        ctx.journal.require_role(
            actor, [Role.CHANGE_MANAGER, Role.IMPLEMENTER], "schedule", change_id
        )
    start = aware(start) or change.window_start
    end = aware(end) or change.window_end
    if start and end and end <= start:
        raise ChangeError("the window must end after it starts")
    frozen = [
        f.name for f in ctx.policy.freezes if start and end and f.start < end and start < f.end
    ]
    ctx.journal.transition(
        change,
        State.SCHEDULED,
        actor=actor,
        payload={
            "window_start": start.isoformat() if start else None,
            "window_end": end.isoformat() if end else None,
            "overlapping_freezes": frozen,
        },
        values={"window_start": start, "window_end": end},
    )
    return ctx.store.get(change_id)
