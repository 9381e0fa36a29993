"""Cancelling a change that has not started: by its requester or a change
manager, with a reason, in any state before `in_progress`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import delete, func, select

from opskit.changes import store
from opskit.changes.model import ChangeRequest, State
from opskit.errors import ChangeError
from opskit.policy import Role

if TYPE_CHECKING:
    from opskit.changes.context import EngineContext


def cancel(ctx: EngineContext, change_id: str, actor: str, reason: str) -> ChangeRequest:
    """Moves the change to `cancelled` (`change.cancelled`, with the reason),
    releasing any lock or group slot it holds in the same transaction."""
    change = ctx.store.get(change_id)
    if not reason.strip():
        raise ChangeError("cancelling needs a reason")
    if actor != change.requester:
        ctx.journal.require_role(actor, [Role.CHANGE_MANAGER], "cancel", change_id)
    ctx.journal.check_state(
        change,
        State.CANCELLED,
        actor,
        f"only a change that has not started can be cancelled (it is {change.state})",
    )
    with ctx.store.engine.connect() as conn:
        held = conn.execute(
            select(func.count()).where(store.locks.c.change_id == change_id)
        ).scalar_one()
    ctx.journal.transition(
        change,
        State.CANCELLED,
        actor=actor,
        payload={"reason": reason, "locks_released": held},
        values={"summary": {**(change.summary or {}), "outcome": "cancelled", "cause": reason}},
        rows=[
            delete(store.locks).where(store.locks.c.change_id == change_id),
            delete(store.group_slots).where(store.group_slots.c.change_id == change_id),
        ],
    )
    return ctx.store.get(change_id)
