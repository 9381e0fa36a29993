"""`inventory drift` never says "no drift" when nothing was observed."""

from __future__ import annotations

import subprocess
import sys

from opskit.inventory import load_workspace_inventory
from opskit.inventory.observed import ObservedStore, drift_report
from opskit.workspace import Workspace


def drift_cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "inventory", "drift", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_nothing_observed_is_not_no_drift(workspace: Workspace) -> None:
    result = drift_cli(workspace)
    assert result.returncode == 0, result.stderr
    assert "no drift" not in result.stdout
    assert result.stdout.strip().startswith(
        "no observation recorded for any of the 15 selected CI(s), so drift cannot be checked:"
    )
    assert "action: facts" in result.stdout  # says how facts get recorded


def test_no_drift_names_what_was_compared(workspace: Workspace) -> None:
    inventory = load_workspace_inventory(workspace)
    ci = inventory.get("core-sw1")
    store = ObservedStore(workspace.engine)
    store.record_facts(
        ci.name, {**ci.attributes, "platform": ci.platform, "host": ci.host}, "napalm"
    )
    report = drift_report(inventory, store)
    assert report.items == []
    assert report.observed == ("core-sw1",)
    assert len(report.unobserved) == 14
    result = drift_cli(workspace)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "no drift on the 1 observed CI(s): declared state matches the latest observations;"
        " 14 selected CI(s) never observed (not compared)"
    )
    result = drift_cli(workspace, "--select", "core-sw1")
    assert result.stdout.strip() == (
        "no drift on the 1 observed CI(s): declared state matches the latest observations"
    )
