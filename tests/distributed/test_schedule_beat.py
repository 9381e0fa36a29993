"""Scheduled read-only jobs through real parts: Debian's `redis-server`, a
PostgreSQL ledger, a real `opskit schedule run` (Celery beat) process and two
`opskit worker` processes (queues dc1 and dc2), lab switches split over the
two sites. Short intervals really produce recorded backups, compliance runs
and inspections, each on its site's worker and recorded like a manual run;
a run that overlaps the previous one of its schedule is skipped and recorded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.backups import take_backups
from opskit.distributed.app import make_app
from opskit.distributed.runner import CeleryRunner
from opskit.distributed.schedule import EXPIRED_REASON, SCHEDULED_TASK, overlap_lock
from opskit.lab import Lab
from opskit.ledger.core import Ledger
from opskit.reports import run_recorded_inspection
from opskit.workspace import Workspace, init_workspace
from tests.changes_support import write_policy
from tests.fixtures.processes import stop_processes
from tests.fixtures.redis import RedisServer, monitor

pytestmark = [pytest.mark.xdist_group("celery-beat"), pytest.mark.slow, pytest.mark.postgres]

REPO = Path(__file__).resolve().parents[2]
SITES = {"lab-sw01": "dc1", "lab-sw02": "dc2"}
SCHEDULES = """\
schedules:
  - {name: backups, job: backup, select: "platform:cisco_ios", every: 3}
  - {name: audit, job: compliance, select: "platform:cisco_ios", every: 4}
  - {name: look, job: inspect, select: "platform:cisco_ios", every: 5}
  # Never due while the test runs: its runs are sent by hand.
  - {name: by-hand, job: backup, select: "name:lab-sw01", cron: "0 0 1 1 *"}
