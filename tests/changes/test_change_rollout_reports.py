"""What a rollout and a rollback report, checked on the real lab (emulated IOS
switches and the sshd Linux host): a rollback names every host's outcome and
never claims more than it proved; the progress callbacks count each host
once; an empty predicted diff is "no change needed", not "cannot predict"."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import redirect_stdout
from typing import Any

import pytest

from opskit.changes import ChangeService, State
from opskit.changes.progress import ProgressTally
from opskit.cli.change_rollout import ProgressView, print_summary
from opskit.cli.common import console
from opskit.connectors.netmiko import NetmikoConnector
from opskit.workspace import Workspace
from tests.changes_support import run_change_cli, write_policy, write_runbook
from tests.fixtures.lab import running_config

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@pytest.fixture
def svc(lab: Any, workspace: Workspace) -> Iterator[ChangeService]:
    """A workspace of its own on the running lab: its inventory, the shipped
    runbooks and the test policy."""
    target = workspace.inventories_dir / "lab"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(lab.inventory_path, target)
    # The lab inventory names its credential files relative to the workspace.
    lab_state = lab.ws.root / ".opskit" / "lab"
    (workspace.root / ".opskit").mkdir(exist_ok=True)
    (workspace.root / ".opskit" / "lab").symlink_to(lab_state, target_is_directory=True)
    write_policy(workspace)
    yield ChangeService(workspace)


def approved(svc: ChangeService, runbook: str, select: str, params: dict[str, Any]) -> str:
    change = svc.create(
        runbook=runbook, select_expr=select, requester="alice", title="t", params=params
    )
    svc.submit(change.id, "alice")
    svc.assess(change.id, "bob")
    if svc.approve(change.id, "bob").state is not State.APPROVED:
        svc.approve(change.id, "carol")
    assert svc.get(change.id).state is State.APPROVED
    return change.id


@pytest.fixture
def rotation_user() -> Iterator[str]:
    """A local account on this machine (the sshd lab host is this machine)."""
    if os.geteuid() != 0:
        pytest.skip("creating a local account needs root")
    name = f"opskit-rb-{uuid.uuid4().hex[:6]}"
    subprocess.run(["useradd", "-M", "-s", "/usr/sbin/nologin", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["userdel", name], check=False, capture_output=True)


def run_cli(ws: Workspace, *args: str, user: str = "alice") -> subprocess.CompletedProcess[str]:
    return run_change_cli(ws, *args, user=user, timeout=300)  # lab rollbacks take longer


# -- item 8: a rollback reports and records every host ---------------------------------------
def test_rollback_over_switches_and_a_linux_host_is_partial_and_says_why(
    svc: ChangeService, lab: Any, rotation_user: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not lab.linux_hosts:
        pytest.skip("no sshd lab host (Debian's openssh-server is not installed)")
    linux = lab.linux_hosts[0].name
    switches = [ci.name for ci in lab.switches[1:3]]
    before = {name: running_config(lab.ci(name)) for name in switches}
    monkeypatch.setenv("OPSKIT_TEST_RB_PASSWORD", "Rb-" + uuid.uuid4().hex)
    change_id = approved(
        svc,
        "user-rotation@1.0.0",
        " or ".join([*switches, linux]),
        {"username": rotation_user, "new_password": {"env": "OPSKIT_TEST_RB_PASSWORD"}},
    )
    # Item 5's third case: a connector that cannot predict says so (the
    # playbook in check mode shows no diff), while the switches show theirs.
    predicted = svc.get(change_id).predicted_diff
    assert predicted[linux] == {
        "available": False,
        "reason": "the connector cannot predict a diff",
        "hash": None,
    }
    assert all("+ username" in predicted[name]["diff"] for name in switches)
    shown = run_cli(svc.ws, "show", change_id)
    assert f"{linux}: cannot predict the diff (the connector cannot predict" in shown.stdout
    try:
        applied = svc.apply(change_id, "alice")
        assert applied["state"] == "completed", applied
    finally:
        # Whatever happens, the switches are put back for the other tests.
        summary = svc.rollback(change_id, "alice")
        for name in switches:
            if running_config(lab.ci(name)) != before[name]:
                with NetmikoConnector(lab.ci(name)) as conn:
                    conn.apply_config([f"no username {rotation_user}"])
    assert summary["state"] == "partially_rolled_back", summary
    outcomes = summary["rollback"]
    assert set(outcomes) == {*switches, linux}
    for name in switches:
        assert outcomes[name]["outcome"] == "restored"
        assert outcomes[name]["proof"]["equal"] is True
        # The summary, and so the CLI's table, says which method proved it.
        assert summary["hosts"][name]["restored_by"] == outcomes[name]["proof"]["method"]
        assert summary["hosts"][name]["restored_by"]  # e.g. "steps": the runbook's own
    printed = io.StringIO()
    monkeypatch.setattr(console, "width", 400)  # one row a host, whatever COLUMNS says
    with redirect_stdout(printed):
        print_summary(summary)
    for name in switches:
        (row,) = [line for line in printed.getvalue().splitlines() if name in line]
        assert "equal to snapshot (" in row, printed.getvalue()
        assert running_config(lab.ci(name)) == before[name]
    assert outcomes[linux]["outcome"] == "not_restored"
    assert "no pre-change snapshot" in outcomes[linux]["reason"]
    assert "lock the account" in outcomes[linux]["reason"]  # its rollback step did run
    shadow = subprocess.run(["getent", "shadow", rotation_user], capture_output=True, text=True)
    assert shadow.stdout.split(":")[1].startswith("!")  # locked, not restored
    assert summary["hosts"][linux]["status"] == "not_restored"
    assert svc.get(change_id).state is State.PARTIALLY_ROLLED_BACK
    # The ledger says the same: no unproven host.rolled_back anywhere.
    linux_steps = [e.kind for e in svc.context.ledger.events(change_id=change_id, ci=linux)]
    assert linux_steps[-1] == "host.not_restored" and "host.rolled_back" not in linux_steps
    last = list(svc.context.ledger.events(change_id=change_id))[-1]
    assert last.kind == "change.partially_rolled_back"
    assert last.payload["hosts"][linux]["outcome"] == "not_restored"

    # The CLI: a second rollback is partial again, exit 1, and says which host and why.
    again = run_cli(svc.ws, "rollback", change_id)
    assert again.returncode == 1, again.stderr
    assert "partially_rolled_back" in again.stdout and "not_restored" in again.stdout
    closed = svc.close(change_id, "alice", review="switches restored; Linux account locked")
    assert closed.state is State.CLOSED
    assert closed.review["outcome"] == "partially_rolled_back" and closed.review["cause"]
    assert svc.context.ledger.verify().ok


# -- item 17: each host counted once in its final bucket --------------------------------------
def test_progress_counts_each_host_once_under_rollback_all(svc: ChangeService, lab: Any) -> None:
    ref = write_runbook(svc.ws, "1.3.0", batch="1", max_failed=0, on_failure="rollback_all")
    names = [ci.name for ci in lab.switches]
    before = {name: running_config(lab.ci(name)) for name in names}
    vlan = 3000 + uuid.uuid4().int % 900
    change_id = approved(
        svc,
        ref,
        " or ".join(names),
        {"vlan_id": vlan, "vlan_name": "x", "expect_names": {names[2]: "y"}},
    )
    tally = ProgressTally(len(names))
    view = ProgressView(len(names))  # the CLI's progress bar
    seen: list[tuple[str, str]] = []

    def progress(ci: str, status: str, change: str) -> None:
        seen.append((ci, status))
        tally.update(ci, status)
        view(ci, status, change)
        assert view.progress.tasks[0].completed <= len(names), seen  # never "5/3"
        assert tally.completed <= tally.total, seen

    try:
        summary = svc.apply(change_id, "alice", progress=progress)
    finally:
        view.stop()
    assert summary["state"] == "rolled_back", summary
    assert {name: running_config(lab.ci(name)) for name in names} == before
    # The first two hosts were done, then rolled back: reported twice, counted once.
    assert [s for ci, s in seen if ci == names[0] and s != "running"] == ["ok", "rolled_back"]
    bar = view.progress.tasks[0]
    assert bar.completed == bar.total == len(names)
    assert "done 0" in bar.description and "failed 1" in bar.description
    assert "rolled back 2" in bar.description and "skipped 1" in bar.description
    assert tally.counts == {"ok": 0, "failed": 1, "rolled_back": 2, "skipped": 1}
    assert tally.completed == len(names)


# -- item 5: "no change needed" is not "cannot predict" ---------------------------------------
def test_an_empty_predicted_diff_says_no_change_needed_and_is_bound(
    svc: ChangeService, lab: Any
) -> None:
    ref = write_runbook(svc.ws, "1.0.0")
    switch = lab.switches[1]
    vlan = 3000 + uuid.uuid4().int % 900
    lines = [f"vlan {vlan}", " name present", "exit"]
    with NetmikoConnector(switch) as conn:
        conn.apply_config(lines)  # everything already configured
    try:
        change_id = approved(svc, ref, switch.name, {"vlan_id": vlan, "vlan_name": "present"})
        entry = svc.get(change_id).predicted_diff[switch.name]
        assert entry["available"] and entry["diff"] == "" and entry["no_change"]
        assert entry["hash"]  # bound like any diff
        shown = run_cli(svc.ws, "show", change_id)
        assert f"{switch.name}: no change needed" in shown.stdout, shown.stdout
        assert "cannot predict" not in shown.stdout
        dry = run_cli(svc.ws, "apply", change_id, "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert f"{switch.name}: no change needed" in dry.stdout
        # The approval covers "nothing to do": once something is to do, apply is refused.
        with NetmikoConnector(switch) as conn:
            conn.apply_config([f"no vlan {vlan}"])
        refused = run_cli(svc.ws, "apply", change_id)
        assert refused.returncode == 1
        assert f"the predicted diff changed on {switch.name}" in refused.stderr
    finally:
        with NetmikoConnector(switch) as conn:
            conn.apply_config([f"no vlan {vlan}"])

    # The read-only config-backup runbook: nothing would change, on every kind of host.
    targets = [switch.name, *(ci.name for ci in lab.linux_hosts[:1])]
    backup = approved(svc, "config-backup@1.0.0", " or ".join(targets), {})
    predicted = svc.get(backup).predicted_diff
    assert all(e["available"] and e["no_change"] for e in predicted.values()), predicted
    out = run_cli(svc.ws, "apply", backup, "--dry-run", "--json")
    dry_json = json.loads(out.stdout)
    assert list(dry_json) == [
        "change_id", "state", "dry_run", "predicted_diff", "matches_assessment",
    ]  # fmt: skip
    assert (dry_json["change_id"], dry_json["state"], dry_json["dry_run"]) == (
        backup, "approved", True,
    )  # fmt: skip
    assert all(e["no_change"] for e in dry_json["predicted_diff"].values())
    svc.cancel(backup, "alice", reason="only predicted")


UNPROVEN_RUNBOOK = """\
name: unproven-undo
version: 1.0.0
description: A Linux change whose rollback steps run without a snapshot to prove them.
owner: change-team
risk: low
change_types: [normal]
targets:
  platforms: [linux]
