"""One lab workspace for the report tests: real changes on emulated IOS
switches (one completed, one rolled back with proof, one later change that
names an incident on the first one's switch), a signed checkpoint and a
recorded inspection. It has no compliance rules, so nothing measured
compliance. Built once for the package; tests only read it (a test that
writes copies it first)."""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from opskit.changes import ChangeService
from opskit.ledger import Ledger
from opskit.workspace import Workspace
from tests.audit_support import approved, lab_workspace, rolled_back_change

CANARY_ENV = "OPSKIT_REPORT_CANARY"


@dataclass
class Reported:
    ws: Workspace
    completed: str
    rolled_back: str
    incident: str
    canaries: list[str]
    inspection_seq: int


@pytest.fixture(scope="package")
def reported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    from opskit.reports import run_recorded_inspection

    canary = f"canary-{secrets.token_hex(8)}"
    os.environ[CANARY_ENV] = canary
    root = tmp_path_factory.mktemp("reports") / "ws"
    try:
        with lab_workspace(root) as ws:
            # No compliance rules: no change re-evaluates compliance, so the
            # shared ledger shows the "not yet measured" path; a test that
            # measures compliance puts the rules back in its own copy.
            shutil.rmtree(ws.compliance_dir)
            svc = ChangeService(ws)
            done = approved(
                svc, "name:lab-sw01", {"vlan_id": 311, "community": {"env": CANARY_ENV}}
            )
            assert svc.apply(done, "alice")["state"] == "completed"
            svc.close(done, "alice", review="VLAN 311 live; 配置已确认")
            rolled = rolled_back_change(svc, "lab-sw02", 312)
            svc.close(rolled, "alice", review="rolled back", cause="naming plan wrong")
            later = svc.create(
                runbook="chg-test@1.0.0",
                select_expr="name:lab-sw01",
                requester="alice",
                title="Fix after the outage",
                params={"vlan_id": 313},
                tickets=["INC-4711"],
            )
            Ledger.open(ws).checkpoint(actor="erin")
            inspection = run_recorded_inspection(ws, "alice", select="platform:cisco_ios")
            switch = _lab_device_secrets(ws)
            yield Reported(ws, done, rolled, later.id, [canary, *switch], inspection.seq)
    finally:
        os.environ.pop(CANARY_ENV, None)


def _lab_device_secrets(ws: Workspace) -> list[str]:
    """The lab switches' password and enable secret: every change logs in with them."""
    from opskit.inventory import load_workspace_inventory
    from opskit.secrets import SecretRef

    ci = load_workspace_inventory(ws, "lab").get("lab-sw01")
    values = []
    for key in ("password", "secret"):
        ref = ci.credentials.get(key)
        if isinstance(ref, SecretRef):
            values.append(ref.resolve())
    assert values, "the lab switch has no secret credentials to look for"
    return values


def artifacts_dir() -> Path:
    """Where screenshots and rendered reports are kept (git-ignored)."""
    folder = Path(__file__).resolve().parents[1] / "artifacts" / "reports"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
