"""A change through local worker processes (`ProcessRunner`): four lab
switches, SQLite and PostgreSQL. The same change runs on the thread runner
and on the worker processes, and the summaries, records and proofs are
compared; then the faults a process brings: a worker killed mid-host, a
worker that cannot start, an in-memory database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.changes import ChangeService, State
from opskit.changes.tablecheck import disagreements
from opskit.distributed.processes import ProcessRunner
from opskit.workspace import Workspace
from tests.changes.test_change_apply import approved_change, configs
from tests.changes_support import lab_workspace, run_change_cli, write_policy, write_runbook
from tests.distributed.test_celery_runner import (
    host_shape,
    records,
    thread_run_rolled_back,
    wait_for_step,
    write_slow_runbook,
)

pytestmark = [pytest.mark.xdist_group("process-lab"), pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
CANARY = "CANARY-81d2c4aa-community"
CANARY_VAR = "OPSKIT_TEST_PROC_COMMUNITY"


@pytest.fixture(scope="module")
def lab_ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    for ws in lab_workspace(tmp_path_factory.mktemp("process-lab") / "ws", 4):
        write_policy(ws)
        yield ws


def test_change_through_worker_processes_equals_the_thread_run(lab_ws: Workspace) -> None:
    ws = lab_ws
    ref = write_runbook(ws, "1.0.0", canary=1, batch='"50%"')
    before = configs(ws)
    runner = ProcessRunner(ws.root, processes=2)
    runner.prepare()
    # Set after the launcher started: the workers still resolve it, as a
    # process started now would.
    os.environ[CANARY_VAR] = CANARY
    try:
        params = {"vlan_id": 224, "vlan_name": "proc", "community": {"env": CANARY_VAR}}
        local, local_id, local_summary = thread_run_rolled_back(ws, ref, params, before)
        remote = ChangeService(ws, runner=runner)
        remote_id = approved_change(remote, ref, params)
        summary = remote.apply(remote_id, "alice")
    finally:
        os.environ.pop(CANARY_VAR, None)
    assert summary["state"] == "completed", summary.to_dict()
    assert all("vlan 224" in config for config in configs(ws).values())
    local_json, remote_json = local_summary.to_dict(), summary.to_dict()
    unrelated = {"change_id", "compliance"}
    assert {k: v for k, v in remote_json.items() if k not in unrelated} == {
        k: v for k, v in local_json.items() if k not in unrelated
    }
    assert host_shape(summary) == host_shape(local_summary)
    assert summary.changed
    ours = records(remote, remote_id)
    assert ours == {h: steps[: len(ours[h])] for h, steps in records(local, local_id).items()}
    # Every host ran in a worker process (two of them), none in this one.
    workers = {
        e.payload["worker"]
        for e in remote.context.ledger.events(change_id=remote_id, kind="host.dispatched")
    }
    pids = {int(w.rsplit("@", 1)[1]) for w in workers}
    assert len(pids) == 2 and os.getpid() not in pids, workers
    assert runner.worker_pids == []  # told to stop with the rollout
    runner.wait_stopped()
    assert runner.worker_cpu_seconds > 0
    back = remote.rollback(remote_id, "alice")
    assert back["state"] == "rolled_back", back
    assert configs(ws) == before
    ledger = remote.context.ledger
    assert ledger.verify().ok
    assert disagreements(ledger, remote_id) == []
    stored = "\n".join(str(e.payload) for e in ledger.events(change_id=remote_id))
    assert CANARY not in stored


def test_worker_killed_mid_host_leaves_it_unknown_and_rollback_restores(
    lab_ws: Workspace,
) -> None:
    ws = lab_ws
    before = configs(ws)
    ref = write_slow_runbook(ws, "1.7.0")
    runner = ProcessRunner(ws.root, processes=1)
    svc = ChangeService(ws, runner=runner)
    change_id = approved_change(svc, ref, {"vlan_id": 227}, select_expr="lab-sw03")
    outcome: dict[str, Any] = {}
    coordinator = threading.Thread(target=lambda: outcome.update(s=svc.apply(change_id, "alice")))
    coordinator.start()
    wait_for_step(svc, change_id, "lab-sw03", "host.backup")
    (pid,) = runner.worker_pids
    os.kill(pid, signal.SIGKILL)
    coordinator.join(timeout=120)
    host = outcome["s"].to_dict()["hosts"]["lab-sw03"]
    assert host["status"] == "unknown", host
    assert f"worker process worker-1/{pid} ended (exit code -9)" in host["error"]
    assert outcome["s"]["state"] == "failed"
    kinds = [e.kind for e in svc.context.ledger.events(change_id=change_id, ci="lab-sw03")]
    assert kinds.count("host.dispatched") == 1 and kinds.count("host.applied") == 0
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(ws) == before
    assert svc.context.ledger.verify().ok
    assert disagreements(svc.context.ledger, change_id) == []


def test_a_worker_that_cannot_start_fails_its_hosts_untouched(
    lab_ws: Workspace, tmp_path: Path
) -> None:
    ws = lab_ws
    before = configs(ws)
    ref = write_runbook(ws, "1.0.0")
    # The workers open a folder that is no workspace; the coordinator's is fine.
    runner = ProcessRunner(tmp_path, db=ws.db_url, processes=2)
    svc = ChangeService(ws, runner=runner)
    change_id = approved_change(svc, ref, {"vlan_id": 228}, select_expr="lab-sw0[12]")
    summary = svc.apply(change_id, "alice")
    assert summary["state"] == "failed"
    for host in summary.to_dict()["hosts"].values():
        assert host["status"] == "failed", host
        assert "could not start" in host["error"] and "not an opskit workspace" in host["error"]
    assert configs(ws) == before
    ledger = svc.context.ledger
    claims = ledger.events(change_id=change_id, kind="host.dispatched")
    assert {e.payload["worker"] for e in claims} == {"coordinator (gave up)"}
    assert ledger.verify().ok


UNGUARDED_SCRIPT = """\
import sys
from opskit.changes import ChangeService
from opskit.distributed.processes import ProcessRunner
from opskit.workspace import Workspace
print("the script's body ran", flush=True)
ws = Workspace.open(sys.argv[1])
service = ChangeService(ws, runner=ProcessRunner(ws.root, processes=2))
print(service.apply(sys.argv[2], "alice")["state"], flush=True)
"""


def test_a_script_without_a_main_guard_is_not_run_again_by_the_workers(
    lab_ws: Workspace, tmp_path: Path
) -> None:
    ws = lab_ws
    before = configs(ws)
    ref = write_runbook(ws, "1.0.0")
    svc = ChangeService(ws)
    change_id = approved_change(svc, ref, {"vlan_id": 226}, select_expr="lab-sw0[34]")
    script = tmp_path / "apply.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), str(ws.root), change_id],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert done.stdout.splitlines() == ["the script's body ran", "completed"], done.stderr
    assert done.stderr == ""
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(ws) == before


def test_in_memory_sqlite_is_refused_before_anything(lab_ws: Workspace) -> None:
    memory = Workspace(root=lab_ws.root, db_url_override="sqlite://")
    assert ProcessRunner(lab_ws.root).blockers(memory, []) == [
        "the process runner needs a database file or server, not in-memory SQLite"
    ]
    assert ProcessRunner(lab_ws.root).blockers(lab_ws, []) == []


@pytest.mark.postgres
def test_process_runner_on_postgresql_and_through_the_cli(
    lab_ws: Workspace, postgres_server: Any
) -> None:
    db = postgres_server.create_database()
    ws = Workspace.open(lab_ws.root, db=db)
    before = configs(ws)
    ref = write_runbook(ws, "1.0.0")
    svc = ChangeService(ws)
    change_id = approved_change(svc, ref, {"vlan_id": 229})
    os.environ["OPSKIT_DB"] = db
    try:
        done = run_change_cli(ws, "apply", change_id, "--runner", "process", "--json")
    finally:
        os.environ.pop("OPSKIT_DB", None)
    assert done.returncode == 0, done.stderr
    assert '"state": "completed"' in done.stdout
    assert svc.get(change_id).state is State.COMPLETED
    claims = list(svc.context.ledger.events(change_id=change_id, kind="host.dispatched"))
    assert len(claims) == 4 and all("@" in e.payload["worker"] for e in claims)
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(ws) == before
    assert svc.context.ledger.verify().ok
    ws.close()
