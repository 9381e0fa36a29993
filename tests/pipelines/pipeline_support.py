"""A workspace on the running lab for the pipeline tests, and `opskit` as a
real process in it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from opskit.runbooks import RunbookCatalog
from opskit.workspace import Workspace, init_workspace
from tests.changes_support import write_policy, write_runbooks
from tests.fixtures.workspace import REPO


def lab_workspace(lab: Any, root: Path) -> Workspace:
    """A workspace on the running lab: the shipped runbooks, the lab
    inventory, the test policy and runbook (chg-test@1.0.0 pre-approved)."""
    ws = init_workspace(root)
    for sub in ("runbooks", "playbooks", "templates"):
        shutil.copytree(REPO / sub, ws.root / sub, dirs_exist_ok=True)
    shutil.copytree(lab.inventory_path, ws.inventories_dir / "lab", dirs_exist_ok=True)
    (ws.root / ".opskit").mkdir(exist_ok=True)
    (ws.root / ".opskit" / "lab").symlink_to(lab.ws.root / ".opskit" / "lab")
    write_runbooks(ws)
    digest = RunbookCatalog(ws).get("chg-test@1.0.0").digest
    write_policy(
        ws,
        extra=f"standard_changes:\n  - {{runbook: chg-test, version: 1.0.0, digest: '{digest}'}}\n",
    )
    return ws


def opskit(
    ws: Workspace, *args: str, user: str = "alice", env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "--as", user, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
