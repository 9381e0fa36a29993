"""The change process without devices: states, roles, four-eyes, quorum,
standard and emergency changes, windows, freezes, locks, binding and signed
approvals, on a real SQLite workspace with a real ledger.

Every refusal here happens before any device is contacted (the apply checks
run first), so the lab inventory file is enough; no lab is started.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

from opskit.changes import ChangeService, State, verify_approvals
from opskit.changes import store as change_store
from opskit.changes.journal import Journal
from opskit.changes.model import TRANSITIONS
from opskit.changes.signing import generate_keypair, sign_document
from opskit.changes.summary import ORPHAN_LOCKS, RecoveryReport
from opskit.errors import ChangeError, ChangeRefused, RunbookError
from opskit.policy import ChangeWindow, load_policy, open_window, window_contains
from opskit.secrets import REDACTOR
from opskit.workspace import Workspace
from tests.changes_support import run_change_cli as run_cli
from tests.changes_support import write_policy, write_runbooks
from tests.fixtures.processes import read_bytes_elsewhere

SWITCH = "lab-sw01"
OTHER_SWITCH = "lab-sw02"


@pytest.fixture
def svc(workspace: Workspace) -> Iterator[ChangeService]:
    write_policy(workspace)
    write_runbooks(workspace)
    yield ChangeService(workspace)


def new_change(
    svc: ChangeService,
    *,
    version: str = "1.0.0",
    select: str = SWITCH,
    requester: str = "alice",
    type: str = "normal",
    **kwargs: object,
) -> str:
    change = svc.create(
        runbook=f"chg-test@{version}",
        select_expr=select,
        requester=requester,
        title="test VLAN",
        params={"vlan_id": 42},
        type=type,
        **kwargs,  # type: ignore[arg-type]
    )
    return change.id


def assessed(svc: ChangeService, **kwargs: object) -> str:
    change_id = new_change(svc, **kwargs)  # type: ignore[arg-type]
    svc.submit(change_id, "alice")
    svc.assess(change_id, "bob", predict=False)
    return change_id


def kinds(svc: ChangeService, change_id: str) -> list[str]:
    return [e.kind for e in svc.context.ledger.events(change_id=change_id)]


# -- the state machine ----------------------------------------------------------
def test_request_to_approval_is_recorded_with_actors(svc: ChangeService) -> None:
    change = svc.create(
        runbook="chg-test@1.0.0",
        select_expr=SWITCH,
        requester="alice",
        title="VLAN 42 on the lab switch",
        params={"vlan_id": 42},
        tickets=["INC-1"],
    )
    assert change.id.startswith("CHG-") and change.state is State.DRAFT
    assert change.targets == [SWITCH]
    assert change.runbook_digest.startswith("sha256:")
    assert change.parameters == {"vlan_id": 42, "vlan_name": "opskit-test", "expect_names": {}}
    assert change.plan["implementation"] and change.plan["rollback"]
    svc.submit(change.id, "alice")
    change = svc.assess(change.id, "bob", predict=False)
    assert change.state is State.ASSESSED
    assert change.risk["level"] == "low"
    factors = {f["name"]: f for f in change.risk["factors"]}
    assert {
        "criticality",
        "blast_radius",
        "runbook_risk",
        "missing_capabilities",
        "history",
    } <= set(factors)
    assert all(f["reason"] for f in factors.values())
    assert change.risk["score"] == max(0, sum(f["points"] for f in factors.values()))
    assert change.assessment["required"]["roles"] == ["change_manager"]
    assert change.impact["targets"] == [SWITCH]
    change = svc.approve(change.id, "bob", comment="fine")
    assert change.state is State.APPROVED
    events = list(svc.context.ledger.events(change_id=change.id))
    assert [e.kind for e in events] == [
        "change.created",
        "change.submitted",
        "change.assessed",
        "change.approval",
        "change.approved",
    ]
    assert [e.actor for e in events] == ["alice", "alice", "bob", "bob", "bob"]
    assert events[0].payload["tickets"] == ["INC-1"]
    assert svc.context.ledger.verify().ok


def test_illegal_transitions_are_clear_errors(svc: ChangeService) -> None:
    change_id = new_change(svc)
    with pytest.raises(ChangeError, match="only an assessed change can be approved"):
        svc.approve(change_id, "bob")
    with pytest.raises(ChangeError, match="cannot go from draft to closed"):
        svc.close(change_id, "alice", review="nothing")
    with pytest.raises(ChangeError, match="cannot go from draft to scheduled"):
        svc.schedule(change_id, "alice")
    with pytest.raises(ChangeError, match="no change 'CHG-999999'"):
        svc.get("CHG-999999")
    # Every state has its row in the table, and closed is final.
    assert set(TRANSITIONS) == set(State)
    assert TRANSITIONS[State.CLOSED] == frozenset()


def test_every_transition_outside_the_table_is_refused() -> None:
    from opskit.changes.model import check_transition

    for current in State:
        for target in State:
            if target in TRANSITIONS[current]:
                check_transition("CHG-1", current, target)
            else:
                with pytest.raises(ChangeError, match=f"cannot go from {current} to {target}"):
                    check_transition("CHG-1", current, target)


def test_reject_then_close(svc: ChangeService) -> None:
    draft = new_change(svc)
    with pytest.raises(ChangeError, match="cannot go from draft to rejected"):
        svc.reject(draft, "bob", "too early")
    assert svc.get(draft).approvals == []  # an illegal reject leaves no rejection behind
    change_id = assessed(svc)
    with pytest.raises(ChangeError, match="needs a reason"):
        svc.reject(change_id, "bob", " ")
    change = svc.reject(change_id, "bob", "no business case")
    assert change.state is State.REJECTED
    with pytest.raises(ChangeError, match="cannot go from rejected to scheduled"):
        svc.schedule(change_id, "alice")
    # A review cannot report a better outcome than the change had.
    with pytest.raises(ChangeError, match="outcome 'completed' does not fit a rejected change"):
        svc.close(change_id, "alice", review="all fine", outcome="completed")
    assert svc.get(change_id).state is State.REJECTED
    change = svc.close(change_id, "alice", review="rejected at CAB")
    assert change.state is State.CLOSED and change.review["outcome"] == "rejected"
    # The illegal schedule between them is a refusal, recorded like any other.
    assert kinds(svc, change_id)[-3:] == ["change.rejected", "change.refused", "change.closed"]
    with pytest.raises(ChangeError, match="cannot go from closed to rejected"):
        svc.reject(change_id, "carol", "again")
    assert [a["approver"] for a in svc.get(change_id).approvals] == ["bob"]


# -- roles and four-eyes ----------------------------------------------------------
def test_roles_are_enforced_and_refusals_recorded(svc: ChangeService) -> None:
    with pytest.raises(ChangeRefused, match="bob is not a requester"):
        new_change(svc, requester="bob")
    change_id = assessed(svc)
    with pytest.raises(ChangeRefused, match="erin is not a change_manager"):
        svc.approve(change_id, "erin")
    refusals = [
        e for e in svc.context.ledger.events(change_id=change_id) if e.kind == "change.refused"
    ]
    assert refusals and refusals[-1].actor == "erin"
    assert "not a change_manager" in refusals[-1].payload["reason"]
    assert svc.get(change_id).state is State.ASSESSED


def test_nobody_approves_their_own_change(svc: ChangeService) -> None:
    change_id = new_change(svc, requester="mallory")
    svc.submit(change_id, "mallory")
    svc.assess(change_id, "mallory", predict=False)
    with pytest.raises(ChangeRefused, match="mallory requested this change"):
        svc.approve(change_id, "mallory")
    assert kinds(svc, change_id)[-1] == "change.refused"


def test_medium_risk_needs_a_cab_quorum(svc: ChangeService) -> None:
    change_id = assessed(svc, version="2.0.0")
    change = svc.get(change_id)
    assert change.risk["level"] == "medium"
    assert change.assessment["required"]["count"] == 2
    assert svc.approve(change_id, "carol").state is State.ASSESSED
    with pytest.raises(ChangeRefused, match="carol has already approved it"):
        svc.approve(change_id, "carol")
    assert kinds(svc, change_id)[-1] == "change.refused"
    with pytest.raises(ChangeRefused, match="apply refused: it is assessed"):
        svc.apply(change_id, "alice")
    assert svc.approve(change_id, "bob").state is State.APPROVED


def test_high_risk_implementer_may_not_be_an_approver(svc: ChangeService) -> None:
    change_id = assessed(svc, version="3.0.0")
    assert svc.get(change_id).risk["level"] == "high"
    with pytest.raises(ChangeRefused, match="bob is not a governance"):
        svc.approve(change_id, "bob")
    svc.approve(change_id, "gary")
    with pytest.raises(ChangeRefused, match="gary approved this high-risk change"):
        svc.apply(change_id, "gary")
    with pytest.raises(ChangeRefused, match="dave is not an implementer"):
        svc.apply(change_id, "dave")


# -- standard and emergency -----------------------------------------------------------
def test_standard_change_runs_without_cab_when_its_digest_is_preapproved(
    svc: ChangeService,
) -> None:
    with pytest.raises(ChangeError, match="not a pre-approved standard change"):
        assessed(svc, type="standard")
    digest = svc.context.catalog.get("chg-test@1.0.0").digest
    write_policy(
        svc.ws,
        extra=f"standard_changes:\n  - {{runbook: chg-test, version: 1.0.0, digest: '{digest}'}}\n",
    )
    change_id = assessed(svc, type="standard")
    change = svc.get(change_id)
    assert change.state is State.APPROVED and change.approvals == []
    approved = [
        e for e in svc.context.ledger.events(change_id=change_id) if e.kind == "change.approved"
    ]
    assert approved[0].payload["by"] == "policy"


def test_emergency_change_needs_one_emergency_approval(svc: ChangeService) -> None:
    change_id = assessed(svc, version="2.0.0", type="emergency")
    change = svc.get(change_id)
    required = change.assessment["required"]
    assert required["rule"] == "emergency" and required["count"] == 1
    assert required["retrospective"]["roles"] == ["cab"]
    assert svc.approve(change_id, "bob").state is State.APPROVED


# -- windows and freezes -------------------------------------------------------------------
def test_recurring_windows_are_timezone_aware() -> None:
    nightly = ChangeWindow(
        name="nightly", timezone="Europe/Berlin", days=["mon"], start="22:00", end="05:00"
    )
    # Monday 2026-11-23 22:30 in Berlin is 21:30 UTC.
    assert window_contains(nightly, datetime(2026, 11, 23, 21, 30, tzinfo=UTC))
    # Tuesday 03:00 Berlin belongs to Monday's window; Tuesday 22:30 does not.
    assert window_contains(nightly, datetime(2026, 11, 24, 2, 0, tzinfo=UTC))
    assert not window_contains(nightly, datetime(2026, 11, 24, 21, 30, tzinfo=UTC))
    assert not window_contains(nightly, datetime(2026, 11, 23, 20, 30, tzinfo=UTC))


def test_apply_outside_the_window_is_refused(svc: ChangeService) -> None:
    now = datetime.now(UTC)
    change_id = assessed(
        svc, window_start=now + timedelta(minutes=1), window_end=now + timedelta(hours=1)
    )
    svc.approve(change_id, "bob")
    # Applied two hours later: the window has closed.
    later = ChangeService(svc.ws, clock=lambda: now + timedelta(hours=2))
    with pytest.raises(ChangeRefused, match="its window closed"):
        later.apply(change_id, "alice")
    refused = [
        e for e in svc.context.ledger.events(change_id=change_id) if e.kind == "change.refused"
    ]
    assert "window closed" in refused[-1].payload["reason"]
    assert svc.get(change_id).state is State.APPROVED

    # A policy window that is not open now refuses normal changes, not emergencies.
    closed_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"][(now.weekday() + 3) % 7]
    write_policy(
        svc.ws,
        extra=(
            f'windows:\n  - {{name: maint, days: [{closed_day}], start: "01:00", end: "02:00"}}\n'
        ),
    )
    assert open_window(svc.context.policy, now) is None
    change_id = assessed(svc)
    svc.approve(change_id, "bob")
    with pytest.raises(ChangeRefused, match="outside every change window of the policy"):
        svc.apply(change_id, "alice")


def test_scheduled_window_in_the_future_refuses_apply_until_it_opens(svc: ChangeService) -> None:
    now = datetime.now(UTC)
    change_id = assessed(svc)
    svc.approve(change_id, "bob")
    with pytest.raises(ChangeError, match="must end after it starts"):
        svc.schedule(change_id, "alice", start=now, end=now - timedelta(hours=1))
    change = svc.schedule(
        change_id, "alice", start=now + timedelta(hours=1), end=now + timedelta(hours=2)
    )
    assert change.state is State.SCHEDULED
    with pytest.raises(ChangeRefused, match="its window opens at"):
        svc.apply(change_id, "alice")
    # The same change checked an hour and a half later: inside its window.
    later = ChangeService(svc.ws, clock=lambda: now + timedelta(minutes=90))
    assert later.apply_blockers(later.get(change_id), "alice") == []


def test_freeze_refuses_normal_changes_and_emergency_needs_the_override(
    svc: ChangeService,
) -> None:
    now = datetime.now(UTC)
    write_policy(
        svc.ws,
        extra=f"""\
