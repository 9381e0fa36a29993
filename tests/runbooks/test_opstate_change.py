"""A state-guarded change through the whole change process against its own lab
switches: approved, applied, state snapshots in the ledger, the greedy version
rolled back with its proof, and `opskit audit verify` (a real process) passes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit import configdiff
from opskit.changes import ChangeService, State
from opskit.connectors.netmiko import NetmikoConnector
from opskit.hoststate import HostState
from opskit.inventory import load_workspace_inventory
from opskit.lab import Lab
from opskit.workspace import Workspace, init_workspace
from tests.changes_support import write_policy
from tests.runbooks.opstate_support import greedy_version

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
SWITCH = "lab-sw01"
PARAMS = {"vlan_id": 371, "vlan_name": "guarded", "interface": "FastEthernet0/5"}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = init_workspace(tmp_path_factory.mktemp("opstate-change") / "ws")
    for sub in ("runbooks", "templates"):
        shutil.copytree(REPO / sub, workspace.root / sub, dirs_exist_ok=True)
    lab = Lab(workspace)
    lab.up(devices=1, linux=0)
    write_policy(workspace)
    try:
        yield workspace
    finally:
        lab.down()
        workspace.close()


def running(ws: Workspace) -> str:
    with NetmikoConnector(load_workspace_inventory(ws, "lab").get(SWITCH)) as conn:
        return conn.get_config()


def applied_change(svc: ChangeService, runbook: str) -> tuple[str, Any]:
    change = svc.create(
        runbook=runbook,
        select_expr=SWITCH,
        requester="alice",
        title=f"guarded VLAN via {runbook}",
        params=PARAMS,
    )
    svc.submit(change.id, "alice")
    svc.assess(change.id, "bob")
    if svc.approve(change.id, "bob").state is not State.APPROVED:
        svc.approve(change.id, "carol")
    return change.id, svc.apply(change.id, "alice")


def audit_verify(ws: Workspace) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "audit", "verify"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )


def test_a_guarded_change_records_its_state_and_a_greedy_one_is_rolled_back(
    ws: Workspace,
) -> None:
    svc = ChangeService(ws)
    original = running(ws)

    good, summary = applied_change(svc, "vlan-interface-guarded@1.0.0")
    assert svc.get(good).state is State.COMPLETED, summary
    kinds = [e.kind for e in svc.context.ledger.events(change_id=good, ci=SWITCH)]
    assert kinds.index("host.state_before") < kinds.index("host.applied")
    assert kinds.index("host.applied") < kinds.index("host.state_after")
    after = next(svc.context.ledger.events(change_id=good, kind="host.state_after"))
    assert after.payload["unexplained"] == []
    state = json.loads(svc.context.ledger.get_blob(after.blobs["state"]).decode())
    assert state["vlans"]["371"]["name"] == "guarded"
    svc.rollback(good, "alice")
    assert configdiff.equal(original, running(ws), "cisco_ios") == (True, "")

    greedy_version(ws)
    bad, summary = applied_change(svc, "vlan-interface-guarded@1.0.1")
    assert summary["state"] == "rolled_back"
    assert summary["hosts"][SWITCH]["status"] == HostState.ROLLED_BACK
    assert "vlans.372: added" in json.dumps(summary.to_dict())
    failed = next(svc.context.ledger.events(change_id=bad, kind="host.verify_failed"))
    assert "vlans.372: added" in failed.payload["error"]
    rolled = next(svc.context.ledger.events(change_id=bad, kind="host.rolled_back"))
    assert rolled.payload["proof"]["equal"] is True
    assert configdiff.equal(original, running(ws), "cisco_ios") == (True, "")

    verified = audit_verify(ws)
    assert verified.returncode == 0, verified.stdout + verified.stderr