"""


def opskit_process(ws: Workspace, db: str, *args: str, log: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    out = (ws.state_dir / log).open("ab")
    return subprocess.Popen(
        [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "--db", db, *args],
        env=env,
        stdout=out,
        stderr=subprocess.STDOUT,
    )


@pytest.fixture(scope="module")
def estate(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, postgres_server: Any
) -> Iterator[dict[str, Any]]:
    ws = init_workspace(tmp_path_factory.mktemp("celery-beat") / "ws")
    for sub in ("runbooks", "templates", "playbooks"):
        shutil.copytree(REPO / sub, ws.root / sub, dirs_exist_ok=True)
    lab = Lab(ws)
    lab.up(devices=len(SITES), linux=0)
    path = ws.inventories_dir / "lab" / "lab.yaml"
    document = yaml.safe_load(path.read_text())
    for ci in document["cis"]:
        ci["site"] = SITES.get(ci["name"], "dc1")
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    broker = redis_server.url(2)
    write_policy(ws, extra=f"runner:\n  broker: {broker}\n" + SCHEDULES)
    db = postgres_server.create_database()
    ws.close()
    ws = Workspace.open(ws.root, db=db)
    workers = [
        opskit_process(ws, db, "worker", "--queues", q, "--concurrency", "2", log=f"w-{q}.log")
        for q in ("dc1", "dc2")
    ]
    deadline = time.monotonic() + 90
    while not {"dc1", "dc2"} <= CeleryRunner(broker).live_queues():
        assert time.monotonic() < deadline, "the workers did not start"
        assert all(w.poll() is None for w in workers), "a worker exited"
    try:
        yield {"ws": ws, "db": db, "broker": broker, "workers": workers}
    finally:
        stop_processes(workers)
        lab.down()
        ws.close()


def scheduled_events(ledger: Ledger, kind: str, actor: str) -> list[Any]:
    return [e for e in ledger.events(kind=kind) if e.actor == actor]


def wait_for(check: Any, timeout: float, what: str, beat: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert beat.poll() is None, "the beat process exited"
        assert time.monotonic() < deadline, f"no {what} within {timeout} s"
        time.sleep(0.5)


def test_beat_runs_each_schedule_on_its_site_workers_recorded_like_manual_runs(
    estate: dict[str, Any],
) -> None:
    ws: Workspace = estate["ws"]
    ledger = Ledger.open(ws)
    stop_watch, wire = threading.Event(), []
    watcher = threading.Thread(
        target=monitor, args=(estate["broker"], stop_watch, wire), daemon=True
    )
    watcher.start()
    beat = opskit_process(ws, estate["db"], "schedule", "run", log="beat.log")
    try:

        def backed_up() -> bool:
            events = scheduled_events(ledger, "backup.taken", "schedule:backups")
            return {e.ci for e in events} == set(SITES)

        def audited() -> bool:
            runs = scheduled_events(ledger, "compliance.run", "schedule:audit")
            return {e.payload["trigger"]["queue"] for e in runs} == {"dc1", "dc2"}

        def looked() -> bool:
            runs = scheduled_events(ledger, "inspection.run", "schedule:look")
            return {h["ci"] for e in runs for h in e.payload["report"]["hosts"]} == set(SITES)

        wait_for(backed_up, 120, "scheduled backup of both sites", beat)
        wait_for(audited, 120, "scheduled compliance run on both queues", beat)
        wait_for(looked, 180, "scheduled inspection of both sites", beat)
        # The interval really repeats: a second run of the backups comes.
        wait_for(
            lambda: len(scheduled_events(ledger, "backup.taken", "schedule:backups")) > len(SITES),
            60,
            "second scheduled backup",
            beat,
        )
    finally:
        stop_processes([beat])
        stop_watch.set()
    log = (ws.state_dir / "beat.log").read_text()
    assert "Traceback" not in log, log
    # The broker carried schedule names and queues, never the devices' password,
    # and no scheduled record holds it either.
    password = (ws.state_dir / "lab" / "password").read_text().strip()
    sent = "\n".join(wire)
    assert SCHEDULED_TASK in sent
    assert password not in sent
    assert not [e.seq for e in ledger.events() if password in str(e.payload)]

    # Each site's run covered that site's CIs only.
    for run in scheduled_events(ledger, "compliance.run", "schedule:audit"):
        site = run.payload["trigger"]["queue"]
        assert run.payload["select"] == f"(platform:cisco_ios) and site:{site}"
        assert run.payload["cis"] == 1
    for run in scheduled_events(ledger, "inspection.run", "schedule:look"):
        (host,) = run.payload["report"]["hosts"]
        assert run.payload["selection"].endswith(f"site:{SITES[host['ci']]}")

    # A scheduled backup is the manual one's record: same kinds, same fields, same
    # configuration hash; only the actor differs.
    manual = take_backups(ws, "alice", select="platform:cisco_ios")
    for result in manual.results:
        by_hand = next(e for e in ledger.events(kind="backup.taken") if e.seq == result.seq)
        scheduled = scheduled_events(ledger, "backup.taken", "schedule:backups")
        latest = [e for e in scheduled if e.ci == result.ci][-1]
        assert set(latest.payload) == set(by_hand.payload)
        assert latest.payload["hash"] == by_hand.payload["hash"]
        assert latest.blobs.keys() == by_hand.blobs.keys()
    inspection = run_recorded_inspection(ws, "alice", select="name:lab-sw01")
    by_hand = next(e for e in ledger.events(kind="inspection.run") if e.seq == inspection.seq)
    scheduled = scheduled_events(ledger, "inspection.run", "schedule:look")[-1]
    assert set(scheduled.payload) == set(by_hand.payload)
    assert scheduled.payload["runbook_digest"] == by_hand.payload["runbook_digest"]
    import collections

    print(collections.Counter((e.kind, e.actor) for e in ledger.events()))
    assert ledger.verify().ok


def test_a_run_overlapping_the_previous_one_is_skipped_and_recorded(
    estate: dict[str, Any],
) -> None:
    """The previous run still holds the schedule's lock (held here, in another
    process than the worker): the worker records the skip and reads nothing."""
    ws: Workspace = estate["ws"]
    ledger = Ledger.open(ws)
    app = make_app(estate["broker"])
    with overlap_lock(ws, "by-hand@dc1") as held:
        assert held
        result = app.send_task(SCHEDULED_TASK, args=["by-hand", "dc1"], queue="dc1")
        skipped = result.get(timeout=60)
    assert skipped["status"] == "skipped", skipped
    event = next(e for e in ledger.events(kind="schedule.skipped") if e.seq == skipped["seq"])
    assert event.actor == "schedule:by-hand"
    assert event.payload["reason"] == "the previous run of this schedule is still running"
    assert not scheduled_events(ledger, "backup.taken", "schedule:by-hand")

    # Released: the next run goes ahead.
    done = app.send_task(SCHEDULED_TASK, args=["by-hand", "dc1"], queue="dc1").get(timeout=60)
    assert done["status"] == "done", done
    (taken,) = scheduled_events(ledger, "backup.taken", "schedule:by-hand")
    assert taken.ci == "lab-sw01" and taken.seq in done["seqs"]

    assert ledger.verify().ok


def test_a_run_not_started_within_its_period_is_recorded_as_skipped(
    estate: dict[str, Any],
) -> None:
    """A message that outlived its period (the workers were busy or down) is
    dropped by the worker and recorded, not run late."""
    ws: Workspace = estate["ws"]
    ledger = Ledger.open(ws)
    before = len(scheduled_events(ledger, "backup.taken", "schedule:by-hand"))
    late = datetime.now(UTC) - timedelta(seconds=5)
    app = make_app(estate["broker"])
    app.send_task(SCHEDULED_TASK, args=["by-hand", "dc1"], queue="dc1", expires=late)
    deadline = time.monotonic() + 60
    while not (skips := scheduled_events(ledger, "schedule.skipped", "schedule:by-hand")) or (
        skips[-1].payload["reason"] != EXPIRED_REASON
    ):
        assert time.monotonic() < deadline, "the expired run was not recorded"
        time.sleep(0.5)
    assert skips[-1].payload == {
        "schedule": "by-hand",
        "queue": "dc1",
        "job": "backup",
        "reason": "not started within one period (the workers were busy or down)",
    }
    assert len(scheduled_events(ledger, "backup.taken", "schedule:by-hand")) == before
