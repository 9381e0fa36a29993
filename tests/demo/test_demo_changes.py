"""The demo flow (`make demo`) end to end, twice in the same workspace."""

from __future__ import annotations

from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from opskit.demo.changes import run_demo
from opskit.lab import Lab
from opskit.workspace import Workspace

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("changes-demo")]


def test_demo_runs_twice_with_fresh_changes(tmp_path: Path) -> None:
    root = tmp_path / "demo"
    output = StringIO()
    try:
        first = run_demo(root, out=Console(file=output, width=120))
        second = run_demo(root, out=Console(file=output, width=120))
    finally:
        Lab(Workspace.open(root)).down()
    assert list(first["changes"].values()) == ["completed", "rolled_back"]
    assert list(second["changes"].values()) == ["completed", "rolled_back"]
    assert not set(first["changes"]) & set(second["changes"])
    assert first["ledger_ok"] and second["ledger_ok"]
    text = output.getvalue()
    assert "running config after rollback == before the change: False" not in text
    assert text.count("== before the change: True") == 8
    # scripts/demo.py says when the demo finished and stops the lab itself:
    # run_demo neither announces the end nor tells to stop the lab.
    assert "demo finished" not in text and "lab down" not in text
