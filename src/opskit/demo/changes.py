"""The change-process demo (`make demo`): two real changes against the lab.

1. A change from runbook 1 (`vlan-interface`) requested by alice, assessed,
   approved by people other than alice, applied by alice to every lab
   switch, verified.
2. A second change whose verification fails on one switch: the strategy
   (`rollback_all`) rolls every host back, each rollback proven by
   configuration comparison, which the demo shows again from the devices.
3. Both closed with their post-implementation reviews, the ledger verified,
   the approvals re-verified, and where the records are.

`make demo` runs `scripts/demo.py`, which calls `run_demo` between the CMDB
steps and the final `opskit audit verify`, then stops the lab. On its own,
`python -m opskit.demo.changes [WORKSPACE]` runs only this part and leaves
the lab running. It works again when run twice: the lab is reused, change
ids and VLANs are fresh.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from opskit.changes.audit import verify_approvals
from opskit.changes.service import ChangeService
from opskit.hoststate import HostState
from opskit.workspace import Workspace, init_workspace

REPO = Path(__file__).resolve().parents[3]
LAB_INVENTORY = "lab"
INTERFACE = "FastEthernet0/3"

# A site runbook of the demo: rename a VLAN, and verify the name each switch
# reports against the naming plan the requester supplies per switch.
RENAME_RUNBOOK = """\
name: vlan-rename
version: 1.0.0
description: Rename a VLAN on IOS switches; verify each switch against the naming plan.
owner: network-team
risk: low
change_types: [normal, emergency]
targets:
  platforms: [cisco_ios]
parameters:
  type: object
  additionalProperties: false
  required: [vlan_id, vlan_name]
  properties:
    vlan_id: {type: integer, minimum: 2, maximum: 4094}
    vlan_name: {type: string, pattern: "^[A-Za-z0-9_-]{1,32}$"}
    naming_plan:
      type: object
      description: The name each switch must report, where it differs from vlan_name
      default: {}
requires: [get_config, config_lines]
backup: true
apply:
  - name: rename the VLAN
    connector: netmiko
    action: config
    params:
      lines: ["vlan {{ params.vlan_id }}", " name {{ params.vlan_name }}", "exit"]
verify:
  - name: the switch reports the name of the naming plan
    connector: netmiko
    action: get_config
    expect:
      - config_contains:
          - "vlan {{ params.vlan_id }}"
          - " name {{ params.naming_plan.get(ci.name, params.vlan_name) }}"
rollback: auto
strategy:
  canary: 1
  batch: "100%"
  concurrency: 10
  error_budget: {max_failed: 0}
  on_failure: rollback_all
"""


def prepare_workspace(root: Path) -> Workspace:
    """The demo workspace: created once, with the repository's runbooks."""
    ws = Workspace.open(root) if (root / "opskit.yaml").is_file() else init_workspace(root)
    for sub in ("runbooks", "templates", "playbooks"):
        source = REPO / sub
        if source.is_dir():
            shutil.copytree(source, ws.root / sub, dirs_exist_ok=True)
    rename = ws.runbooks_dir / "vlan-rename" / "1.0.0.yaml"
    rename.parent.mkdir(parents=True, exist_ok=True)
    rename.write_text(RENAME_RUNBOOK)
    return ws


def _configs(ws: Workspace, names: list[str]) -> dict[str, str]:
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory import load_workspace_inventory

    inventory = load_workspace_inventory(ws, LAB_INVENTORY)
    result = {}
    with ConnectionPool(len(names)) as pool:
        for name in names:
            with pool.session(inventory.get(name), "netmiko") as conn:
                result[name] = conn.get_config("running")
    return result


def _approve_as_required(svc: ChangeService, change_id: str, out: Console) -> None:
    change = svc.get(change_id)
    required = (change.assessment or {}).get("required") or {}
    out.print(f"  approvals required: {required.get('reason')}", highlight=False)
    for person in required.get("eligible", []):
        if svc.get(change_id).state.value == "approved":
            break
        if person == change.requester:
            continue
        svc.approve(change_id, person, comment="reviewed the plan and the predicted diff")
        out.print(f"  approved by {person}", highlight=False)


def _progress(out: Console) -> Any:
    def show(ci: str, status: str, change_id: str) -> None:
        if status != HostState.RUNNING:
            colour = {HostState.OK: "green", HostState.ROLLED_BACK: "yellow"}.get(status, "red")
            out.print(f"    {ci}: [{colour}]{status}[/{colour}]", highlight=False)

    return show


