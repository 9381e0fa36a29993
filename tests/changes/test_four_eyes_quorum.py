"""Four-eyes in the quorum: the requester's own role never counts towards
the approvals a change needs. A policy whose quorum only a requester could
complete is refused when it is loaded (tests/test_policy_errors.py); should
one reach the engine anyway, the change is refused at assessment (with the
reason, recorded), not left waiting for an approval that can never come."""

from __future__ import annotations

import pytest
import yaml

from opskit.changes import ChangeService
from opskit.errors import ChangeRefused, PolicyError
from opskit.policy import Policy
from opskit.workspace import Workspace

POLICY = """\
version: 1
inventory: example
people:
  alice: {roles: [requester, implementer]}
  bob: {roles: [cab, change_manager]}
  carol: {roles: [cab, requester]}
  dave: {roles: [governance]}
approvals:
  low: {roles: [change_manager], count: 1}
  medium: {roles: [cab], count: 2}
  high: {roles: [cab], count: 2}
"""


def _change(svc: ChangeService, requester: str) -> str:
    change = svc.create(
        runbook="vlan-interface@1.0.0",
        select_expr="platform:cisco_ios",
        requester=requester,
        title="VLAN 300",
        params={"vlan_id": 300, "vlan_name": "users", "interface": "FastEthernet0/3"},
    )
    svc.submit(change.id, requester)
    return change.id


def test_a_quorum_only_the_requester_could_complete_is_refused(workspace: Workspace) -> None:
    workspace.policy_path.write_text(POLICY)
    with pytest.raises(PolicyError, match=r"other than the requester carol"):
        _ = Workspace.open(workspace.root).policy
    # The load-time check stops such a file; the engine's own rule is the last
    # line: hand it the policy without the check (no file can do that now).
    ws = Workspace.open(workspace.root)
    ws.__dict__["policy"] = Policy.model_validate(yaml.safe_load(POLICY))
    svc = ChangeService(ws)
    change_id = _change(svc, "carol")  # carol is one of the only two CAB members
    with pytest.raises(ChangeRefused, match=r"other than the requester carol.*\bbob\b"):
        svc.assess(change_id, "bob", predict=False)
    refused = list(svc.context.ledger.events(change_id=change_id, kind="change.refused"))
    assert refused and "four-eyes" in refused[-1].payload["reason"]
    assert svc.get(change_id).state.value == "submitted"


def test_the_requester_is_never_listed_as_eligible(workspace: Workspace) -> None:
    workspace.policy_path.write_text(
        POLICY.replace(
            "carol: {roles: [cab, requester]}",
            "carol: {roles: [cab, requester]}\n  erin: {roles: [cab]}",
        )
    )
    svc = ChangeService(Workspace.open(workspace.root))
    change_id = _change(svc, "carol")
    assessed = svc.assess(change_id, "bob", predict=False)
    required = assessed.assessment["required"]
    assert required["count"] == 2 and "carol" not in required["eligible"]
    assert sorted(required["eligible"]) == ["bob", "erin"]
