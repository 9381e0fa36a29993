"""Waiting for a change to be decided: the pipeline gate of `opskit change wait`.

`wait_for(service, change_id, goal, timeout=, interval=) -> WaitOutcome`
reads the change through `ChangeService.get` every `interval` seconds until
the goal is decided or `timeout` seconds have passed. Nothing is written.

- goal ``approved``: decided yes once the change is approved (or anything
  after: scheduled, in progress, done); no when it is rejected or cancelled.
- goal ``completed``: yes when it completed (or was closed after
  completing); no when it failed, was rolled back (wholly or partly),
  rejected or cancelled.

The exit codes the CLI gives (`WaitOutcome.exit_code`): 0 yes, 1 no, 3 timed
out. Example::

    >>> wait_for(service, "CHG-000012", "approved", timeout=600, interval=5)
    WaitOutcome(change_id='CHG-000012', goal='approved', state='approved',
                decided=True, reached=True, waited=42.0)
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from opskit.changes.model import State
from opskit.errors import UsageError

if TYPE_CHECKING:
    from opskit.changes.model import ChangeRequest
    from opskit.changes.service import ChangeService

GOALS = ("approved", "completed")
EXIT_REACHED, EXIT_REFUSED, EXIT_TIMEOUT = 0, 1, 3

# States past approval: the change was approved on the way there.
PAST_APPROVAL = frozenset(
    {
        State.APPROVED,
        State.SCHEDULED,
        State.IN_PROGRESS,
        State.VERIFYING,
        State.COMPLETED,
        State.FAILED,
        State.ROLLED_BACK,
        State.PARTIALLY_ROLLED_BACK,
    }
)
NOT_COMPLETED = frozenset(
    {State.FAILED, State.ROLLED_BACK, State.PARTIALLY_ROLLED_BACK, State.REJECTED, State.CANCELLED}
)


@dataclass(frozen=True)
class WaitOutcome:
    """Where the wait ended: the change's last state read, whether the goal
    was decided (else: timed out) and reached, and how long it waited."""

    change_id: str
    goal: str
    state: str
    decided: bool
    reached: bool
    waited: float

    @property
    def exit_code(self) -> int:
        if not self.decided:
            return EXIT_TIMEOUT
        return EXIT_REACHED if self.reached else EXIT_REFUSED


def decision(change: ChangeRequest, goal: str) -> bool | None:
    """True: the goal is reached; False: it never will be; None: not yet."""
    state = change.state
    ran = (change.summary or {}).get("state")
    if goal == "approved":
        if state in PAST_APPROVAL:
            return True
        if state is State.CLOSED:  # closed after running, or after a rejection
            return change.summary is not None
        if state in (State.REJECTED, State.CANCELLED):
            return False
        return None
    if state is State.COMPLETED:
        return True
    if state is State.CLOSED:
        return ran == State.COMPLETED.value
    if state in NOT_COMPLETED:
        return False
    return None


def wait_for(
    service: ChangeService,
    change_id: str,
    goal: str = "approved",
    *,
    timeout: float = 3600.0,
    interval: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> WaitOutcome:
    """Polls the change until the goal is decided or the timeout passes (see
    the module). An unknown change id fails at once (`ChangeError`)."""
    if goal not in GOALS:
        raise UsageError(f"--for {goal!r}: use {' or '.join(GOALS)}")
    if timeout < 0 or interval <= 0:
        raise UsageError("--timeout must be 0 or more seconds and --interval more than 0")
    start = clock()
    while True:
        change = service.get(change_id)
        decided = decision(change, goal)
        waited = clock() - start
        if decided is not None or waited >= timeout:
            return WaitOutcome(
                change_id, goal, str(change.state), decided is not None, bool(decided), waited
            )
        sleep(min(interval, max(timeout - waited, 0.0)))