freezes:
  - name: year-end
    start: "{(now - timedelta(days=1)).isoformat()}"
    end: "{(now + timedelta(days=1)).isoformat()}"
    reason: financial closing
    emergency_override: {{roles: [governance], count: 1}}
""",
    )
    change_id = assessed(svc)
    svc.approve(change_id, "bob")
    with pytest.raises(ChangeRefused, match="freeze year-end is in force"):
        svc.apply(change_id, "alice")

    emergency = assessed(svc, type="emergency")
    svc.approve(emergency, "bob")
    reasons = svc.apply_blockers(svc.get(emergency), "alice")
    assert any("emergency override needs 1 approval(s) by governance" in r for r in reasons)
    # Governance approves the override: the freeze no longer blocks this change.
    # Re-assessed, governance approves: bob's approval still binds (nothing
    # changed), dave's is the override the freeze names.
    svc.assess(emergency, "bob", predict=False)
    assert svc.approve(emergency, "dave").state is State.APPROVED
    assert svc.apply_blockers(svc.get(emergency), "alice") == []


# -- locks --------------------------------------------------------------------------
def test_a_ci_held_by_another_change_refuses_apply(svc: ChangeService) -> None:
    first = assessed(svc)
    second = assessed(svc, select=f"{SWITCH} or {OTHER_SWITCH}")
    svc.approve(first, "bob")
    svc.approve(second, "bob")
    svc.context.store.acquire_locks(svc.get(first))
    with pytest.raises(ChangeRefused, match=f"CIs held by other changes: {SWITCH} \\({first}\\)"):
        svc.apply(second, "alice")
    # The lock table itself refuses a second holder, atomically (no partial locks).
    with pytest.raises(ChangeRefused, match="held by other changes"):
        svc.context.store.acquire_locks(svc.get(second))
    assert svc.context.store.locks_held_by_others(svc.get(second)) == {SWITCH: first}
    assert svc.context.store.release_locks(second) == 0
    # The holder is not running (its runner died between locking and
    # starting): recover releases its locks and says so.
    (report,) = svc.recover("alice")
    assert isinstance(report, RecoveryReport) and report.action == ORPHAN_LOCKS
    assert report == {
        "change_id": first,
        "state": "approved",
        "action": "released orphan locks",
        "locks_released": 1,
    }
    assert kinds(svc, first)[-1] == "change.locks_released"
    assert svc.apply_blockers(svc.get(second), "alice") == []


def test_recover_json_keeps_its_shape(svc: ChangeService) -> None:
    # The typed report prints as the JSON recovery always printed (keys in order).
    first = assessed(svc)
    svc.approve(first, "bob")
    svc.context.store.acquire_locks(svc.get(first))
    result = run_cli(svc.ws, "recover", "--json")
    assert result.returncode == 0, result.stderr
    (report,) = json.loads(result.stdout)
    assert list(report.items()) == [
        ("change_id", first),
        ("state", "approved"),
        ("action", "released orphan locks"),
        ("locks_released", 1),
    ]
    assert svc.recover("alice") == []  # nothing left to release


# -- binding -------------------------------------------------------------------------
def test_changed_runbook_after_approval_refuses_apply(svc: ChangeService) -> None:
    change_id = assessed(svc)
    svc.approve(change_id, "bob")
    path = svc.ws.runbooks_dir / "chg-test" / "1.0.0.yaml"
    path.write_text(path.read_text().replace("Test runbook", "Edited runbook"))
    svc.context.forget_catalog()  # a new process would read the files again
    with pytest.raises(ChangeRefused, match=r"runbook chg-test@1\.0\.0 digest is now"):
        svc.apply(change_id, "alice")
    # Re-assessment binds to the new digest; approval is needed again.
    change = svc.assess(change_id, "bob", predict=False)
    assert change.state is State.ASSESSED
    svc.approve(change_id, "bob")
    assert svc.apply_blockers(svc.get(change_id), "alice") == []


def test_changed_template_after_approval_refuses_apply_and_is_recorded(
    svc: ChangeService,
) -> None:
    """The binding covers the files a runbook references, not only its YAML."""
    path = svc.ws.runbooks_dir / "chg-test" / "1.0.0.yaml"
    lines = '      lines: ["vlan {{ params.vlan_id }}", " name {{ params.vlan_name }}", "exit"]'
    assert lines in path.read_text()
    path.write_text(path.read_text().replace(lines, "      template: chg-test/vlan.j2"))
    template = svc.ws.templates_dir / "chg-test" / "vlan.j2"
    template.parent.mkdir(parents=True)
    template.write_text("vlan {{ params.vlan_id }}\n name {{ params.vlan_name }}\nexit\n")
    svc.context.forget_catalog()
    change_id = assessed(svc)
    svc.approve(change_id, "bob")
    assert svc.apply_blockers(svc.get(change_id), "alice") == []
    template.write_text(template.read_text().replace("exit", "shutdown\nexit"))
    svc.context.forget_catalog()  # a new process would read the files again
    with pytest.raises(ChangeRefused, match=r"runbook chg-test@1\.0\.0 digest is now"):
        svc.apply(change_id, "alice")
    refused = [
        e for e in svc.context.ledger.events(change_id=change_id) if e.kind == "change.refused"
    ]
    assert [e.payload["action"] for e in refused] == ["apply"]
    assert "digest is now" in refused[0].payload["reason"] and refused[0].actor == "alice"
    assert svc.get(change_id).state is State.APPROVED


def test_changed_targets_or_inventory_after_approval_refuses_apply(svc: ChangeService) -> None:
    change_id = assessed(svc, select="lab-sw0*")
    svc.approve(change_id, "bob")
    inventory = svc.ws.inventories_dir / "lab" / "lab.yaml"
    text = inventory.read_text()
    inventory.write_text(text.replace("- name: lab-sw02", "- name: lab-sw09", 1))
    reasons = svc.apply_blockers(svc.get(change_id), "alice")
    assert any("the inventory changed" in r and "the targets changed" in r for r in reasons)
    inventory.write_text(text)
    assert svc.apply_blockers(svc.get(change_id), "alice") == []


def test_changed_parameters_after_approval_refuses_apply(svc: ChangeService) -> None:
    change_id = assessed(svc)
    svc.approve(change_id, "bob")
    # Someone edits the working index directly: the approval no longer binds.
    with svc.context.engine.begin() as conn:
        conn.execute(
            update(change_store.changes)
            .where(change_store.changes.c.id == change_id)
            .values(parameters={"vlan_id": 666, "vlan_name": "opskit-test", "expect_names": {}})
        )
    with pytest.raises(ChangeRefused, match="the parameters changed"):
        svc.apply(change_id, "alice")


def test_invalid_parameters_name_the_parameter(svc: ChangeService) -> None:
    with pytest.raises(RunbookError, match="vlan_id"):
        svc.create(
            runbook="chg-test@1.0.0",
            select_expr=SWITCH,
            requester="alice",
            title="bad",
            params={"vlan_id": 99999},
        )
    with pytest.raises(ChangeError, match="matches no CI"):
        new_change(svc, select="nothing-*")


def test_secret_parameters_stay_references(
    svc: ChangeService, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHG_COMMUNITY", "s3cret-community-value")
    REDACTOR.register("s3cret-community-value")
    change = svc.create(
        runbook="chg-test@1.0.0",
        select_expr=SWITCH,
        requester="alice",
        title="with a secret",
        params={"vlan_id": 42, "community": {"env": "CHG_COMMUNITY"}},
    )
    assert change.parameters["community"] == {"env": "CHG_COMMUNITY"}
    svc.submit(change.id, "alice")
    svc.assess(change.id, "bob", predict=False)
    svc.approve(change.id, "bob")
    db = read_bytes_elsewhere(svc.ws.state_dir / "opskit.db")
    assert b"s3cret-community-value" not in db
    with pytest.raises(RunbookError, match="must be a secret reference"):
        svc.create(
            runbook="chg-test@1.0.0",
            select_expr=SWITCH,
            requester="alice",
            title="plain secret",
            params={"vlan_id": 42, "community": "plain-value"},
        )


# -- signed approvals ------------------------------------------------------------------
def test_signed_approvals(svc: ChangeService, tmp_path: Path) -> None:
    bob_private, bob_public = generate_keypair()
    other_private, _ = generate_keypair()
    write_policy(svc.ws, signed=True, bob_key=bob_public)
    change_id = assessed(svc)
    document = svc.get(change_id).binding_document()
    with pytest.raises(ChangeRefused, match="requires signed approvals"):
        svc.approve(change_id, "bob")
    from opskit.changes.signing import load_private_key

    (tmp_path / "other.key").write_text(other_private)
    (tmp_path / "bob.key").write_text(bob_private)
    forged = sign_document(load_private_key(tmp_path / "other.key"), document)
    with pytest.raises(ChangeRefused, match="signature does not verify with bob's key"):
        svc.approve(change_id, "bob", signature=forged)
    good = sign_document(load_private_key(tmp_path / "bob.key"), document)
    assert svc.approve(change_id, "bob", signature=good).state is State.APPROVED
    assert svc.apply_blockers(svc.get(change_id), "alice") == []

    report = verify_approvals(svc.context.ledger, change_id, svc.context.policy)
    assert report["ok"], report
    assert report["approvals"][0]["signature_valid"] is True
    # An auditor's policy with a different key for bob does not accept it.
    _, stranger = generate_keypair()
    write_policy(svc.ws, signed=True, bob_key=stranger)
    report = verify_approvals(svc.context.ledger, change_id, svc.context.policy)
    assert not report["ok"]
    assert any("signature does not verify" in p for p in report["problems"])


# -- ids across processes ----------------------------------------------------------------
@pytest.mark.slow
def test_change_ids_are_unique_across_concurrent_processes(svc: ChangeService) -> None:
    script = (
        "import sys\n"
        "from opskit.workspace import Workspace\n"
        "from opskit.changes import ChangeService\n"
        "svc = ChangeService(Workspace.open(sys.argv[1]))\n"
        "for i in range(6):\n"
        "    c = svc.create(runbook='chg-test@1.0.0', select_expr='lab-sw01', requester='alice',"
        " title=f'p{i}', params={'vlan_id': 42})\n"
        "    print(c.id)\n"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(svc.ws.root)], stdout=subprocess.PIPE, text=True
        )
        for _ in range(3)
    ]
    ids = []
    for proc in procs:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0
        ids += out.split()
    assert len(ids) == 18 and len(set(ids)) == 18
    assert svc.context.ledger.verify().ok
    assert len(svc.list()) == 18


# -- the CLI ---------------------------------------------------------------------------------
@pytest.mark.slow
def test_cli_walks_the_process_and_refuses_with_exit_1(svc: ChangeService) -> None:
    ws = svc.ws
    out = run_cli(
        ws,
        "create",
        "--runbook", "chg-test@1.0.0",
        "--select", SWITCH,
        "--param", "vlan_id=42",
        "--title", "VLAN 42",
        "--ticket", "INC-7",
        "--json",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    change_id = json.loads(out.stdout)["id"]
    assert run_cli(ws, "submit", change_id).returncode == 0
    out = run_cli(ws, "assess", change_id, "--no-predict", user="bob")
    assert out.returncode == 0, out.stderr
    assert "blast_radius" in out.stdout and "change_manager" in out.stdout
    out = run_cli(ws, "approve", change_id, user="erin")
    assert out.returncode == 1 and "erin is not a change_manager" in out.stderr
    assert "Traceback" not in out.stderr
    assert run_cli(ws, "approve", change_id, user="bob").returncode == 0
    out = run_cli(ws, "apply", change_id, "--json", user="erin")
    assert out.returncode == 1 and "erin is not an implementer" in out.stderr
    shown = json.loads(run_cli(ws, "show", change_id, "--json").stdout)
    assert shown["state"] == "approved" and shown["tickets"] == ["INC-7"]
    listed = json.loads(run_cli(ws, "list", "--state", "approved", "--json").stdout)
    assert [c["id"] for c in listed] == [change_id]
    out = run_cli(ws, "approve", "CHG-999999", user="bob")
    assert out.returncode == 1 and "no change 'CHG-999999'" in out.stderr


def test_policy_helpers_load_with_the_default_policy(tmp_path: Path) -> None:
    from opskit.policy import DEFAULT_POLICY_YAML, people_with

    path = tmp_path / "opskit.yaml"
    path.write_text(DEFAULT_POLICY_YAML)
    policy = load_policy(path)
    assert open_window(policy, datetime.now(UTC)) is None  # no windows: any time
    assert people_with(policy, ["cab"]) == ["bob", "carol"]


# -- PostgreSQL -------------------------------------------------------------------------
@pytest.mark.postgres
def test_the_process_and_locks_on_postgresql(workspace: Workspace, postgres_db: str) -> None:
    ws = Workspace(root=workspace.root, db_url_override=postgres_db)
    write_policy(ws)
    write_runbooks(ws)
    svc = ChangeService(ws)
    first = assessed(svc)
    second = assessed(svc, select=f"{SWITCH} or {OTHER_SWITCH}")
    assert (first, second) == ("CHG-000001", "CHG-000002")
    svc.approve(first, "bob")
    svc.approve(second, "bob")
    svc.context.store.acquire_locks(svc.get(first))
    with pytest.raises(ChangeRefused, match=f"{SWITCH} \\({first}\\)"):
        svc.apply(second, "alice")
    assert svc.context.store.locks_held_by_others(svc.get(second)) == {SWITCH: first}
    svc.context.store.release_locks(first)
    assert [c.state for c in svc.list("approved")] == [State.APPROVED, State.APPROVED]
    assert kinds(svc, second)[-1] == "change.refused"
    assert svc.context.ledger.verify().ok
    check_host_index(svc, first)
    ws.close()


def check_host_index(svc: ChangeService, change_id: str) -> None:
    """set_hosts: many hosts in one statement, and a row made for a host that has none."""
    svc.context.store.init_hosts(change_id, [["a", "b"]])
    svc.context.store.set_hosts(
        change_id,
        [("a", "ok", {"config_hash": "sha256:1"}), ("b", "failed", None), ("c", "skipped", None)],
    )
    hosts = svc.get(change_id).hosts
    assert {name: h["status"] for name, h in hosts.items()} == {
        "a": "ok",
        "b": "failed",
        "c": "skipped",
    }
    assert hosts["a"]["detail"] == {"config_hash": "sha256:1"}


def test_host_index_rows_are_written_together(svc: ChangeService) -> None:
    check_host_index(svc, assessed(svc))


@pytest.mark.slow
def test_cli_keygen_sign_and_approve_with_signature(svc: ChangeService, tmp_path: Path) -> None:
    key = tmp_path / "bob.key"
    out = run_cli(svc.ws, "keygen", "--out", str(key), user="bob")
    assert out.returncode == 0, out.stderr
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    write_policy(svc.ws, signed=True, bob_key=out.stdout.strip())
    change_id = assessed(svc)
    signature = run_cli(svc.ws, "sign", change_id, "--key", str(key), user="bob").stdout.strip()
    refused = run_cli(svc.ws, "approve", change_id, "--signature", signature[::-1], user="bob")
    assert refused.returncode == 1 and "signature does not verify" in refused.stderr
    approved = run_cli(svc.ws, "approve", change_id, "--signature", signature, user="bob")
    assert approved.returncode == 0, approved.stderr
    assert svc.get(change_id).state is State.APPROVED
    audit = run_cli(svc.ws, "verify-approvals", change_id, user="erin")
    assert audit.returncode == 0 and "signature valid" in audit.stdout


def test_group_commit_appends_from_many_threads(svc: ChangeService) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from opskit.errors import SecretError

    REDACTOR.register("group-commit-secret")
    before = svc.context.ledger.head()[0]
    journal = svc.context.journal
    with journal.group_commit(), ThreadPoolExecutor(16) as threads:

        def append(i: int) -> int:
            return journal.record("test.step", actor="alice", change_id=None, payload={"i": i}).seq

        seqs = list(threads.map(append, range(64)))
        # A refused event fails alone; the events committed with it stand.
        with pytest.raises(SecretError):
            assert journal.group_writer is not None
            journal.group_writer.append(
                "test.step", actor="alice", payload={"x": "group-commit-secret"}
            )
    assert sorted(seqs) == list(range(before + 1, before + 65))
    assert [e.payload["i"] for e in svc.context.ledger.events(kind="test.step")] == sorted(
        range(64), key=lambda i: seqs[i]
    )
    assert svc.context.ledger.verify().ok


class _OvertakingJournal(Journal):
    """Fault injection: while `by_state` is set, another actor moves the
    change to it after this one's check of the state and before its update
    (a race a test cannot time otherwise). The move happens in the
    transition's own transaction."""

    by_state: State | None = None

    def state_update(self, change, columns, rows=()):  # type: ignore[no-untyped-def]
        guard = super().state_update(change, columns, rows)
        by_state = self.by_state
        if by_state is None:
            return guard

        def overtaken(batch) -> None:  # type: ignore[no-untyped-def]
            batch.cursor.execute(
                batch.ledger.sql("UPDATE changes SET state = ? WHERE id = ?"),
                (by_state.value, change.id),
            )
            guard(batch)

        return overtaken


