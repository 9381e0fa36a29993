"""The reports part of `make demo` on a lab workspace with a rolled-back change."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from opskit.changes import ChangeService
from opskit.compliance.runs import RUN_KIND
from opskit.demo.reports import write_demo_reports
from opskit.ledger import Ledger
from tests.audit_support import completed_change, lab_workspace, rolled_back_change

pytestmark = [pytest.mark.lab]


def test_the_demo_writes_the_evidence_and_kpi_reports(tmp_path: Path) -> None:
    with lab_workspace(tmp_path / "ws") as ws:
        svc = ChangeService(ws)
        completed = completed_change(svc, "name:lab-sw01", 321)
        rolled = rolled_back_change(svc, "lab-sw02", 322)
        output = StringIO()
        result = write_demo_reports(ws.root, out=Console(file=output, width=200))
        # The workspace ships compliance rules: the completed change re-evaluated
        # the switch it changed (the rolled-back one changed nothing).
        [run] = [
            event
            for event in Ledger.open(ws).events(kind=RUN_KIND)
            if event.payload["trigger"].get("change_id") == completed
        ]
    assert result["change"] == rolled
    names = sorted(path.name for path in result["files"])
    assert names == sorted(
        [
            f"{rolled}-evidence.en.html",
            f"{rolled}-evidence.en.md",
            f"{rolled}-evidence.zh_CN.html",
            f"{rolled}-evidence.zh_CN.md",
            "kpi.en.html",
            "kpi.zh_CN.html",
        ]
    )
    evidence = (ws.root / "reports" / f"{rolled}-evidence.en.md").read_text(encoding="utf-8")
    assert evidence.startswith(f"# Change evidence report: {rolled}")
    # The checkpoint the demo signs covers every record of the evidence.
    assert "not yet covered" not in evidence and "no signed checkpoint" not in evidence
    text = output.getvalue()
    assert str(ws.root / "reports") in text
    assert "Change success rate: 50%" in text and "Rollback rate: 50%" in text
    # The KPI is that run's: per CI, compliant when no feature is non-compliant.
    counts = run.payload["counts"]
    compliance = result["kpi"]["compliance_rate"]
    assert compliance["measured"] is True
    assert (compliance["numerator"], compliance["denominator"]) == (
        counts["compliant"],
        counts["compliant"] + counts["non-compliant"],
    ) and compliance["denominator"] == 1
    assert compliance["value"] == round(100 * run.payload["rate"], 1)
