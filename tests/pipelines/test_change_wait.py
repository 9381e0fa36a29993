"""`change wait` without devices: which states decide which goal (every
state of the change process), the poll loop on an injected clock, Ctrl-C
and bad input as one line, on a real SQLite workspace."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.changes import ChangeService, State
from opskit.changes.waiting import EXIT_TIMEOUT, decision, wait_for
from opskit.errors import UsageError
from opskit.workspace import Workspace
from tests.changes_support import run_change_cli, write_policy, write_runbooks

# What each state says about each goal (None: not decided yet).
EXPECTED = {
    State.DRAFT: (None, None),
    State.SUBMITTED: (None, None),
    State.ASSESSED: (None, None),
    State.APPROVED: (True, None),
    State.REJECTED: (False, False),
    State.SCHEDULED: (True, None),
    State.IN_PROGRESS: (True, None),
    State.VERIFYING: (True, None),
    State.COMPLETED: (True, True),
    State.FAILED: (True, False),
    State.ROLLED_BACK: (True, False),
    State.PARTIALLY_ROLLED_BACK: (True, False),
    State.CANCELLED: (False, False),
}


@pytest.fixture
def svc(workspace: Workspace) -> Iterator[ChangeService]:
    write_policy(workspace)
    write_runbooks(workspace)
    yield ChangeService(workspace)


def draft(svc: ChangeService) -> str:
    return svc.create(
        runbook="chg-test@1.0.0", select_expr="lab-sw01", requester="alice", title="t",
        params={"vlan_id": 42},
    ).id  # fmt: skip


def test_every_state_decides_each_goal_as_documented(svc: ChangeService) -> None:
    change = svc.get(draft(svc))
    assert set(EXPECTED) | {State.CLOSED} == set(State)  # a new state must be placed here
    for state, (approved, completed) in EXPECTED.items():
        moved = replace(change, state=state)
        assert (decision(moved, "approved"), decision(moved, "completed")) == (
            approved,
            completed,
        ), state
    # Closed: after a rejection (never ran), after completing, after failing.
    closed = replace(change, state=State.CLOSED)
    assert decision(closed, "approved") is False and decision(closed, "completed") is False
    ran = replace(closed, summary={"state": "completed"})
    assert decision(ran, "approved") is True and decision(ran, "completed") is True
    failed = replace(closed, summary={"state": "failed"})
    assert decision(failed, "completed") is False


# One workspace for every example: the waits only read it.
@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(timeout=st.floats(0, 50), interval=st.floats(0.01, 30))
def test_the_wait_ends_at_its_timeout_never_before_and_never_long_after(
    svc: ChangeService, timeout: float, interval: float
) -> None:
    change_id = svc.list()[0].id if svc.list() else draft(svc)
    now = [0.0]
    outcome = wait_for(svc, change_id, "approved", timeout=timeout, interval=interval,
                       clock=lambda: now[0],
                       sleep=lambda s: now.__setitem__(0, now[0] + s))  # fmt: skip
    assert not outcome.decided and outcome.exit_code == EXIT_TIMEOUT
    assert timeout <= outcome.waited <= timeout + 1e-6


def test_bad_wait_arguments_are_one_line_and_write_nothing(svc: ChangeService) -> None:
    change_id = draft(svc)
    with pytest.raises(UsageError, match="--for 'done': use approved or completed"):
        wait_for(svc, change_id, "done")
    for args in (["--for", "done"], ["--timeout", "-1"], ["--interval", "0"]):
        result = run_change_cli(svc.ws, "wait", change_id, *args)
        assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
        assert "Traceback" not in result.stderr


def test_ctrl_c_while_waiting_is_one_line(svc: ChangeService) -> None:
    change_id = draft(svc)
    waiter = subprocess.Popen(
        [sys.executable, "-m", "opskit", "--workspace", str(svc.ws.root), "--as", "alice",
         "change", "wait", change_id, "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(3.0)  # past start-up: polling
    waiter.send_signal(signal.SIGINT)
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 130
    assert err == f"interrupted while waiting for {change_id}\n" and out == ""