def _overtaken(svc: ChangeService, by_state: State) -> ChangeService:
    """A service on `svc`'s workspace whose transitions are overtaken by a
    move to `by_state` (see `_OvertakingJournal`)."""
    journal = _OvertakingJournal(svc.ws)
    journal.by_state = by_state
    return ChangeService(svc.ws, journal=journal)


def test_a_transition_overtaken_by_another_actor_records_nothing(svc: ChangeService) -> None:
    change_id = new_change(svc)
    head = svc.context.ledger.head()
    overtaken = _overtaken(svc, State.SUBMITTED)
    with pytest.raises(ChangeError, match="changed by someone else meanwhile"):
        overtaken.submit(change_id, "alice")
    # Neither the event nor any update of the row: the transaction rolled back whole.
    assert svc.context.ledger.head() == head
    assert kinds(svc, change_id) == ["change.created"]
    assert svc.get(change_id).state is State.DRAFT
    assert svc.context.ledger.verify().ok


def test_a_refused_transition_event_leaves_the_state_as_it_was(svc: ChangeService) -> None:
    from opskit.errors import LedgerError

    change_id = new_change(svc)
    with pytest.raises(LedgerError, match="U\\+0000"):  # the ledger cannot store it
        svc.context.journal.transition(
            svc.get(change_id), State.SUBMITTED, actor="alice", payload={"note": "a\x00b"}
        )
    assert svc.get(change_id).state is State.DRAFT
    assert kinds(svc, change_id) == ["change.created"]


