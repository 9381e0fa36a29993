"""Four-eyes in the quorum: the requester's own role never counts towards
the approvals a change needs, so a change whose quorum only the requester
could complete is refused at assessment (with the reason, recorded), not
left waiting for an approval that can never come."""

from __future__ import annotations

import pytest

from opskit.changes import ChangeService
from opskit.errors import ChangeRefused
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
    svc = ChangeService(Workspace.open(workspace.root))
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
