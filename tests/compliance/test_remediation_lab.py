"""Remediation is a change, against the lab: the change pushes exactly the
recorded remediation, its author cannot approve it, it is applied and
verified, compliance is evaluated again after it (in the change's summary
and the history), a device that drifted after approval refuses apply, and
a verification that fails is rolled back with proof."""

from __future__ import annotations

import os
from typing import Any

import pytest

from opskit import configdiff
from opskit.backups.linechange import HostLines, create_line_change
from opskit.changes import ChangeService, rollout
from opskit.compliance import State
from opskit.compliance import apart as apart_module
from opskit.compliance.accuracy import cmdb_accuracy
from opskit.compliance.apart import JudgeProcess
from opskit.compliance.history import feature_history
from opskit.compliance.remediate import remediate
from opskit.compliance.runs import run_compliance
from opskit.connectors.netmiko import NetmikoConnector
from opskit.errors import ChangeError, ChangeRefused
from opskit.inventory import load_workspace_inventory
from opskit.inventory.observed import ObservedStore
from opskit.ledger.core import Ledger
from opskit.workspace import Workspace
from tests.compliance.test_runs_lab import make_compliant
from tests.fixtures.lab import LabEnv, running_config

pytestmark = [pytest.mark.lab]

VLAN_10_GONE = ["no vlan 10"]


def _non_compliant_vlans(lab: LabEnv, name: str) -> None:
    make_compliant(lab, name)
    with NetmikoConnector(lab.ci(name)) as conn:
        conn.apply_config(VLAN_10_GONE)
    run = run_compliance(lab.ws, "erin", select=f"name:{name}", inventory="lab")
    assert run.fleet.results[0].feature("vlans").state is State.NON_COMPLIANT


def _spy(started: list[JudgeProcess]) -> type[JudgeProcess]:
    class Spied(JudgeProcess):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    return Spied


def _approved(svc: ChangeService, change_id: str) -> None:
    svc.submit(change_id, "alice")
    svc.assess(change_id, "bob")
    with pytest.raises(ChangeRefused, match="four-eyes"):
        svc.approve(change_id, "alice")  # the author of the remediation
    svc.approve(change_id, "bob")
    assert svc.approve(change_id, "carol").state.value == "approved"