parameters:
  type: object
  additionalProperties: false
  required: [path]
  properties:
    path: {type: string, pattern: "^/tmp/[a-z0-9-]+$"}
requires: [get_config]
backup: false
apply:
  - name: create the marker file
    connector: fabric
    action: run
    params: {command: "touch {{ params.path }}"}
verify:
  - name: a check that fails
    connector: fabric
    action: run
    params: {changes: false, command: "echo present"}
    expect:
      - contains: absent
rollback:
  - name: remove the marker file
    connector: fabric
    action: run
    params: {command: "rm -f {{ params.path }}"}
strategy:
  canary: 0
  batch: "100%"
  concurrency: 1
  error_budget: {max_failed: 1}
  on_failure: rollback_host
"""


def test_an_unproven_rollback_during_apply_is_not_restored(svc: ChangeService, lab: Any) -> None:
    """The same promise inside a rollout: a host whose failed verification
    ran its rollback steps, with no snapshot to compare against, is not
    claimed as rolled back, and neither is the change."""
    if not lab.linux_hosts:
        pytest.skip("no sshd lab host (Debian's openssh-server is not installed)")
    linux = lab.linux_hosts[0].name
    path = svc.ws.runbooks_dir / "unproven-undo" / "1.0.0.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(UNPROVEN_RUNBOOK)
    marker = f"/tmp/opskit-unproven-{uuid.uuid4().hex[:8]}"
    change_id = approved(svc, "unproven-undo@1.0.0", linux, {"path": marker})
    summary = svc.apply(change_id, "alice")
    assert not os.path.exists(marker)  # the rollback step ran
    assert summary["hosts"][linux]["status"] == "not_restored", summary
    assert "no pre-change snapshot" in summary["hosts"][linux]["error"]
    assert summary["state"] == "failed"
    steps = [e.kind for e in svc.context.ledger.events(change_id=change_id, ci=linux)]
    assert "host.not_restored" in steps and "host.rolled_back" not in steps


# The test runbook without a backup: its rollback steps run, nothing proves them.
UNPROVEN_UNDO = """\
rollback:
  - name: remove the VLAN
    connector: netmiko
    action: config
    params: {lines: ["no vlan {{ params.vlan_id }}"]}