def test_an_approval_whose_row_cannot_be_written_is_not_recorded(svc: ChangeService) -> None:
    """The approval row and its event share a transaction: when the row fails
    (injected: a foreign key to no change), the event is not recorded either."""
    from opskit.errors import LedgerError

    change_id = assessed(svc)
    head = svc.context.ledger.head()

    class BrokenApprovalRows(Journal):
        def guard(self, *steps):  # type: ignore[no-untyped-def]
            return super().guard(*(_to_nowhere(statement, refusal) for statement, refusal in steps))

    def _to_nowhere(statement, refusal):  # type: ignore[no-untyped-def]
        if getattr(statement, "table", None) is change_store.approvals:
            statement = statement.values(change_id="CHG-NOWHERE")
        return statement, refusal

    broken = ChangeService(svc.ws, journal=BrokenApprovalRows(svc.ws))
    with pytest.raises(LedgerError, match="write failed"):
        broken.approve(change_id, "bob")
    assert svc.context.ledger.head() == head
    change = svc.get(change_id)
    assert change.state is State.ASSESSED and change.approvals == []
    svc.approve(change_id, "bob")  # and the real one goes through
    assert kinds(svc, change_id)[-2:] == ["change.approval", "change.approved"]
    assert [a["approver"] for a in svc.get(change_id).approvals] == ["bob"]


