"""A change's typed results: what a summary says about its hosts, and what a
host's run says about its steps, is computed from them (Nornir's Result ->
MultiResult -> AggregatedResult), and the JSON form is the stored one.

The lab check of the same (a real rollout's summary against what the store
and the ledger hold) is in test_change_apply.py, which has the lab."""

from __future__ import annotations

import json

from opskit.changes.model import State
from opskit.changes.progress import ProgressTally
from opskit.changes.summary import ChangeSummary, HostSummary
from opskit.hoststate import CHANGE_HOST_STATES, HostState, change_host_state, count_states
from opskit.runbooks.results import HostRun, StepRun


def step(phase: str, status: HostState, *, changed: bool = False) -> StepRun:
    return StepRun(phase, f"{phase} step", "netmiko", "config", status=status, changed=changed)


def run(status: HostState, *steps: StepRun) -> HostRun:
    return HostRun("sw", "cisco_ios", "vlan@1.0.0", status=status, steps=list(steps))


def test_a_host_run_is_computed_from_its_steps() -> None:
    applied = run(
        HostState.COMPLETED,
        step("precheck", HostState.OK),
        step("apply", HostState.CHANGED, changed=True),
        step("verify", HostState.WARN),
    )
    assert applied.ok and not applied.failed and applied.changed
    assert applied.counts == {"ok": 1, "changed": 1, "warn": 1}
    assert applied.failed_steps == []

    nothing_to_do = run(HostState.COMPLETED, step("apply", HostState.OK))
    assert not nothing_to_do.changed

    rejected = step("apply", HostState.REJECTED)
    rolled_back = run(
        HostState.ROLLED_BACK,
        step("apply", HostState.CHANGED, changed=True),
        rejected,
        step("rollback", HostState.CHANGED, changed=True),
    )
    assert rolled_back.failed and rolled_back.changed
    assert rolled_back.failed_steps == [rejected]
    assert rolled_back.counts == {"changed": 2, "rejected": 1}
    assert run(HostState.DRY_RUN).ok


def test_a_host_summary_is_computed_from_its_run_and_state() -> None:
    good = run(HostState.COMPLETED, step("apply", HostState.CHANGED, changed=True))
    ok = HostSummary("sw1", change_host_state(good.status), batch=0, ran=True, run=good)
    assert ok.status == HostState.OK and not ok.failed and ok.changed

    bad = run(HostState.ROLLED_BACK, step("verify", HostState.FAILED))
    rolled = HostSummary("sw2", change_host_state(bad.status), batch=1, ran=True, run=bad)
    assert rolled.failed and not rolled.changed

    # Restored by a later rollback after a good run: not a failure.
    ok.status = HostState.ROLLED_BACK
    assert not ok.failed
    # Known only by its state (rows of an earlier run): failed unless put back.
    for state in (HostState.FAILED, HostState.ROLLBACK_FAILED, HostState.NOT_RESTORED):
        assert HostSummary("sw3", state).failed
    for state in (HostState.OK, HostState.SKIPPED, HostState.ROLLED_BACK, HostState.PENDING):
        assert not HostSummary("sw3", state).failed


def summary() -> ChangeSummary:
    changed = run(HostState.COMPLETED, step("apply", HostState.CHANGED, changed=True))
    failed = run(HostState.ROLLBACK_FAILED, step("apply", HostState.TIMEOUT))
    hosts = {
        "sw3": HostSummary("sw3", HostState.SKIPPED, detail={"reason": "halted"}),
        "sw1": HostSummary("sw1", HostState.OK, batch=0, ran=True, config_hash="h1", run=changed),
        "sw2": HostSummary(
            "sw2",
            HostState.ROLLBACK_FAILED,
            batch=0,
            ran=True,
            error="timed out",
            detail={"rollback": {"proof": {"method": "replace"}}},
            run=failed,
        ),
    }
    return ChangeSummary("CHG-1", State.FAILED, "vlan@1.0.0", "sw2: timed out", hosts)


def test_a_change_summary_is_computed_from_its_hosts() -> None:
    result = summary()
    assert result.counts == count_states(["ok", "rollback_failed", "skipped"])
    assert result.counts["ok"] == result.counts["rollback_failed"] == result.counts["skipped"] == 1
    assert list(result.counts) == [state.value for state in CHANGE_HOST_STATES]
    assert result.failed and result.changed
    assert list(result.failed_hosts) == ["sw2"]
    # A host changes state: everything said about the hosts follows.
    result.hosts["sw2"].status = HostState.ROLLED_BACK
    result.hosts["sw2"].run = None
    assert not result.failed and result.counts["rolled_back"] == 1
    assert result.counts["rollback_failed"] == 0
    result.hosts["sw1"].run = None
    assert not result.changed


def test_the_json_form_is_the_stored_summary() -> None:
    result = summary()
    data = result.to_dict()
    assert list(data) == ["change_id", "state", "runbook", "cause", "counts", "hosts"]
    assert list(data["hosts"]) == ["sw1", "sw2", "sw3"]  # by name
    assert data["hosts"]["sw2"] == {
        "status": "rollback_failed",
        "batch": 0,
        "config_hash": None,
        "error": "timed out",
        "restored_by": "replace",
    }
    # Plain JSON types only: the same text as the stored summary's.
    assert json.loads(json.dumps(data)) == data
    assert all(type(h["status"]) is str for h in data["hosts"].values())
    assert all(type(key) is str for key in data["counts"])
    assert type(data["state"]) is str
    # The mapping view reads the JSON form.
    assert result["counts"] == data["counts"] and dict(result) == data and result == data
    result.rollback = {"sw2": {"outcome": "failed", "reason": "timed out"}}
    assert list(result.to_dict())[-1] == "rollback"


def test_a_change_host_state_maps_from_the_run_in_one_place() -> None:
    assert change_host_state(HostState.COMPLETED) is HostState.OK
    assert change_host_state("completed") is HostState.OK
    for same in (HostState.FAILED, HostState.ROLLED_BACK, HostState.ROLLBACK_FAILED):
        assert change_host_state(same) is same
    assert change_host_state(HostState.DRY_RUN) is HostState.FAILED  # never in a change


def test_progress_counts_final_states_once() -> None:
    tally = ProgressTally(3)
    assert not tally.update("sw1", HostState.RUNNING)  # not final
    assert not HostState.RUNNING.final and HostState.OK.final
    for ci, state in (("sw1", "ok"), ("sw2", HostState.NOT_RESTORED), ("sw3", "skipped")):
        assert tally.update(ci, state)
    assert tally.update("sw1", HostState.ROLLED_BACK)  # rollback_all after success
    assert tally.counts == {"ok": 0, "failed": 1, "rolled_back": 1, "skipped": 1}
    assert all(type(key) is str for key in tally.counts)
