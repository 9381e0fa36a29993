"""The one vocabulary for a host's state, from a connector call up to the CLI.

Every layer that says how a host is doing uses `HostState`: a connector's
transcript entries and action results, the executor's steps (`StepRun`) and
its run on one host (`HostRun`), a change's host rows (``change_hosts``)
and its summary, the requested rollback's per-host outcome, and the CLI.
The string values are exactly the ones the ledger and the database store,
so a member compares equal to, and is stored as, its plain string::

    >>> HostState("rolled_back") is HostState.ROLLED_BACK
    True
    >>> HostState.OK == "ok"
    True

Each layer sets only its own states (the table below, also in the docs'
change page). Two layers name the same fact differently because both
strings are stored: the executor's `COMPLETED` is the change's `OK`, and a
change host `ROLLED_BACK` is the requested rollback's `RESTORED`.
`change_host_state` and `rollback_outcome` are the only translations.

Layers: *conn* a connector call (`TranscriptEntry`, `ActionResult`), *step*
the executor's `StepRun`, *run* its `HostRun`, *change* a change's host row
and summary, *rollback* the requested rollback's per-host outcome.

| state | meaning | final | set by |
| --- | --- | --- | --- |
| ok | succeeded; a change host: applied and verified | yes | conn, step, change |
| changed | the call or step changed the device | yes | conn, step |
| warn | a failed check that only warns (`on_fail: warn`) | yes | step |
| skipped | nothing ran (a step's condition; a host after a halt) | yes | conn, step, change |
| failed | failed; a change host: failed, not rolled back | yes | all five |
| unreachable, auth_failed, timeout | the connection failed | yes | conn, step |
| rejected | the device refused a command ("% Invalid input") | yes | conn, step |
| capability_missing | the connector cannot do this on the platform | yes | conn, step |
| completed | the runbook was applied and verified | yes | run |
| dry_run | only predicted | yes | run |
| rolled_back | failed, rolled back, proven equal to the snapshot | yes | run, change |
| rollback_failed | the rollback did not restore the snapshot | yes | run, change |
| not_restored | rolled back with nothing to prove it (no snapshot) | yes | change, rollback |
| restored | the requested rollback restored it, with proof | yes | rollback |
| pending | planned, not started (or its end not yet indexed) | no | change |
| running | the rollout is working on it | no | change |
| unknown | a crashed run stopped between backup and end | yes | change (recovery) |

"Final" means the layer that set it will not change it again; a later
rollback of the change may still move a final `ok` host to `rolled_back`.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class HostState(StrEnum):
    """A host's state at one layer (see the module's table)."""

    # A connector call, a step (`StepRun.status`): what one operation did.
    OK = "ok"
    CHANGED = "changed"
    WARN = "warn"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    AUTH_FAILED = "auth_failed"
    TIMEOUT = "timeout"
    REJECTED = "rejected"
    CAPABILITY_MISSING = "capability_missing"
    # The executor's run of a runbook on one host (`HostRun.status`).
    COMPLETED = "completed"
    DRY_RUN = "dry_run"
    ROLLED_BACK = "rolled_back"
    ROLLBACK_FAILED = "rollback_failed"
    # A host of a change (``change_hosts.status``, the change summary).
    PENDING = "pending"
    RUNNING = "running"
    UNKNOWN = "unknown"
    NOT_RESTORED = "not_restored"
    # The requested rollback's outcome on one host.
    RESTORED = "restored"

    @property
    def final(self) -> bool:
        """The layer that set it is done with the host (not pending or running)."""
        return self not in UNFINISHED


# -- one operation (connector call, step) ------------------------------------------
# A step in one of these did not fail (`StepRun.failed` is False).
STEP_PASSED = frozenset({HostState.OK, HostState.CHANGED, HostState.WARN, HostState.SKIPPED})
# An action result or Ansible task in one of these succeeded.
SUCCEEDED = frozenset({HostState.OK, HostState.CHANGED})
# The connection itself failed: the session is broken (`opskit.connectors.base.
# breaks_session`), and trying another way on the same host is pointless.
CONNECTION_FAILED = frozenset({HostState.UNREACHABLE, HostState.AUTH_FAILED, HostState.TIMEOUT})
# The device or connector cannot answer this: a check that warns is "unavailable".
UNAVAILABLE = frozenset({HostState.REJECTED, HostState.CAPABILITY_MISSING})


# -- the executor's run on one host --------------------------------------------------
# A run in one of these went as planned (`HostRun.ok`).
RUN_OK = frozenset({HostState.COMPLETED, HostState.DRY_RUN})

# -- a host of a change --------------------------------------------------------------
# Every state a change's host row can hold, in the order the summary counts them.
CHANGE_HOST_STATES = (
    HostState.PENDING,
    HostState.RUNNING,
    HostState.OK,
    HostState.FAILED,
    HostState.ROLLED_BACK,
    HostState.ROLLBACK_FAILED,
    HostState.SKIPPED,
    HostState.UNKNOWN,
    HostState.NOT_RESTORED,
)
# Not done yet: the index may lag the ledger for a host in one of these.
UNFINISHED = frozenset({HostState.PENDING, HostState.RUNNING})
# The run never started on the host: nothing to record in the CMDB.
NEVER_STARTED = frozenset({HostState.PENDING, HostState.SKIPPED})
# A host in one of these has had (or may have had) its configuration changed.
TOUCHED = frozenset(
    {
        HostState.RUNNING,
        HostState.OK,
        HostState.FAILED,
        HostState.ROLLBACK_FAILED,
        HostState.UNKNOWN,
        HostState.NOT_RESTORED,
    }
)
# A host whose run failed, as the error budget counts it: put back with a
# proof, without one (`not_restored`) or not at all.
RUN_FAILED = frozenset(
    {HostState.FAILED, HostState.ROLLED_BACK, HostState.ROLLBACK_FAILED, HostState.NOT_RESTORED}
)
# A host that failed and was not (provably) put back.
NOT_PUT_BACK = frozenset(
    {HostState.FAILED, HostState.ROLLBACK_FAILED, HostState.NOT_RESTORED, HostState.UNKNOWN}
)

# The executor's run -> the change host's state: `completed` is stored as
# `ok` in a change (the only state the two layers name differently).
_CHANGE_STATE_OF_RUN: dict[str, HostState] = {
    HostState.COMPLETED: HostState.OK,
    HostState.FAILED: HostState.FAILED,
    HostState.ROLLED_BACK: HostState.ROLLED_BACK,
    HostState.ROLLBACK_FAILED: HostState.ROLLBACK_FAILED,
}


def change_host_state(run_state: str) -> HostState:
    """The change host's state for the executor's run state (a dry run, or
    anything else, is `failed`: a change never runs one).

    >>> change_host_state(HostState.COMPLETED)
    <HostState.OK: 'ok'>
    """
    return _CHANGE_STATE_OF_RUN.get(run_state, HostState.FAILED)


def rollback_outcome(host_state: str) -> HostState:
    """The requested rollback's outcome for a host in `host_state` after it:
    `restored` (proven), `not_restored` (nothing to prove it) or `failed`."""
    if host_state == HostState.ROLLED_BACK:
        return HostState.RESTORED
    if host_state == HostState.NOT_RESTORED:
        return HostState.NOT_RESTORED
    return HostState.FAILED


def count_states(states: Iterable[str]) -> dict[str, int]:
    """Hosts per state, every change-host state named (0 when none), in
    `CHANGE_HOST_STATES` order; any other state after them.

    >>> count_states(["ok", "ok", "failed"])["ok"]
    2
    """
    counts = {state.value: 0 for state in CHANGE_HOST_STATES}
    for state in states:
        key = str(state)
        counts[key] = counts.get(key, 0) + 1
    return counts


__all__ = [
    "CHANGE_HOST_STATES",
    "CONNECTION_FAILED",
    "NEVER_STARTED",
    "NOT_PUT_BACK",
    "RUN_FAILED",
    "RUN_OK",
    "STEP_PASSED",
    "SUCCEEDED",
    "TOUCHED",
    "UNAVAILABLE",
    "UNFINISHED",
    "HostState",
    "change_host_state",
    "count_states",
    "rollback_outcome",
]