def run_demo(root: str | Path = "demo-workspace", *, out: Console | None = None) -> dict[str, Any]:
    """Runs the demo; returns the change ids and outcomes. Raises on failure."""
    from opskit.lab import Lab

    out = out or Console()
    started = time.monotonic()
    ws = prepare_workspace(Path(root).resolve())
    out.rule("opskit change demo")
    status = Lab(ws).up(devices=4, linux=0)
    switches = sorted(d.name for d in status.switches)
    note = " (already running)" if status.already_running else ""
    out.print(f"lab: {len(switches)} IOS switches{note}: {', '.join(switches)}", highlight=False)
    svc = ChangeService(ws)
    run_number = len(svc.list()) // 2
    vlan = 200 + run_number % 1800

    # -- change 1: runbook 1 on every lab switch ------------------------------
    out.rule("change 1: VLAN and access port (runbook vlan-interface@1.0.0)")
    first = svc.create(
        runbook="vlan-interface@1.0.0",
        select_expr="platform:cisco_ios",
        requester="alice",
        title=f"VLAN {vlan} for the users of floor 3, port {INTERFACE}",
        params={"vlan_id": vlan, "vlan_name": f"users{vlan}", "interface": INTERFACE},
        tickets=["INC-1042"],
        inventory=LAB_INVENTORY,
    )
    out.print(f"  {first.id} created by alice: {len(first.targets)} targets", highlight=False)
    svc.submit(first.id, "alice")
    assessed = svc.assess(first.id, "bob")
    risk = assessed.risk or {}
    out.print(f"  assessed by bob: risk {risk.get('score')} ({risk.get('level')})", highlight=False)
    for factor in risk.get("factors", []):
        out.print(
            f"    {factor['name']:>22} {factor['points']:>3}  {factor['reason']}", highlight=False
        )
    _approve_as_required(svc, first.id, out)
    out.print("  applying as alice:")
    summary1 = svc.apply(first.id, "alice", progress=_progress(out))
    out.print(f"  {first.id}: [bold]{summary1['state']}[/bold]", highlight=False)
    if summary1["state"] != "completed":
        raise RuntimeError(f"{first.id} did not complete: {summary1.get('cause')}")

    # -- change 2: verification fails on one switch, everything rolled back ---
    out.rule("change 2: rename the VLAN; verification fails on one switch")
    odd_one = switches[len(switches) // 2]
    before = _configs(ws, switches)
    second = svc.create(
        runbook="vlan-rename@1.0.0",
        select_expr="platform:cisco_ios",
        requester="alice",
        title=f"Rename VLAN {vlan} to the new naming standard",
        params={
            "vlan_id": vlan,
            "vlan_name": f"staff{vlan}",
            # The naming plan expects another name on one switch: its check fails there.
            "naming_plan": {odd_one: f"guest{vlan}"},
        },
        tickets=["PRB-77"],
        inventory=LAB_INVENTORY,
    )
    svc.submit(second.id, "alice")
    svc.assess(second.id, "bob")
    _approve_as_required(svc, second.id, out)
    out.print("  applying as alice:")
    summary2 = svc.apply(second.id, "alice", progress=_progress(out))
    out.print(
        f"  {second.id}: [bold]{summary2['state']}[/bold] ({summary2.get('cause')})",
        highlight=False,
    )
    after = _configs(ws, switches)
    for name in switches:
        same = after[name] == before[name]
        out.print(
            f"    {name}: running config after rollback == before the change: {same}",
            highlight=False,
        )
        if not same:
            raise RuntimeError(f"{name}: the rollback did not restore the configuration")
    proofs = [
        e.payload.get("proof") or {}
        for e in svc.context.ledger.events(change_id=second.id, kind="host.rolled_back")
    ]
    out.print(
        f"  ledger proofs: {sum(1 for p in proofs if p.get('equal'))} of {len(proofs)} "
        "rollbacks proven equal to their snapshots",
        highlight=False,
    )

    # -- close both, verify the record -------------------------------------------
    out.rule("closing and auditing")
    svc.close(
        first.id,
        "alice",
        review=f"VLAN {vlan} live on every lab switch; users on {INTERFACE} confirmed",
    )
    svc.close(
        second.id,
        "alice",
        review="rolled back automatically after the naming check failed",
        cause=summary2.get("cause"),
        follow_ups=[f"correct the naming plan for {odd_one}", "resubmit the rename"],
    )
    report = svc.context.ledger.verify()
    approvals = verify_approvals(svc.context.ledger, first.id, svc.context.policy)
    out.print(f"  ledger verify: {'OK' if report.ok else 'FAILED'}", highlight=False)
    out.print(f"  approvals of {first.id} re-verified: {approvals['ok']}", highlight=False)
    if not report.ok or not approvals["ok"]:
        raise RuntimeError("the audit checks failed")
    out.print(f"\nrecords: the ledger and change tables in {ws.db_url}", highlight=False)
    out.print(
        f"  opskit -w {ws.root} change show {first.id}\n"
        f"  opskit -w {ws.root} audit log --change {second.id}\n"
        f"  opskit -w {ws.root} audit verify",
        highlight=False,
    )
    # The caller says when the demo finished and whether the lab still runs:
    # `scripts/demo.py` stops it afterwards.
    return {
        "workspace": str(ws.root),
        "changes": {first.id: summary1["state"], second.id: summary2["state"]},
        "ledger_ok": report.ok,
        "seconds": time.monotonic() - started,
    }


if __name__ == "__main__":
    result = run_demo(sys.argv[1] if len(sys.argv) > 1 else "demo-workspace")
    print(f"\nchange demo finished in {result['seconds']:.1f} s")
    print(f"the lab is still running: opskit -w {result['workspace']} lab down  stops it")
