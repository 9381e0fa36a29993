"""Applying changes against the lab: real emulated IOS switches (fake-switches),
the real runbook executor, connectors, ledger and CMDB.

The module starts its own lab in its own workspace (so that no other test
sees its devices change) and every test leaves the switches as it found
them, which each test proves by comparing running configurations.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from opskit.changes import ChangeService, State
from opskit.changes.rollout import Rollout
from opskit.changes.summary import ChangeSummary, DryRunSummary
from opskit.connectors.pool import ConnectionPool
from opskit.errors import ChangeError, ChangeRefused
from opskit.hoststate import HostState, count_states
from opskit.inventory import load_workspace_inventory
from opskit.workspace import Workspace
from tests.changes_support import lab_workspace, run_change_cli, write_policy, write_runbook
from tests.fixtures.processes import read_bytes_elsewhere

pytestmark = [pytest.mark.xdist_group("changes-lab"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
SWITCHES = ["lab-sw01", "lab-sw02", "lab-sw03", "lab-sw04"]


@pytest.fixture(scope="module")
def lab_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    yield from lab_workspace(tmp_path_factory.mktemp("changes-lab") / "ws", len(SWITCHES))


@pytest.fixture
def svc(lab_ws: Workspace) -> Iterator[ChangeService]:
    write_policy(lab_ws)
    service = ChangeService(lab_ws)
    before = configs(lab_ws)
    yield service
    # Whatever a test did, the lab must be back where it was (each test
    # rolls back what it applied) and no change may be left holding a lock.
    assert configs(lab_ws) == before
    for change in service.list():
        assert service.context.store.locks_held_by_others(change) == {}


def configs(ws: Workspace, names: list[str] = SWITCHES) -> dict[str, str]:
    inventory = load_workspace_inventory(ws, "lab")
    with ConnectionPool(4) as pool:
        result = {}
        for name in names:
            with pool.session(inventory.get(name), "netmiko") as conn:
                result[name] = conn.get_config("running")
    return result


def approved_change(
    svc: ChangeService,
    runbook: str,
    params: dict[str, Any],
    *,
    select_expr: str = "lab-sw*",
    change_type: str = "normal",
    predict: bool = False,
) -> str:
    change = svc.create(
        runbook=runbook,
        select_expr=select_expr,
        requester="alice",
        title=f"test change {sorted(params.items())[0]}",
        params=params,
        type=change_type,
    )
    svc.submit(change.id, "alice")
    svc.assess(change.id, "bob", predict=predict)
    if svc.approve(change.id, "bob").state is not State.APPROVED:
        svc.approve(change.id, "carol")  # medium risk: the CAB quorum of two
    assert svc.get(change.id).state is State.APPROVED
    return change.id


def host_events(svc: ChangeService, change_id: str) -> dict[str, list[str]]:
    per_host: dict[str, list[str]] = {}
    for event in svc.context.ledger.events(change_id=change_id):
        if event.ci:
            per_host.setdefault(event.ci, []).append(event.kind)
    return per_host


def test_apply_completes_then_rollback_restores_every_switch(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.0.0", canary=1, batch='"50%"')
    before = configs(svc.ws)
    change_id = approved_change(svc, ref, {"vlan_id": 101, "vlan_name": "users"}, predict=True)
    predicted = svc.get(change_id).predicted_diff
    assert all(entry["available"] and "vlan 101" in entry["diff"] for entry in predicted.values())
    seen: list[tuple[str, str]] = []
    summary = svc.apply(
        change_id, "alice", progress=lambda ci, status, _id: seen.append((ci, status))
    )
    assert summary["state"] == "completed", summary
    assert summary["counts"]["ok"] == 4
    # The canary ran alone, first.
    assert [ci for ci, status in seen[:2]] == ["lab-sw01", "lab-sw01"]
    assert {h["batch"] for h in summary["hosts"].values()} == {0, 1, 2}
    after = configs(svc.ws)
    assert all("vlan 101" in after[n] and "vlan 101" not in before[n] for n in SWITCHES)
    for steps in host_events(svc, change_id).values():
        assert steps == ["host.backup", "host.applied", "host.verified"]
    kinds = [e.kind for e in svc.context.ledger.events(change_id=change_id) if not e.ci]
    assert kinds[-4:] == [
        "change.scheduled",
        "change.started",
        "change.verifying",
        "change.completed",
    ]
    assert svc.context.ledger.checkpoints()
    # The CMDB knows the change on every CI, with the configuration hash.
    from opskit.inventory.observed import ci_changes

    with svc.context.engine.connect() as conn:
        rows = (
            conn.execute(select(ci_changes).where(ci_changes.c.change_id == change_id))
            .mappings()
            .all()
        )
    assert {r["ci"] for r in rows} == set(SWITCHES)
    assert {r["config_hash"] for r in rows} == {h["config_hash"] for h in summary["hosts"].values()}

    rolled = svc.rollback(change_id, "alice")
    assert rolled["state"] == "rolled_back", rolled
    assert configs(svc.ws) == before
    proofs = [
        e.payload["proof"]
        for e in svc.context.ledger.events(change_id=change_id, kind="host.rolled_back")
    ]
    assert len(proofs) == 4 and all(p["equal"] for p in proofs)
    closed = svc.close(change_id, "alice", review="applied, then rolled back as planned")
    assert closed.state is State.CLOSED
    assert svc.context.ledger.verify().ok


def test_a_configuration_is_stored_once_as_a_blob(svc: ChangeService, tmp_path: Path) -> None:
    """The snapshot (host.backup) and the configuration after the change
    (host.verified) are blobs; the transcript and the verify step refer to
    them instead of holding another copy, and put together they give back
    exactly what the device sent."""
    from opskit.ledger.bundle import export_bundle, verify_bundle
    from opskit.ledger.keys import PUBLIC_KEY_FILE
    from opskit.runbooks.records import full_output

    ref = write_runbook(svc.ws, "1.0.0")
    before = configs(svc.ws)
    change_id = approved_change(svc, ref, {"vlan_id": 131, "vlan_name": "once"})
    assert svc.apply(change_id, "alice")["state"] == "completed"
    after = configs(svc.ws)
    ledger = svc.context.ledger
    for name in SWITCHES:
        (backup,) = ledger.events(change_id=change_id, ci=name, kind="host.backup")
        (verified,) = ledger.events(change_id=change_id, ci=name, kind="host.verified")
        snapshot = ledger.get_blob(backup.blobs["config"]).decode()
        assert snapshot == before[name]
        (fetch,) = [
            e for e in backup.payload["transcript"] if e["command"] == "show running-config"
        ]
        assert fetch["output_blob"] == "config"
        whole = full_output(fetch, {"config": snapshot})
        assert whole.startswith("Building configuration") and whole.endswith(before[name])
        (step,) = verified.payload["steps"]
        now = ledger.get_blob(verified.blobs["config"]).decode()
        assert now == after[name] and "vlan 131" in now
        assert (step["output"], step["output_blob"], step["output_at"]) == ("", "config", 0)
        assert full_output(step, {"config": now}) == after[name]
        # The stored records hold no copy of either configuration.
        for event in (backup, verified):
            record = json.dumps(event.payload)
            assert "interface FastEthernet0/1" not in record
    # The bundle (format 1: the one that carries blobs with the chain) carries
    # them, and it and the ledger verify.
    bundle = export_bundle(ledger, change_id, tmp_path / "once.json")
    report = verify_bundle(bundle, public_key=ledger.keys_dir / PUBLIC_KEY_FILE)  # type: ignore[operator]
    assert report.ok, report.problem
    assert report.counts["blobs"] >= 2 * len(SWITCHES)
    assert ledger.verify().ok
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(svc.ws) == before


def test_the_rollout_and_the_rollback_run_their_hosts_on_the_given_runner(
    lab_ws: Workspace, svc: ChangeService
) -> None:
    """The runner seam (`opskit.changes.runners`): every host job of the
    rollout and of the rollback runs on the executor the factory makes."""
    from concurrent.futures import Executor, ThreadPoolExecutor

    made: list[int] = []
    jobs: list[str] = []

    class Counting(ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def]
            jobs.append(getattr(fn, "__name__", "job"))
            return super().submit(fn, *args, **kwargs)

    def runner(workers: int) -> Executor:
        made.append(workers)
        return Counting(max_workers=workers)

    counted = ChangeService(lab_ws, runner=runner)
    ref = write_runbook(svc.ws, "1.0.0", batch='"50%"', concurrency=2)
    change_id = approved_change(counted, ref, {"vlan_id": 115, "vlan_name": "runner"})
    assert counted.apply(change_id, "alice")["state"] == "completed"
    assert made == [4] and jobs == ["_host"] * 4  # 2 hosts at once, 2 more closing
    assert counted.rollback(change_id, "alice")["state"] == "rolled_back"
    assert made == [4, 2] and len(jobs) == 8


def test_verification_failure_rolls_the_host_back_with_proof(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.1.0", max_failed=1)
    before = configs(svc.ws)
    change_id = approved_change(
        svc, ref, {"vlan_id": 102, "vlan_name": "voice", "expect_names": {"lab-sw02": "data"}}
    )
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "failed"
    assert summary["hosts"]["lab-sw02"]["status"] == "rolled_back"
    assert "lab-sw02" in summary["cause"]
    # Typed: what the summary says of its hosts is computed from them (and
    # theirs from their steps); its JSON form is what the store and the ledger hold.
    assert isinstance(summary, ChangeSummary)
    assert summary.failed and list(summary.failed_hosts) == ["lab-sw02"]
    assert summary.changed and all(h.changed for h in summary.hosts.values())
    failed_run = summary.hosts["lab-sw02"].run
    assert failed_run is not None and failed_run.status == HostState.ROLLED_BACK
    assert [s.phase for s in failed_run.failed_steps] == ["verify"]
    assert summary.to_dict() == svc.get(change_id).summary
    verifying = next(svc.context.ledger.events(change_id=change_id, kind="change.verifying"))
    assert (
        verifying.payload["counts"] == summary.counts == count_states(["ok"] * 3 + ["rolled_back"])
    )
    assert {n: h["status"] for n, h in summary["hosts"].items() if n != "lab-sw02"} == {
        n: "ok" for n in SWITCHES if n != "lab-sw02"
    }
    # Proven by configuration comparison, and really so on the device.
    assert host_events(svc, change_id)["lab-sw02"] == [
        "host.backup", "host.applied", "host.verify_failed", "host.rolled_back", "host.failed",
    ]  # fmt: skip
    proof = next(
        svc.context.ledger.events(change_id=change_id, ci="lab-sw02", kind="host.rolled_back")
    ).payload["proof"]
    assert proof["equal"] and proof["snapshot_hash"] == proof["after_hash"]
    assert configs(svc.ws, ["lab-sw02"]) == {"lab-sw02": before["lab-sw02"]}
    # The failed change rolls back the rest on request.
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    svc.close(
        change_id, "alice", review="verification failed on lab-sw02", follow_ups=["fix naming"]
    )
    assert svc.get(change_id).review["cause"]


def test_error_budget_spent_stops_the_rollout(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.2.0", batch="1", max_failed=0)
    change_id = approved_change(
        svc, ref, {"vlan_id": 103, "vlan_name": "x", "expect_names": {"lab-sw01": "y"}}
    )
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "rolled_back"
    assert summary["hosts"]["lab-sw01"]["status"] == "rolled_back"
    assert [summary["hosts"][n]["status"] for n in SWITCHES[1:]] == ["skipped"] * 3
    assert set(host_events(svc, change_id)) == {"lab-sw01"}  # nothing ran elsewhere
    halted = next(svc.context.ledger.events(change_id=change_id, kind="change.halted"))
    assert "error budget spent" in halted.payload["reason"]


def test_rollback_all_undoes_hosts_already_changed(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.3.0", batch="1", max_failed=0, on_failure="rollback_all")
    change_id = approved_change(
        svc, ref, {"vlan_id": 104, "vlan_name": "x", "expect_names": {"lab-sw03": "y"}}
    )
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "rolled_back"
    assert [summary["hosts"][n]["status"] for n in SWITCHES] == [
        "rolled_back", "rolled_back", "rolled_back", "skipped",
    ]  # fmt: skip
    assert host_events(svc, change_id)["lab-sw01"][-1] == "host.rolled_back"


def test_dry_run_touches_nothing(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.0.0")
    before = configs(svc.ws)
    change_id = approved_change(svc, ref, {"vlan_id": 105, "vlan_name": "dry"}, predict=True)
    summary = svc.apply(change_id, "alice", dry_run=True)
    assert isinstance(summary, DryRunSummary) and summary.state is State.APPROVED
    assert list(summary) == [
        "change_id", "state", "dry_run", "predicted_diff", "matches_assessment",
    ]  # fmt: skip
    assert summary["dry_run"] and set(summary["predicted_diff"]) == set(SWITCHES)
    assert all("vlan 105" in e["diff"] for e in summary["predicted_diff"].values())
    assert all(summary["matches_assessment"].values())
    assert configs(svc.ws) == before
    assert svc.get(change_id).state is State.APPROVED
    assert [e.kind for e in svc.context.ledger.events(change_id=change_id)][-1] == "change.dry_run"


def test_changed_predicted_diff_after_approval_refuses_apply(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.0.0")
    change_id = approved_change(
        svc, ref, {"vlan_id": 106, "vlan_name": "pred"}, select_expr="lab-sw04", predict=True
    )
    inventory = load_workspace_inventory(svc.ws, "lab")
    with ConnectionPool(1) as pool, pool.session(inventory.get("lab-sw04"), "netmiko") as conn:
        conn.apply_config(["vlan 106", " name pred", "exit"])  # someone got there first
        try:
            with pytest.raises(ChangeRefused, match="the predicted diff changed on lab-sw04"):
                svc.apply(change_id, "alice")
        finally:
            conn.apply_config(["no vlan 106"])


def test_group_cap_serialises_hosts_and_blocks_other_changes(svc: ChangeService) -> None:
    write_policy(svc.ws, extra="concurrency:\n  - {group: lab_switches, max_changing: 1}\n")
    ref = write_runbook(svc.ws, "1.0.0", concurrency=4)
    change_id = approved_change(svc, ref, {"vlan_id": 107, "vlan_name": "cap"})
    other = approved_change(svc, ref, {"vlan_id": 108, "vlan_name": "cap"}, select_expr="lab-sw04")
    # A host of another change is changing: the cap (1) is reached.
    inventory = load_workspace_inventory(svc.ws, "lab")
    holder = Rollout(svc.context, other, "alice")
    holder._acquire_slots(other, inventory.get("lab-sw04"), ["lab_switches"])
    try:
        with pytest.raises(ChangeRefused, match="group lab_switches is at its cap of 1"):
            svc.apply(change_id, "alice")
    finally:
        holder._release_slots(other, "lab-sw04")
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "completed"
    # With concurrency 4 but a cap of 1, hosts ran one after the other.
    order = [e.ci for e in svc.context.ledger.events(change_id=change_id) if e.ci]
    assert len(order) == 12 and set(order) == set(SWITCHES)
    assert all(len(set(order[i : i + 3])) == 1 for i in range(0, 12, 3))
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"


def test_emergency_change_closes_only_after_the_retrospective(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.0.0")
    change_id = approved_change(
        svc,
        ref,
        {"vlan_id": 109, "vlan_name": "urgent"},
        select_expr="lab-sw01",
        change_type="emergency",
    )
    assert svc.apply(change_id, "alice")["state"] == "completed"
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    with pytest.raises(ChangeRefused, match="needs its retrospective review"):
        svc.close(change_id, "alice", review="done")
    with pytest.raises(ChangeRefused, match="alice requested this change"):
        svc.approve(change_id, "alice")
    reviewed = svc.approve(change_id, "carol", comment="justified: outage INC-9")
    assert reviewed.retrospective["complete"]
    assert svc.close(change_id, "alice", review="emergency fix, reviewed").state is State.CLOSED


def test_a_second_apply_of_a_running_change_is_refused(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.0.0")
    change_id = approved_change(
        svc, ref, {"vlan_id": 110, "vlan_name": "once"}, select_expr="lab-sw01"
    )
    assert svc.apply(change_id, "alice")["state"] == "completed"
    with pytest.raises(ChangeRefused, match="it is completed, not approved"):
        svc.apply(change_id, "alice")
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    with pytest.raises(
        ChangeError, match="only a completed, failed or partially rolled back change can be"
    ):
        svc.rollback(change_id, "alice")
    # A refusal like any other: recorded.
    assert [e.kind for e in svc.context.ledger.events(change_id=change_id)][-1] == "change.refused"


APPLY_SCRIPT = """
import sys
from opskit.workspace import Workspace
from opskit.changes import ChangeService
svc = ChangeService(Workspace.open(sys.argv[1]))
print(svc.apply(sys.argv[2], "alice")["state"], flush=True)
"""


def test_crash_mid_rollout_then_recover(svc: ChangeService) -> None:
    ref = write_runbook(svc.ws, "1.4.0", batch="1", concurrency=1)
    before = configs(svc.ws)
    change_id = approved_change(svc, ref, {"vlan_id": 111, "vlan_name": "crash"})
    proc = subprocess.Popen(
        [sys.executable, "-c", APPLY_SCRIPT, str(svc.ws.root), change_id],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            kinds = [e.kind for e in svc.context.ledger.events(change_id=change_id) if e.ci]
            if "host.verified" in kinds:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    change = svc.get(change_id)
    assert change.state is State.IN_PROGRESS
    assert (
        svc.context.store.locks_held_by_others(svc.get(approved_change(svc, ref, {"vlan_id": 112})))
        != {}
    )

    # Applying it again says what to do: its runner is gone, recover it.
    with pytest.raises(ChangeRefused, match=f"run `opskit change recover {change_id}`"):
        svc.apply(change_id, "alice")
    # The CLI's JSON, in the shape it always had (keys in order).
    recovered = run_change_cli(svc.ws, "recover", change_id, "--json")
    assert recovered.returncode == 0, recovered.stderr
    reports = json.loads(recovered.stdout)
    (report,) = [r for r in reports if r["change_id"] == change_id]
    assert list(report) == ["change_id", "state", "action", "locks_released", "hosts"]
    assert report["action"] == "recovered" and report["state"] == "failed"
    assert report["locks_released"] == 4
    hosts = report["hosts"]
    assert {tuple(h) for h in hosts.values()} == {
        ("indexed", "status", "ledger_steps", "last_step", "backup")
    }
    assert hosts["lab-sw01"]["status"] == "ok"
    assert hosts["lab-sw01"]["ledger_steps"] == ["host.backup", "host.applied", "host.verified"]
    assert all(h["status"] in ("ok", "unknown", "pending") for h in hosts.values())
    assert svc.get(change_id).state is State.FAILED
    assert svc.context.store.locks_held_by_others(svc.get(change_id)) == {}
    assert svc.context.ledger.verify().ok
    # The CMDB knows what the crashed run did to the host the ledger shows verified.
    from opskit.inventory.observed import ObservedStore

    cmdb = [c for c in ObservedStore(svc.ws.engine).changes("lab-sw01") if c.change_id == change_id]
    assert cmdb and cmdb[0].config_hash
    # Roll back what the crashed run changed, from the snapshots in the ledger.
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(svc.ws) == before
    svc.close(change_id, "alice", review="runner killed; recovered and rolled back")


@pytest.mark.parametrize("dry_run", [False])
def test_cli_apply_json_exit_codes(svc: ChangeService, dry_run: bool) -> None:
    ref = write_runbook(svc.ws, "1.1.0", max_failed=1)
    ok_id = approved_change(svc, ref, {"vlan_id": 113, "vlan_name": "cli"}, select_expr="lab-sw01")
    bad_id = approved_change(
        svc, ref, {"vlan_id": 114, "vlan_name": "cli", "expect_names": {"lab-sw02": "no"}},
        select_expr="lab-sw02",
    )  # fmt: skip

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "opskit",
                "-w",
                str(svc.ws.root),
                "--as",
                "alice",
                "change",
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )

    done = cli("apply", ok_id, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "completed"
    failed = cli("apply", bad_id, "--json")
    assert failed.returncode == 1
    assert json.loads(failed.stdout)["state"] == "rolled_back"
    again = cli("apply", ok_id, "--json")
    assert again.returncode == 1 and json.loads(again.stdout)["state"] == "refused"
    assert "not approved" in again.stderr
    assert cli("rollback", ok_id).returncode == 0


def test_no_secret_reaches_the_records(svc: ChangeService, monkeypatch: pytest.MonkeyPatch) -> None:
    canary = "Canary-Pw-7f3c9e2a"
    monkeypatch.setenv("CHG_NEW_PASSWORD", canary)
    change_id = approved_change(
        svc,
        "user-rotation@1.0.0",
        {"username": "opsbot", "new_password": {"env": "CHG_NEW_PASSWORD"}},
        select_expr="lab-sw04",
        predict=True,
    )
    assert svc.get(change_id).parameters["new_password"] == {"env": "CHG_NEW_PASSWORD"}
    summary = svc.apply(change_id, "alice")
    # The emulator keeps IOS local users: the secret really went to the device
    # (and was verified there), and must appear nowhere in the records.
    assert summary["state"] == "completed", summary
    assert canary not in json.dumps(summary.to_dict())
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    svc.close(change_id, "alice", review="rotation test")
    written = [p for p in svc.ws.state_dir.rglob("*") if p.is_file()]
    assert written
    for path in written:
        assert canary.encode() not in read_bytes_elsewhere(path), path
    for event in svc.context.ledger.events(change_id=change_id):
        assert canary not in json.dumps(event.to_dict())
