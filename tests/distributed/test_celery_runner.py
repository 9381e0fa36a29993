"""A change through real Celery workers: Redis from Debian, PostgreSQL, two
`opskit worker` subprocesses with their own queues (sites dc1 and dc2), lab
switches split over the two sites. The same change runs locally and through
the workers, and the records, proofs and summaries are compared.

The sites are queues only: the lab's switches run in one emulator process
here; test_sites_netns.py separates two sites with network namespaces.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.changes import ChangeService, State
from opskit.changes.runners import HostJob
from opskit.changes.tablecheck import disagreements
from opskit.distributed.app import TASK_NAME
from opskit.distributed.runner import CeleryRunner
from opskit.errors import ChangeRefused
from opskit.lab import Lab
from opskit.workspace import Workspace, init_workspace
from tests.changes.test_change_apply import approved_change, configs
from tests.changes_support import write_policy, write_runbook
from tests.fixtures.processes import stop_processes
from tests.fixtures.redis import RedisServer, monitor

pytestmark = [pytest.mark.xdist_group("celery-lab"), pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
SITES = {"lab-sw01": "dc1", "lab-sw02": "dc1", "lab-sw03": "dc2", "lab-sw04": "dc2"}
CANARY = "CANARY-5e1f0c9d-community"
CANARY_VAR = "OPSKIT_TEST_DIST_COMMUNITY"
# Recorded by the distributed path only: the idempotency claim and its duplicates.
DISTRIBUTED_KINDS = {"host.dispatched", "host.duplicate_delivery"}


def runner_policy(broker: str, wait: float = 10.0) -> str:
    return (
        f"runner:\n  kind: thread\n  broker: {broker}\n"
        f"  queues: {{by: site}}\n  wait_for_worker_s: {wait}\n"
    )


def split_into_sites(ws: Workspace) -> None:
    path = ws.inventories_dir / "lab" / "lab.yaml"
    document = yaml.safe_load(path.read_text())
    for ci in document["cis"]:
        ci["site"] = SITES.get(ci["name"], "dc1")
    path.write_text(yaml.safe_dump(document, sort_keys=False))


def start_worker(ws: Workspace, db: str, broker: str, queue: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    log = (ws.state_dir / f"worker-{queue}.log").open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "--db", db,
         "worker", "--queues", queue, "--concurrency", "2", "--broker", broker],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, postgres_server: Any
) -> Iterator[dict[str, Any]]:
    ws = init_workspace(tmp_path_factory.mktemp("celery-lab") / "ws")
    for sub in ("runbooks", "templates", "playbooks"):
        shutil.copytree(REPO / sub, ws.root / sub, dirs_exist_ok=True)
    lab = Lab(ws)
    lab.up(devices=4, linux=0)
    split_into_sites(ws)
    broker = redis_server.url(1)
    write_policy(ws, extra=runner_policy(broker))
    os.environ[CANARY_VAR] = CANARY  # the workers resolve the reference themselves
    db = postgres_server.create_database()
    ws.close()
    ws = Workspace.open(ws.root, db=db)
    workers = [start_worker(ws, db, broker, q) for q in ("dc1", "dc2")]
    runner = CeleryRunner(broker, wait_for_worker_s=60)
    deadline = time.monotonic() + 90
    while not {"dc1", "dc2"} <= runner.live_queues():
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(w.poll() is None for w in workers), "a worker exited"
    try:
        yield {"ws": ws, "db": db, "broker": broker, "runner": runner, "workers": workers}
    finally:
        stop_processes(workers)
        lab.down()
        ws.close()
        os.environ.pop(CANARY_VAR, None)


def records(svc: ChangeService, change_id: str) -> dict[str, list[tuple[str, Any]]]:
    """Per host: the ledger steps and the proofs they carry (no ids, no times)."""
    per_host: dict[str, list[tuple[str, Any]]] = {}
    for event in svc.context.ledger.events(change_id=change_id):
        if event.ci and event.kind not in DISTRIBUTED_KINDS:
            proof = (event.payload or {}).get("proof") or {}
            per_host.setdefault(event.ci, []).append(
                (event.kind, {k: v for k, v in proof.items() if k.endswith("hash")})
            )
    return per_host


def host_shape(summary: Any) -> dict[str, Any]:
    return {h: {**e} for h, e in summary.to_dict()["hosts"].items()}


def thread_run_rolled_back(
    ws: Workspace, ref: str, params: dict[str, Any], before: dict[str, str]
) -> tuple[ChangeService, str, Any]:
    """The reference: the change applied on the thread runner, then rolled back."""
    local = ChangeService(ws)
    local_id = approved_change(local, ref, params)
    local_summary = local.apply(local_id, "alice")
    assert local_summary["state"] == "completed", local_summary
    local.rollback(local_id, "alice")
    assert configs(ws) == before
    return local, local_id, local_summary


def test_change_through_two_site_workers_equals_the_local_run(site: dict[str, Any]) -> None:
    ws: Workspace = site["ws"]
    ref = write_runbook(ws, "1.0.0", canary=1, batch='"50%"')
    before = configs(ws)
    params = {"vlan_id": 214, "vlan_name": "dist", "community": {"env": CANARY_VAR}}

    local, local_id, local_summary = thread_run_rolled_back(ws, ref, params, before)

    remote = ChangeService(ws, runner=site["runner"])
    remote_id = approved_change(remote, ref, params)
    stop, seen = threading.Event(), []
    watcher = threading.Thread(target=monitor, args=(site["broker"], stop, seen), daemon=True)
    watcher.start()
    time.sleep(0.2)
    progress: list[tuple[str, str]] = []
    summary = remote.apply(remote_id, "alice", progress=lambda c, s, _i: progress.append((c, s)))
    stop.set()
    assert summary["state"] == "completed", summary.to_dict()
    assert [c for c, _s in progress[:2]] == ["lab-sw01", "lab-sw01"]  # the canary first
    after = configs(ws)
    assert all("vlan 214" in after[name] for name in SITES)
    # Same summary shape and values, same records and proofs, modulo ids and times.
    # The after-change compliance is compared by state only: its transitions
    # differ, since the local run went first.
    local_json, remote_json = local_summary.to_dict(), summary.to_dict()
    unrelated = {"change_id", "compliance"}
    assert {k: v for k, v in remote_json.items() if k not in unrelated} == {
        k: v for k, v in local_json.items() if k not in unrelated
    }
    assert summary.changed and local_summary.changed  # the workers say so too
    states = {h: e["state"] for h, e in local_json["compliance"]["hosts"].items()}
    assert {h: e["state"] for h, e in remote_json["compliance"]["hosts"].items()} == states
    assert records(remote, remote_id) == {
        h: steps[: len(records(remote, remote_id)[h])]
        for h, steps in records(local, local_id).items()
    }
    # Each site's hosts ran on that site's worker.
    for event in remote.context.ledger.events(change_id=remote_id, kind="host.dispatched"):
        assert f"opskit-{SITES[event.ci]}-" in event.payload["worker"]
    # The broker carried no secret: neither the parameter nor the device password.
    password = (ws.state_dir / "lab" / "password").read_text().strip()
    wire = "\n".join(seen)
    assert "opskit.host" in wire or TASK_NAME in wire  # the monitor saw the messages
    assert CANARY not in wire and password not in wire

    # A duplicate message injected by hand: recorded, not applied.
    app = site["runner"].app
    job = HostJob(remote_id, "lab-sw03", "run", summary_digest(remote, remote_id), 1, "alice")
    result = app.send_task(TASK_NAME, args=[job.to_message()], queue="dc2")
    assert result.get(timeout=60)["status"] == "duplicate"
    kinds = [e.kind for e in remote.context.ledger.events(change_id=remote_id, ci="lab-sw03")]
    assert kinds.count("host.duplicate_delivery") == 1
    assert kinds.count("host.applied") == 1

    back = remote.rollback(remote_id, "alice")
    assert back["state"] == "rolled_back", back
    assert configs(ws) == before
    assert remote.context.ledger.verify().ok
    assert disagreements(remote.context.ledger, remote_id) == []


def summary_digest(svc: ChangeService, change_id: str) -> str:
    change = svc.get(change_id)
    return svc.context.catalog.get(change.runbook_ref).digest


def test_worker_refuses_a_changed_runbook_digest_and_another_version(site: dict[str, Any]) -> None:
    ws: Workspace = site["ws"]
    ref = write_runbook(ws, "1.0.0")
    svc = ChangeService(ws, runner=site["runner"])
    change_id = approved_change(svc, ref, {"vlan_id": 215})
    app = site["runner"].app
    before = configs(ws)
    wrong = HostJob(change_id, "lab-sw01", "run", "sha256:" + "0" * 64, 0, "alice")
    old = HostJob(change_id, "lab-sw02", "run", summary_digest(svc, change_id), 0, "alice",
                  version="0.0.1")  # fmt: skip
    for job, reason in ((wrong, "digest"), (old, "coordinator 0.0.1")):
        result = app.send_task(TASK_NAME, args=[job.to_message()], queue="dc1").get(timeout=60)
        assert result["status"] == "failed" and reason in result["error"]
    assert configs(ws) == before  # nothing touched
    failed = [e.ci for e in svc.context.ledger.events(change_id=change_id, kind="host.failed")]
    assert sorted(failed) == ["lab-sw01", "lab-sw02"]


def test_refusals_come_before_any_lock(site: dict[str, Any], tmp_path: Path) -> None:
    ws: Workspace = site["ws"]
    ref = write_runbook(ws, "1.0.0")
    dead = ChangeService(ws, runner=CeleryRunner("redis://127.0.0.1:1/0"))
    change_id = approved_change(dead, ref, {"vlan_id": 216})
    with pytest.raises(ChangeRefused, match=r"broker redis://127\.0\.0\.1:1/0 unreachable"):
        dead.apply(change_id, "alice")
    assert dead.get(change_id).state is State.APPROVED
    assert dead.context.store.locks_held_by_others(dead.get(change_id)) == {}
    nameless = CeleryRunner(site["broker"], by="zone")
    no_queue = ChangeService(ws, runner=nameless)
    fresh = no_queue.create(
        runbook=ref,
        select_expr="lab-sw02",
        requester="alice",
        title="no zone",
        params={"vlan_id": 9},
    )
    no_queue.submit(fresh.id, "alice")
    with pytest.raises(ChangeRefused, match="assess refused: lab-sw02: no queue for the celery"):
        no_queue.assess(fresh.id, "bob")
    with pytest.raises(ChangeRefused, match="lab-sw01: no queue for the celery runner"):
        no_queue.apply(change_id, "alice")
    sqlite_ws = Workspace(root=ws.root, db_url_override=f"sqlite:///{tmp_path / 'x.db'}")
    refused = nameless.blockers(sqlite_ws, [])
    assert refused == [
        "the celery runner needs the PostgreSQL ledger (--db postgresql://...), not SQLite"
    ]
    dead.cancel(change_id, "alice", reason="test over")


# -- faults -------------------------------------------------------------------------


def write_slow_runbook(ws: Workspace, version: str) -> str:
    """chg-test with an apply long enough (many VLANs) to kill a process mid-host."""
    from tests.changes_support import RUNBOOK

    many = ", ".join(f'"vlan {n}", " name slow{n}", "exit"' for n in range(3000, 3080))
    text = RUNBOOK.format(
        version=version, risk="low", canary=0, batch="1", max_failed=0,
        on_failure="rollback_host", concurrency=1,
    )  # fmt: skip
    first = 'lines: ["vlan {{ params.vlan_id }}"'
    text = text.replace(first, f"lines: [{many}, " + first.removeprefix("lines: ["))
    path = ws.runbooks_dir / "chg-test" / f"{version}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return f"chg-test@{version}"


def wait_for_step(svc: ChangeService, change_id: str, ci: str, kind: str) -> None:
    deadline = time.monotonic() + 120
    while kind not in [e.kind for e in svc.context.ledger.events(change_id=change_id, ci=ci)]:
        assert time.monotonic() < deadline, f"{ci} never reached {kind}"
        time.sleep(0.02)


def restart_worker(site: dict[str, Any], index: int, queue: str) -> None:
    site["workers"][index] = start_worker(site["ws"], site["db"], site["broker"], queue)
    deadline = time.monotonic() + 90
    while queue not in site["runner"].live_queues():
        assert time.monotonic() < deadline, "the worker did not come back"


def test_worker_killed_mid_host_leaves_it_unknown_never_applied_twice(site: dict[str, Any]) -> None:
    ws: Workspace = site["ws"]
    before = configs(ws)
    ref = write_slow_runbook(ws, "1.7.0")
    svc = ChangeService(ws, runner=site["runner"])
    change_id = approved_change(svc, ref, {"vlan_id": 217}, select_expr="lab-sw03")
    outcome: dict[str, Any] = {}
    coordinator = threading.Thread(target=lambda: outcome.update(s=svc.apply(change_id, "alice")))
    coordinator.start()
    wait_for_step(svc, change_id, "lab-sw03", "host.backup")
    os.kill(site["workers"][1].pid, signal.SIGKILL)  # the dc2 worker, mid-host
    site["workers"][1].wait(timeout=30)
    coordinator.join(timeout=120)
    host = outcome["s"].to_dict()["hosts"]["lab-sw03"]
    assert host["status"] == "unknown" and "lost mid-host" in host["error"], host
    assert outcome["s"]["state"] == "failed"
    # A new worker on the site: the lost message is not run again (acknowledged on start).
    restart_worker(site, 1, "dc2")
    time.sleep(3)
    kinds = [e.kind for e in svc.context.ledger.events(change_id=change_id, ci="lab-sw03")]
    assert kinds.count("host.dispatched") == 1 and kinds.count("host.applied") <= 1
    # The rollback restores the host from the snapshot in the ledger, on its site's worker.
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(ws) == before
    assert svc.context.ledger.verify().ok
    assert disagreements(svc.context.ledger, change_id) == []


APPLY_SCRIPT = """
import sys
from opskit.workspace import Workspace
from opskit.changes import ChangeService
from opskit.distributed.runner import CeleryRunner
ws = Workspace.open(sys.argv[1], db=sys.argv[2])
svc = ChangeService(ws, runner=CeleryRunner(sys.argv[3]))
print(svc.apply(sys.argv[4], "alice")["state"], flush=True)
"""


def test_coordinator_killed_mid_rollout_then_recover(site: dict[str, Any]) -> None:
    ws: Workspace = site["ws"]
    before = configs(ws)
    ref = write_slow_runbook(ws, "1.8.0")
    svc = ChangeService(ws, runner=site["runner"])
    change_id = approved_change(svc, ref, {"vlan_id": 218}, select_expr="lab-sw0[14]")
    proc = subprocess.Popen(
        [sys.executable, "-c", APPLY_SCRIPT, str(ws.root), site["db"], site["broker"], change_id],
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    wait_for_step(svc, change_id, "lab-sw01", "host.backup")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    # The worker finishes the host it had; nothing dispatches the next one.
    wait_for_step(svc, change_id, "lab-sw01", "host.verified")
    assert svc.get(change_id).state is State.IN_PROGRESS
    (report,) = svc.recover("alice", change_id=change_id)
    assert report["action"] == "recovered" and report["state"] == "failed"
    assert report["hosts"]["lab-sw01"]["status"] == "ok"
    assert report["hosts"]["lab-sw04"]["status"] == "pending"
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(ws) == before
    assert svc.context.ledger.verify().ok


def test_redis_restarted_mid_change_loses_no_record_and_applies_once(
    site: dict[str, Any], redis_server: RedisServer
) -> None:
    ws: Workspace = site["ws"]
    before = configs(ws)
    ref = write_slow_runbook(ws, "1.9.0")
    svc = ChangeService(ws, runner=site["runner"])
    change_id = approved_change(svc, ref, {"vlan_id": 219}, select_expr="lab-sw0[23]")
    outcome: dict[str, Any] = {}
    coordinator = threading.Thread(target=lambda: outcome.update(s=svc.apply(change_id, "alice")))
    coordinator.start()
    wait_for_step(svc, change_id, "lab-sw02", "host.backup")
    redis_server.restart()  # no persistence: its queues and results are gone
    coordinator.join(timeout=180)
    summary = outcome["s"].to_dict()
    for name in ("lab-sw02", "lab-sw03"):
        kinds = [e.kind for e in svc.context.ledger.events(change_id=change_id, ci=name)]
        assert kinds.count("host.dispatched") <= 1 and kinds.count("host.applied") <= 1, kinds
    # The host that was running finished on its worker and the ledger has all of it.
    kinds = [e.kind for e in svc.context.ledger.events(change_id=change_id, ci="lab-sw02")]
    assert kinds[-3:] == ["host.backup", "host.applied", "host.verified"], kinds
    assert summary["hosts"]["lab-sw02"]["status"] in ("ok", "unknown"), summary
    assert svc.context.ledger.verify().ok
    assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
    assert configs(ws) == before


def test_a_queue_without_a_live_worker_is_reported_not_waited_for(site: dict[str, Any]) -> None:
    ws: Workspace = site["ws"]
    ref = write_runbook(ws, "1.0.0")
    nowhere = CeleryRunner(site["broker"], by="zone", default="dc9", wait_for_worker_s=1)
    svc = ChangeService(ws, runner=nowhere)
    change_id = approved_change(svc, ref, {"vlan_id": 220}, select_expr="lab-sw01")
    summary = svc.apply(change_id, "alice").to_dict()
    assert summary["hosts"]["lab-sw01"]["error"] == "unreachable: no worker for queue dc9"
    assert summary["state"] == "failed"
    # The coordinator claimed the key: a worker that comes later runs nothing.
    kinds = [e.kind for e in svc.context.ledger.events(change_id=change_id, ci="lab-sw01")]
    assert kinds == ["host.dispatched"]


def test_cli_apply_runner_celery_prints_the_same_json_shape(site: dict[str, Any]) -> None:
    import json

    ws: Workspace = site["ws"]
    ref = write_runbook(ws, "1.0.0")
    svc = ChangeService(ws)
    ids = [approved_change(svc, ref, {"vlan_id": v}, select_expr="lab-sw0[12]") for v in (221, 222)]
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OPSKIT_DB": site["db"]}
    outputs = []
    for change_id, runner in zip(ids, ("thread", "celery"), strict=True):
        done = subprocess.run(
            [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "--as", "alice",
             "change", "apply", change_id, "--runner", runner, "--json"],
            capture_output=True, text=True, env=env, timeout=180,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        outputs.append(json.loads(done.stdout))
    local, remote = outputs
    assert remote["state"] == "completed"

    def shape(summary: dict[str, Any]) -> dict[str, Any]:
        """The JSON modulo the change id and the hashes (the VLANs differ)."""
        hosts = {
            h: {k: v for k, v in e.items() if k != "config_hash"}
            for h, e in summary["hosts"].items()
        }
        unrelated = {"change_id", "compliance"}  # see the test above
        return {**{k: v for k, v in summary.items() if k not in unrelated}, "hosts": hosts}

    assert shape(local) == shape(remote)
    assert all(e["config_hash"] for e in remote["hosts"].values())
    for change_id in ids:
        assert svc.rollback(change_id, "alice")["state"] == "rolled_back"
