"""The compliance demo (`make demo`'s part 4) against a fresh lab: the lab is
non-compliant, the remediation change is approved by others than its
author and applied, and the history shows the features going
non-compliant -> compliant because of it."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from opskit.demo.compliance import run_demo
from opskit.lab import Lab
from opskit.ledger.core import Ledger
from opskit.workspace import init_workspace

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("compliance-demo")]


def test_compliance_demo(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "demo")
    lab = Lab(ws)
    output = StringIO()
    try:
        lab.up(devices=2, linux=0)
        result = run_demo(ws.root, out=Console(file=output, width=200, soft_wrap=True))
    finally:
        lab.down()
    text = output.getvalue()
    assert result["state"] == "completed" and result["compliant_after"]
    assert "vlans" in result["features"] and result["transitions"] == 2
    assert "approve refused: alice requested this change (four-eyes)" in text
    assert "feature vlans: non-compliant -> compliant" in text
    assert "+vlan 10" in text  # the backup diff shows what the remediation did
    events = list(Ledger.open(ws).events(change_id=result["change"], kind="change.approval"))
    assert sorted(e.actor for e in events) == ["bob", "carol"]
    assert Ledger.open(ws).verify().ok
