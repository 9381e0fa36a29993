"""The compliance demo (`make demo`): backups, a compliance run, a remediation
change, and the history, against the lab the change demo leaves running.

1. `opskit backup run` of every lab switch (the change demo's pre-change
   snapshots are already in the same history: `opskit backup list`).
2. `opskit compliance run` on the lab: the shipped rules (compliance/) and
   intended configuration (templates/intended/cisco_ios.j2) want VLAN 10
   "users" on every switch, which the lab's switches do not have, and no
   VLAN or port setting the CMDB does not declare, which the change demo
   just made: features ``vlans`` and ``interfaces`` are non-compliant.
3. `opskit compliance remediate`: a normal change by alice whose lines are
   the recorded remediation; alice may not approve it (four-eyes, refused
   and recorded), bob and carol approve, alice applies it; compliance is
   evaluated again after the change and its summary shows each feature
   going non-compliant -> compliant.
4. `opskit compliance history` (the transitions and their cause) and
   `opskit backup diff` (what the remediation changed, from two backups).

`scripts/demo.py` calls `run_demo` after the change demo. On its own,
`python -m opskit.demo.compliance [WORKSPACE]` runs this part against a
running lab (`opskit lab up`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from opskit.changes.service import ChangeService
from opskit.errors import ChangeRefused
from opskit.workspace import Workspace

REPO = Path(__file__).resolve().parents[3]
LAB_INVENTORY = "lab"
SELECT = "platform:cisco_ios"


def _cli(ws: Workspace, out: Console, *args: str, user: str = "alice") -> int:
    """Runs the real `opskit` command and shows it; its exit code."""
    out.print(f"\n$ opskit {' '.join(args)}", highlight=False)
    out.file.flush()
    command = [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "--as", user, *args]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # tables one row a line
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    out.print(done.stdout.rstrip("\n"), highlight=False, markup=False, soft_wrap=True)
    if done.stderr.strip():
        out.print(done.stderr.rstrip("\n"), highlight=False, markup=False, soft_wrap=True)
    return done.returncode


def prepare(root: Path) -> Workspace:
    """The workspace with the repository's rules and intended templates."""
    ws = Workspace.open(root)
    for sub in ("compliance", "templates", "runbooks"):
        source = REPO / sub
        if source.is_dir():
            shutil.copytree(source, ws.root / sub, dirs_exist_ok=True)
    return ws


def _approve(svc: ChangeService, change_id: str, out: Console) -> None:
    try:
        svc.approve(change_id, "alice")
    except ChangeRefused as refused:
        out.print(f"  alice tries to approve her own remediation: {refused}", highlight=False)
    for person in ("bob", "carol"):
        if svc.get(change_id).state.value != "approved":
            svc.approve(change_id, person, comment="the lines are the recorded remediation")
            out.print(f"  approved by {person}", highlight=False)


def run_demo(root: str | Path = "demo-workspace", *, out: Console | None = None) -> dict[str, Any]:
    """Runs the compliance demo against a running lab; raises on failure."""
    from opskit.compliance.history import feature_history
    from opskit.compliance.remediate import remediate

    out = out or Console(soft_wrap=True)
    started = time.monotonic()
    ws = prepare(Path(root).resolve())
    out.rule("compliance: backups, a run, a remediation change, the history")
    _cli(ws, out, "backup", "run", "--inventory", LAB_INVENTORY, "--select", SELECT)
    code = _cli(ws, out, "compliance", "run", "--inventory", LAB_INVENTORY, "--select", SELECT)
    if code != 1:
        raise RuntimeError("the lab was expected to be non-compliant (exit 1)")

    svc = ChangeService(ws)
    change, plan = remediate(
        svc,
        select=SELECT,
        requester="alice",
        title="Lab switches back to the standard (compliance remediation)",
        inventory=LAB_INVENTORY,
    )
    touched = sorted({f for names in plan.features.values() for f in names})
    out.print(
        f"\n{change.id} created by alice: remediation of {', '.join(touched)} "
        f"on {len(plan.hosts)} switch(es), runbook {change.runbook_ref}",
        highlight=False,
    )
    svc.submit(change.id, "alice")
    assessed = svc.assess(change.id, "bob")
    out.print(
        f"  assessed by bob: risk {(assessed.risk or {}).get('level')}; "
        f"{((assessed.assessment or {}).get('required') or {}).get('reason')}",
        highlight=False,
    )
    _approve(svc, change.id, out)
    summary = svc.apply(change.id, "alice")
    out.print(f"  applied by alice: {summary['state']}", highlight=False)
    if summary["state"] != "completed":
        raise RuntimeError(f"{change.id} did not complete: {summary.get('cause')}")
    after = summary.get("compliance") or {}
    for host, entry in sorted((after.get("hosts") or {}).items()):
        moves = "; ".join(entry["transitions"]) or "no change"
        out.print(f"    {host}: {entry['state']} ({moves})", highlight=False)
    if after.get("state") != "compliant":
        raise RuntimeError(f"compliance after {change.id}: {after}")
    svc.close(change.id, "alice", review="lab switches compliant again; history shows it")

    _cli(ws, out, "compliance", "history", "--feature", "vlans")
    first = sorted(plan.hosts, key=lambda h: h.ci)[0].ci
    _cli(ws, out, "backup", "run", "--inventory", LAB_INVENTORY, "--select", f"name:{first}")
    _cli(ws, out, "backup", "diff", first)
    moved = [
        t
        for t in feature_history(svc.context.ledger, feature="vlans")
        if t.after == "compliant" and change.id in t.changes
    ]
    return {
        "change": change.id,
        "state": summary["state"],
        "features": touched,
        "compliant_after": after.get("state") == "compliant",
        "transitions": len(moved),
        "seconds": time.monotonic() - started,
    }


if __name__ == "__main__":
    result = run_demo(sys.argv[1] if len(sys.argv) > 1 else "demo-workspace")
    print(f"\ncompliance demo finished in {result['seconds']:.1f} s")