"""


def test_a_host_its_rollback_cannot_restore_spends_the_error_budget(
    svc: ChangeService, lab: Any
) -> None:
    """A failed host whose rollback cannot prove it restored (`not_restored`)
    failed like any other: with no budget left, the next batch never starts."""
    first, second = (ci.name for ci in lab.switches[:2])
    ref = write_runbook(svc.ws, "1.5.0", batch="1", max_failed=0, concurrency=1)
    path = svc.ws.runbooks_dir / "chg-test" / "1.5.0.yaml"
    text = path.read_text().replace("backup: true", "backup: false")
    path.write_text(text.replace("rollback: auto\n", UNPROVEN_UNDO))
    before = {name: running_config(lab.ci(name)) for name in (first, second)}
    vlan = 3000 + uuid.uuid4().int % 900
    params = {"vlan_id": vlan, "expect_names": {first: "not-this-name"}}  # `first` fails
    change_id = approved(svc, ref, f"{first} or {second}", params)
    summary = svc.apply(change_id, "alice")
    statuses = {name: host["status"] for name, host in summary["hosts"].items()}
    assert statuses == {first: "not_restored", second: "skipped"}, statuses
    assert {name: running_config(lab.ci(name)) for name in (first, second)} == before
    halted = list(svc.context.ledger.events(change_id=change_id, kind="change.halted"))
    assert [e.payload["reason"] for e in halted] == ["error budget spent: 1 of 2 host(s) failed"]