def test_in_a_group_commit_an_overtaken_transition_fails_alone(svc: ChangeService) -> None:
    first, second = new_change(svc), new_change(svc)
    overtaken = _overtaken(svc, State.SUBMITTED)
    journal = overtaken.context.journal
    assert isinstance(journal, _OvertakingJournal)
    with journal.group_commit():
        # Queued without waiting: it lingers and joins the next awaited commit.
        queued = journal.record_later("test.step", actor="alice", change_id=first, payload={"n": 1})
        with pytest.raises(ChangeError, match="changed by someone else meanwhile"):
            overtaken.submit(second, "alice")
        journal.by_state = None  # the real update again
        overtaken.submit(first, "alice")
        assert queued().payload["n"] == 1  # and its change_link (ledger format 2)
    assert kinds(svc, first) == ["change.created", "test.step", "change.submitted"]
    assert kinds(svc, second) == ["change.created"]
    assert svc.get(second).state is State.DRAFT  # the injected move was undone with it
    assert svc.get(first).state is State.SUBMITTED
    assert svc.context.ledger.verify().ok


def test_racing_actors_record_each_transition_once(svc: ChangeService) -> None:
    """Two processes' worth of services (separate engines) submit the same
    changes at the same moment: one wins each, and only its event is recorded."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    changes = [new_change(svc) for _ in range(6)]
    services = [ChangeService(Workspace(root=svc.ws.root)) for _ in range(2)]
    barrier = threading.Barrier(2)

    def submit(pair: tuple[ChangeService, str]) -> str:
        other, change_id = pair
        barrier.wait()
        try:
            other.submit(change_id, "alice")
        except ChangeError:
            return "lost"
        return "won"

    with ThreadPoolExecutor(2) as threads:
        for change_id in changes:
            outcomes = list(threads.map(submit, [(s, change_id) for s in services]))
            assert sorted(outcomes) == ["lost", "won"], change_id
            # The loser either lost the race itself (nothing recorded) or
            # read the change after the winner's commit: a state refusal, recorded.
            recorded = kinds(svc, change_id)
            assert [k for k in recorded if k != "change.refused"] == [
                "change.created",
                "change.submitted",
            ]
            assert recorded.count("change.refused") <= 1
    for other in services:
        other.ws.close()
    assert svc.context.ledger.verify().ok


@pytest.mark.slow
def test_cli_errors_are_one_line_and_change_nothing(svc: ChangeService) -> None:
    ws = svc.ws
    change_id = assessed(svc)
    create = ["create", "--runbook", "chg-test@1.0.0", "--title", "t"]
    cases = [
        ([*create, "--select", "no-such-ci", "--param", "vlan_id=42"], "alice", "unknown CI"),
        ([*create, "--select", "((", "--param", "vlan_id=42"], "alice", "selection '(('"),
        ([*create, "--select", SWITCH, "--param", "vlan_id=x"], "alice", "is not of type"),
        ([*create, "--select", SWITCH, "--param", "vlan_id=42"], "nobody", "not a requester"),
        (["create", "--runbook", "chg-test@9.9.9", "--select", SWITCH, "--title", "t"], "alice",
         "no version '9.9.9'"),
        (["close", change_id, "--review", "x"], "alice", "cannot go from assessed to closed"),
        (["apply", change_id], "alice", "apply refused: it is assessed, not approved"),
        (["show", "CHG-999999"], "alice", "no change 'CHG-999999'"),
        (["verify-approvals", "CHG-999999"], "erin", "no ledger events for change 'CHG-999999'"),
        (["keygen", "--out", str(ws.root / "no" / "such" / "k.key")], "bob",
         "cannot write the key (No such file or directory)"),
    ]  # fmt: skip
    for args, user, message in cases:
        out = run_cli(ws, *args, user=user)
        assert out.returncode == 1, (args, out.stderr)
        # Exactly one line: no traceback, and no progress bar before a refused apply.
        assert out.stderr.count("\n") == 1 and message in out.stderr, (args, out.stderr)
    assert [c.id for c in svc.list()] == [change_id]
    assert svc.get(change_id).state is State.ASSESSED
    assert svc.context.ledger.verify().ok


def test_cli_prints_brackets_in_user_text_literally(svc: ChangeService) -> None:
    """A title or reason like `[/x]` is text: rich must neither parse nor drop it."""
    title = "[/x] fix [bold]uplink"
    out = run_cli(
        svc.ws, "create", "--runbook", "chg-test@1.0.0", "--select", SWITCH,
        "--param", "vlan_id=42", "--title", title,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    change_id = out.stdout.split()[0]
    for args in (("list",), ("show", change_id)):
        shown = run_cli(svc.ws, *args)
        assert shown.returncode == 0, shown.stderr
        assert title in shown.stdout
