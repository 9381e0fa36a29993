"""Real changes for the audit tests: a lab of emulated IOS switches in a
workspace of its own (SQLite or PostgreSQL), the chg-test runbook, and
changes run end to end through the public change API."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opskit.changes import ChangeService, State
from opskit.lab import Lab
from opskit.workspace import Workspace, init_workspace
from tests.changes_support import write_policy, write_runbook

REPO = Path(__file__).resolve().parents[1]
OPSKIT = [sys.executable, "-m", "opskit"]


@contextmanager
def lab_workspace(root: Path, *, db: str | None = None, devices: int = 2) -> Iterator[Workspace]:
    """A workspace with its own lab (`devices` switches), the test policy and
    the chg-test runbook (low risk: bob's approval is enough)."""
    ws = init_workspace(root, db=db)
    for sub in ("runbooks", "templates"):
        shutil.copytree(REPO / sub, ws.root / sub, dirs_exist_ok=True)
    lab = Lab(ws, owner_pid=os.getpid())
    lab.up(devices=devices, linux=0)
    try:
        write_policy(ws)
        write_runbook(ws, "1.0.0")
        yield ws
    finally:
        lab.down()
        ws.close()


def approved(
    svc: ChangeService,
    select_expr: str,
    params: dict[str, Any],
    *,
    runbook: str = "chg-test@1.0.0",
    change_type: str = "normal",
) -> str:
    change = svc.create(
        runbook=runbook,
        select_expr=select_expr,
        requester="alice",
        title=f"VLAN {params['vlan_id']}",
        params=params,
        type=change_type,
    )
    svc.submit(change.id, "alice")
    svc.assess(change.id, "bob", predict=False)
    assert svc.approve(change.id, "bob", comment="fine").state is State.APPROVED
    return change.id


def rolled_back_change(svc: ChangeService, switch: str, vlan: int) -> str:
    """A change whose verification fails on `switch`: the host is rolled back
    (proven) and the change ends `rolled_back`."""
    change_id = approved(
        svc, switch, {"vlan_id": vlan, "expect_names": {switch: "not-what-was-configured"}}
    )
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "rolled_back", summary
    return change_id


def completed_change(svc: ChangeService, select_expr: str, vlan: int) -> str:
    """A change applied to every selected switch (the caller rolls it back)."""
    change_id = approved(svc, select_expr, {"vlan_id": vlan})
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "completed", summary
    return change_id


def cli(
    *args: str, ws: Workspace | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """`opskit ARGS` as a user runs it (this checkout's code: PYTHONPATH is kept)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    if ws is not None:
        env["OPSKIT_WORKSPACE"] = str(ws.root)
        env["OPSKIT_USER"] = "alice"
        if ws.db_url_override:
            env["OPSKIT_DB"] = ws.db_url_override
    env["COLUMNS"] = "200"
    return subprocess.run(
        [*OPSKIT, *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )
