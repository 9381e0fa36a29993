"""What to do next, for refusals that a user can resolve with another command."""

from __future__ import annotations

from datetime import datetime

from opskit.changes.heartbeat import runner_gone
from opskit.changes.model import ACTIVE_STATES, ChangeRequest

# How long a remote runner may miss its heartbeat before apply calls it gone
# (the default of `opskit change recover --stale-after`).
STALE_AFTER_SECONDS = 30.0


def not_approved_reason(change: ChangeRequest, now: datetime) -> str:
    """Why a change in `change.state` cannot be applied, with the way out."""
    if change.state not in ACTIVE_STATES:
        return f"it is {change.state}, not approved"
    runner = f"pid {change.runner_pid} on {change.runner_host}"
    if change.runner_pid is None or runner_gone(change, now=now, stale_after=STALE_AFTER_SECONDS):
        return (
            f"it is {change.state} but its runner ({runner}) is gone: run "
            f"`opskit change recover {change.id}` (it marks the change failed and "
            "reports every host), then roll back or close it"
        )
    return f"it is {change.state}: {runner} is applying it now"
