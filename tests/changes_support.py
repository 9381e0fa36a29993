"""Shared set-up for the change-engine tests: a policy with known people and
a small test runbook in three risk levels, written into a real workspace."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

from opskit.workspace import Workspace, init_workspace

REPO = Path(__file__).resolve().parents[1]

POLICY = """\
version: 1
inventory: {inventory}
people:
  alice: {{roles: [requester, implementer]}}
  bob: {{roles: [change_manager, cab]{bob_key}}}
  carol: {{roles: [cab]}}
  dave: {{roles: [governance]}}
  erin: {{roles: [auditor]}}
  mallory: {{roles: [requester, change_manager]}}
  gary: {{roles: [governance, implementer]}}
  ci-bot: {{roles: [requester, implementer]}}
approvals:
  low: {{roles: [change_manager], count: 1}}
  medium: {{roles: [cab], count: 2}}
  high: {{roles: [governance], count: 1}}
  emergency:
    roles: [change_manager]
    count: 1
    retrospective: {{roles: [cab], count: 1}}
require_signed_approvals: {signed}
{extra}
"""

RUNBOOK = """\
name: chg-test
version: {version}
description: Test runbook of the change engine (a VLAN on IOS).
owner: change-team
risk: {risk}
change_types: [standard, normal, emergency]
standard: true
targets:
  platforms: [cisco_ios]
parameters:
  type: object
  additionalProperties: false
  required: [vlan_id]
  properties:
    vlan_id: {{type: integer, minimum: 2, maximum: 4094}}
    vlan_name: {{type: string, default: opskit-test}}
    # Per-CI expected VLAN name: lets a test make verification fail on one device.
    expect_names: {{type: object, default: {{}}}}
    community: {{type: object, secret: true}}
requires: [get_config, config_lines]
backup: true
apply:
  - name: create the VLAN
    connector: netmiko
    action: config
    params:
      lines: ["vlan {{{{ params.vlan_id }}}}", " name {{{{ params.vlan_name }}}}", "exit"]
verify:
  - name: the VLAN is configured
    connector: netmiko
    action: get_config
    expect:
      - config_contains:
          - "vlan {{{{ params.vlan_id }}}}"
          - " name {{{{ params.expect_names.get(ci.name, params.vlan_name) }}}}"
rollback: auto
strategy:
  canary: {canary}
  batch: {batch}
  concurrency: {concurrency}
  error_budget: {{max_failed: {max_failed}}}
  on_failure: {on_failure}
"""

VERSIONS = {"1.0.0": "low", "2.0.0": "medium", "3.0.0": "high"}


def write_policy(
    ws: Workspace,
    *,
    inventory: str = "lab",
    signed: bool = False,
    bob_key: str | None = None,
    extra: str = "",
) -> None:
    key = f", signing_key: {bob_key}" if bob_key else ""
    ws.policy_path.write_text(
        POLICY.format(
            inventory=inventory,
            signed=str(signed).lower(),
            bob_key=key,
            extra=textwrap.dedent(extra),
        )
    )
    # `Workspace.policy` is cached: drop it so the new file is read.
    ws.__dict__.pop("policy", None)


def write_runbook(
    ws: Workspace,
    version: str = "1.0.0",
    risk: str = "low",
    *,
    canary: int = 0,
    batch: str = '"100%"',
    max_failed: int = 0,
    on_failure: str = "rollback_host",
    concurrency: int = 4,
) -> str:
    """Writes runbooks/chg-test/VERSION.yaml; returns its reference."""
    path = ws.runbooks_dir / "chg-test" / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        RUNBOOK.format(
            version=version,
            risk=risk,
            canary=canary,
            batch=batch,
            max_failed=max_failed,
            on_failure=on_failure,
            concurrency=concurrency,
        )
    )
    return f"chg-test@{version}"


def write_runbooks(ws: Workspace, **strategy: object) -> None:
    for version, risk in VERSIONS.items():
        write_runbook(ws, version, risk, **strategy)  # type: ignore[arg-type]


def lab_inventory_file(root: Path) -> Path:
    return root / "inventories" / "lab" / "lab.yaml"


def run_change_cli(
    ws: Workspace, *args: str, user: str = "alice", timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`opskit --workspace WS --as USER change ARGS...` as a real process,
    tables unwrapped."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "opskit",
            "--workspace",
            str(ws.root),
            "--as",
            user,
            "change",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200"},
    )


def lab_workspace(root: Path, devices: int) -> Iterator[Workspace]:
    """For a module fixture: a new workspace at `root` with the repository's
    runbooks, templates and playbooks and a lab of `devices` switches, taken
    down afterwards."""
    from opskit.lab import Lab

    ws = init_workspace(root)
    for sub in ("runbooks", "templates", "playbooks"):
        shutil.copytree(REPO / sub, ws.root / sub, dirs_exist_ok=True)
    lab = Lab(ws)
    lab.up(devices=devices, linux=0)
    try:
        yield ws
    finally:
        lab.down()
        ws.close()