@pytest.mark.parametrize("apart", [False, True], ids=["in-process", "helper-process"])
def test_remediation_end_to_end(lab: LabEnv, apart: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    ci = lab.dedicated_switch
    _non_compliant_vlans(lab, ci.name)
    ledger = Ledger.open(lab.ws)
    latest = run_compliance(lab.ws, "erin", select=f"name:{ci.name}", inventory="lab")
    vlans = latest.fleet.results[0].feature("vlans")
    svc = ChangeService(lab.ws)
    change, _ = remediate(
        svc,
        select=f"name:{ci.name}",
        requester="alice",
        title="VLAN 10 back to the standard",
        features=["vlans"],
        inventory="lab",
    )
    # Exactly the recorded remediation, checked afterwards by what was missing and extra.
    assert change.parameters["lines"] == {ci.name: list(vlans.remediation)}
    assert change.parameters["present"] == {ci.name: list(vlans.missing)}
    assert change.parameters["purpose"]["remediation"]["results"] == {
        ci.name: [latest.result_seqs[ci.name]]
    }
    assert change.type.value == "normal"
    _approved(svc, change.id)
    helpers: list[JudgeProcess] = []
    if apart:
        monkeypatch.setattr(rollout, "JUDGE_APART_FROM_HOSTS", 1)
        monkeypatch.setattr(apart_module, "JudgeProcess", _spy(helpers))
    predicted = svc.get(change.id).predicted_diff[ci.name]
    assert predicted["diff"].rstrip("\n") == configdiff.predict(
        running_config(ci), list(vlans.remediation), "cisco_ios"
    )
    summary = svc.apply(change.id, "alice")
    assert summary["state"] == "completed", summary
    # A helper process judged (or, not ready in time, left the host to this
    # process); either way it was ended and reaped with the rollout.
    assert len(helpers) == int(apart)
    for helper in helpers:
        with pytest.raises(ProcessLookupError):
            os.kill(helper.pid, 0)
    after = summary["compliance"]["hosts"][ci.name]
    assert after["state"] == "compliant"
    assert "feature vlans: non-compliant -> compliant" in after["transitions"]
    # Judged from the configuration the change's verification fetched: no second read.
    after_seq = summary["compliance"]["run_seq"]
    recorded = next(
        e for e in ledger.events(ci=ci.name, kind="compliance.result", after_seq=after_seq)
    )
    assert recorded.payload["origin"] == f"{change.id} verify"
    assert recorded.payload["run"] == after_seq
    moved = feature_history(ledger, ci=ci.name, feature="vlans")[-1]
    assert (moved.before, moved.after, moved.changes) == (
        "non-compliant",
        "compliant",
        (change.id,),
    )
    assert svc.get(change.id).summary["compliance"]["state"] == "compliant"
    assert ledger.verify().ok
    with pytest.raises(ChangeError, match="nothing to remediate"):
        remediate(svc, select=f"name:{ci.name}", requester="alice", title="again", inventory="lab")


def test_a_device_that_drifted_after_approval_refuses_apply(lab: LabEnv) -> None:
    ci = lab.dedicated_switch
    _non_compliant_vlans(lab, ci.name)
    svc = ChangeService(lab.ws)
    change, _ = remediate(
        svc, select=f"name:{ci.name}", requester="alice", title="VLAN 10", inventory="lab"
    )
    _approved(svc, change.id)
    with NetmikoConnector(ci) as conn:  # someone fixes it by hand meanwhile
        conn.apply_config(["vlan 10", " name users", "exit"])
    with pytest.raises(ChangeRefused, match="predicted diff changed"):
        svc.apply(change.id, "alice")
    assert svc.get(change.id).state.value == "approved"


def test_a_failed_verification_is_rolled_back_with_proof(lab: LabEnv) -> None:
    ci = lab.dedicated_switch
    before = running_config(ci)
    svc = ChangeService(lab.ws)
    # The verification asks for a line the push does not make: it must fail.
    plan = HostLines(ci.name, ["vlan 3001", " name pushed", "exit"], present=["vlan 3002"])
    change = create_line_change(
        svc, requester="alice", title="bad plan", plans=[plan], inventory="lab"
    )
    _approved(svc, change.id)
    summary = svc.apply(change.id, "alice")
    assert summary["state"] == "rolled_back"
    assert summary["hosts"][ci.name]["status"] == "rolled_back"
    proofs = [
        e.payload.get("proof")
        for e in svc.context.ledger.events(change_id=change.id, kind="host.rolled_back")
    ]
    assert proofs and proofs[0]["equal"]
    assert configdiff.equal(running_config(ci), before, "cisco_ios")[0]
    assert "compliance" not in summary  # nothing was left modified


def test_cmdb_accuracy(lab: LabEnv) -> None:
    inventory = load_workspace_inventory(lab.ws, "lab")
    store = ObservedStore(lab.ws.engine)
    first, second = lab.switches[0], lab.switches[1]
    store.record_facts(first.name, {"platform": "cisco_ios", **first.attributes}, source="test")
    store.record_facts(second.name, {"platform": "cisco_nxos"}, source="test")
    select = f"name:{first.name} or name:{second.name} or name:{lab.switches[2].name}"
    figures = cmdb_accuracy(inventory, store, select)
    assert figures["observed"] == 2 and figures["unobserved"] == 1
    assert figures["accuracy"] == 0.5 and figures["drifted"] == [second.name]


def test_the_policy_sets_the_type_and_the_features_set_the_risk(lab: LabEnv) -> None:
    ci = lab.dedicated_switch
    _non_compliant_vlans(lab, ci.name)
    policy = lab.ws.policy_path.read_text()
    extra = "\ncompliance:\n  remediation_type: emergency\n  high_risk_features: [vlans]\n"
    lab.ws.policy_path.write_text(policy + extra)
    try:
        svc = ChangeService(Workspace.open(lab.ws.root))
        change, _ = remediate(
            svc, select=f"name:{ci.name}", requester="alice", title="VLAN 10", inventory="lab"
        )
        assert (change.type.value, change.runbook_ref) == ("emergency", "config-lines-high@1.0.0")
        assert change.parameters["purpose"]["high_risk_features"] == ["vlans"]
        svc.submit(change.id, "alice")
        assessed = svc.assess(change.id, "bob", predict=False)
        assert assessed.risk["level"] == "high"
        svc.cancel(change.id, "alice", reason="test")
        second, _ = remediate(
            svc,
            select=f"name:{ci.name}",
            requester="alice",
            title="the type given",
            inventory="lab",
            features=["vlans"],
            change_type="normal",
        )
        assert second.type.value == "normal"
        svc.cancel(second.id, "alice", reason="test")
    finally:
        lab.ws.policy_path.write_text(policy)
