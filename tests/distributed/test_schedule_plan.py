"""Schedules without the broker: planning over the example estate's two sites,
the read-only gate (a job that could change a device is refused in one line,
naming what), and a worker's run on SQLite (the overlap lock, the records).
The runs through real Celery beat and workers are in test_schedule_beat.py."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from opskit.compliance.runs import run_compliance
from opskit.connectors.actions import BUILTIN, CONNECTOR_ACTIONS
from opskit.distributed.schedule import (
    JOB_ACTIONS,
    SCHEDULED_TASK,
    beat_schedule,
    overlap_lock,
    plan,
    run_scheduled,
)
from opskit.inventory import load_workspace_inventory
from opskit.ledger.core import Ledger
from opskit.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]


def add_schedules(ws: Workspace, text: str) -> None:
    with ws.policy_path.open("a") as handle:
        handle.write(text)
    ws.__dict__.pop("policy", None)


def opskit(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("OPSKIT_DB", None)
    command = [sys.executable, "-m", "opskit", "--workspace", str(ws.root), *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=60)


def test_a_schedule_is_split_over_the_site_queues(workspace: Workspace) -> None:
    add_schedules(
        workspace,
        'schedules:\n  - {name: nightly, job: backup, select: "group:network", cron: "0 2 * * *"}\n'
        "  - {name: audit, job: compliance, every: 600, source: backup, queue: dc1}\n",
    )
    entries = plan(workspace)
    inventory = load_workspace_inventory(workspace)
    network = {ci.name: ci.site for ci in inventory.select("group:network")}
    nightly = [e for e in entries if e.schedule.name == "nightly"]
    assert sorted(e.queue for e in nightly) == sorted(set(network.values())) == ["dc1", "dc2"]
    for entry in nightly:
        # The entry's selection, as recorded, selects exactly that site's CIs.
        chosen = [ci.name for ci in inventory.select(entry.selection)]
        assert chosen == sorted(n for n, site in network.items() if site == entry.queue)
        assert list(entry.cis) == chosen
    (audit,) = [e for e in entries if e.schedule.name == "audit"]
    assert (audit.key, audit.selection) == ("audit@dc1", None)  # its own queue: kept whole

    table = beat_schedule(entries)
    assert table["nightly@dc2"]["task"] == SCHEDULED_TASK
    assert table["nightly@dc2"]["args"] == ["nightly", "dc2"]
    assert table["nightly@dc2"]["options"] == {"queue": "dc2", "expires": 86400.0}
    assert str(table["nightly@dc2"]["schedule"]) == "<crontab: 0 2 * * * (m/h/dM/MY/d)>"
    assert table["audit@dc1"]["schedule"] == timedelta(seconds=600)

    listed = opskit(workspace, "schedule", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [e["entry"] for e in yaml.safe_load(listed.stdout)] == [e.key for e in entries]


def test_queues_by_an_attribute_with_a_default(workspace: Workspace) -> None:
    """`runner.queues.by: model`: the CIs without a model go to the default
    queue, whose recorded selection is "all but the other queues"."""
    chosen = "group:network or name:billing or name:lb-web"
    add_schedules(
        workspace,
        "runner: {queues: {by: model, default: MX204}}\n"
        f'schedules:\n  - {{name: all, job: backup, select: "{chosen}", every: 60}}\n',
    )
    inventory = load_workspace_inventory(workspace)
    entries = {e.queue: e for e in plan(workspace)}
    models = {ci.name: ci.attributes.get("model") for ci in inventory.select(chosen)}
    assert sorted(entries) == sorted({m for m in models.values() if m})
    assert entries["ASA5525-X"].selection == f"({chosen}) and attr.model=ASA5525-X"
    assert entries["ASA5525-X"].cis == ("fw1",)
    others = sorted(m for m in entries if m != "MX204")
    assert entries["MX204"].selection == (
        f"({chosen}) and not ({' or '.join(f'attr.model={m}' for m in others)})"
    )
    assert entries["MX204"].cis == ("billing", "edge-r1", "edge-r2", "lb-web")


def test_the_job_kinds_only_read_by_the_action_registry() -> None:
    """The declared actions of each job kind are the registry's read-only ones
    (should the registry ever say otherwise, the schedule refuses the job)."""
    assert JOB_ACTIONS["backup"] == (BUILTIN["get_config"],)
    assert JOB_ACTIONS["compliance"][1] is CONNECTOR_ACTIONS["napalm"]["getters"]
    assert not any(spec.mutates for specs in JOB_ACTIONS.values() for spec in specs)


def edit_inspection(ws: Workspace, change: dict[str, object]) -> None:
    path = ws.root / "runbooks" / "inspection" / "1.0.0.yaml"
    document = yaml.safe_load(path.read_text())
    document.update(change)
    path.write_text(yaml.safe_dump(document, sort_keys=False, allow_unicode=True))


CONFIG_STEP = {"name": "sneaky", "connector": "netmiko", "action": "config",
               "params": {"lines": ["no vlan 1"]}}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"apply": [CONFIG_STEP]},
            "runbook inspection@1.0.0 has apply or rollback steps: a schedule runs read-only jobs",
        ),
        (
            {"verify": [CONFIG_STEP]},
            "runbook inspection@1.0.0 step 'sneaky' runs config, which may change the device: "
            "a schedule runs read-only jobs only",
        ),
        (
            {"verify": [{**CONFIG_STEP, "action": "commands", "params": {"commands": ["reload"]}}]},
            "runbook inspection@1.0.0 step 'sneaky' runs commands, which may change the device: "
            "a schedule runs read-only jobs only",
        ),
        (
            {"verify": [{"name": "sneaky", "connector": "fabric", "action": "run",
                         "platforms": ["linux"], "params": {"command": "touch /x"}}]},
            "runbook inspection@1.0.0 step 'sneaky' runs run, which may change the device: "
            "a schedule runs read-only jobs only",
        ),
    ],
)  # fmt: skip
def test_an_inspection_that_could_change_a_device_is_refused(
    workspace: Workspace, change: dict[str, object], message: str
) -> None:
    add_schedules(workspace, "schedules:\n  - {name: look, job: inspect, every: 60}\n")
    assert plan(workspace)  # the shipped inspection runbook only reads
    edit_inspection(workspace, change)
    done = opskit(workspace, "schedule", "list")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {workspace.policy_path}:{policy_lines(workspace)} [schedules[0].job]: {message}"
    ]


def policy_lines(ws: Workspace) -> int:
    return len(ws.policy_path.read_text().splitlines())


def test_a_worker_run_is_recorded_like_the_manual_one_and_an_overlap_is_skipped(
    workspace: Workspace,
) -> None:
    """On SQLite (the file lock): a compliance run from the backups, through
    `run_scheduled` as a worker calls it, next to the same manual run."""
    add_schedules(
        workspace,
        'schedules:\n  - {name: audit, job: compliance, select: "group:network", every: 60,'
        " source: backup}\n"
        # Another schedule's fault (it selects nothing) is not this one's.
        '  - {name: broken, job: backup, select: "site:nowhere", every: 60}\n',
    )
    ledger = Ledger.open(workspace)
    done = run_scheduled(workspace, "audit", "dc2")
    assert done["status"] == "done", done
    (seq,) = done["seqs"]
    scheduled = next(e for e in ledger.events(kind="compliance.run") if e.seq == seq)
    manual = run_compliance(workspace, "alice", select=scheduled.payload["select"], source="backup")
    by_hand = next(e for e in ledger.events(kind="compliance.run") if e.seq == manual.seq)
    assert scheduled.actor == "schedule:audit" and by_hand.actor == "alice"
    assert scheduled.payload["trigger"] == {"schedule": "audit", "queue": "dc2"}
    assert by_hand.payload["trigger"] == {}
    same = {k: v for k, v in scheduled.payload.items() if k != "trigger"}
    assert same == {k: v for k, v in by_hand.payload.items() if k != "trigger"}
    with overlap_lock(workspace, "audit@dc2") as held:
        assert held
        skipped = run_scheduled(workspace, "audit", "dc2")
    assert skipped["status"] == "skipped"
    event = next(e for e in ledger.events(kind="schedule.skipped") if e.seq == skipped["seq"])
    assert event.actor == "schedule:audit"
    assert event.payload == {
        "schedule": "audit",
        "queue": "dc2",
        "job": "compliance",
        "reason": "the previous run of this schedule is still running",
    }
    # Not this worker's schedule (a hand-made message): recorded, nothing run.
    failed = run_scheduled(workspace, "restore-everything", "dc1")
    assert failed["status"] == "failed"
    assert failed["error"].endswith(
        "no schedule 'restore-everything' for queue 'dc1' in this worker's policy"
    )
    broken = run_scheduled(workspace, "broken", "dc1")
    assert broken["status"] == "failed"
    assert broken["error"].endswith("[schedules[1].select]: 'site:nowhere' selects no CI")
    kinds = [e.kind for e in ledger.events() if e.seq > skipped["seq"]]
    assert kinds == ["schedule.failed", "schedule.failed"]
    assert ledger.verify().ok


def test_schedule_run_refuses_a_bad_schedule_in_one_line(workspace: Workspace) -> None:
    done = opskit(workspace, "schedule", "run")
    assert done.stderr.strip().splitlines() == [
        "error: opskit schedule run needs a broker: --broker or runner.broker"
    ]
    add_schedules(workspace, 'schedules:\n  - {name: n, job: backup, cron: "0 25 * * *"}\n')
    done = opskit(workspace, "schedule", "run", "--broker", "redis://127.0.0.1:1/0")
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        f"error: {workspace.policy_path}:{policy_lines(workspace)} [schedules[0].cron]: "
        "cron '0 25 * * *': Invalid end range: 25 > 23."
    ]


@pytest.mark.parametrize(
    ("entry", "field", "message"),
    [
        ("{name: n, job: backup, every: 60, queue: ../../escaped}", "schedules[0].queue",
         "invalid value '../../escaped': must match"),
        ("{name: n, job: backup, every: 60, queue: 'dc 1'}", "schedules[0].queue",
         "invalid value 'dc 1': must match"),
        ("{name: n, job: backup, every: 60, source: backup}", "schedules[0]",
         "source is for compliance jobs, not backup"),
    ],
)  # fmt: skip
def test_a_bad_queue_or_a_misplaced_source_is_refused_in_one_line(
    workspace: Workspace, entry: str, field: str, message: str
) -> None:
    """A schedule's queue also names its lock file: a path or blank in it
    is refused before anything runs (it once wrote outside the workspace)."""
    add_schedules(workspace, f"schedules:\n  - {entry}\n")
    done = opskit(workspace, "schedule", "list")
    assert done.returncode != 0 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(f"error: {workspace.policy_path}:{policy_lines(workspace)} [{field}]: ")
    assert message in line


@pytest.mark.parametrize(
    ("broker", "message"),
    [
        ("http://127.0.0.1:6379/0", "error: the broker URL must start with redis:// or rediss://"),
        ("redis://h:99999/0", "error: the broker URL is not valid: Port out of range 0-65535"),
        ("redis://:hunter2@127.0.0.1:1/0", "error: broker redis://127.0.0.1:1/0 unreachable: "),
    ],
)
def test_schedule_run_on_a_bad_or_dead_broker_is_one_line(
    workspace: Workspace, broker: str, message: str
) -> None:
    """Not a Celery traceback (a non-Redis URL), not a silent retry forever
    (a dead broker at the start), and never the broker's password."""
    add_schedules(workspace, "schedules:\n  - {name: n, job: backup, every: 60}\n")
    done = opskit(workspace, "schedule", "run", "--broker", broker)
    assert done.returncode != 0 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith(message) and "hunter2" not in line


def test_a_fault_outside_the_jobs_api_is_recorded_not_lost(workspace: Workspace) -> None:
    """A real filesystem fault (the lock folder is a file) is not an
    OpskitError: the run still records `schedule.failed`, naming it."""
    add_schedules(workspace, "schedules:\n  - {name: nightly, job: backup, every: 60}\n")
    workspace.state_dir.mkdir(parents=True, exist_ok=True)
    (workspace.state_dir / "schedule-locks").write_text("not a folder")
    failed = run_scheduled(workspace, "nightly", "dc1")
    assert failed["status"] == "failed" and failed["error"].startswith("FileExistsError: ")
    ledger = Ledger.open(workspace)
    (event,) = [e for e in ledger.events(kind="schedule.failed") if e.seq == failed["seq"]]
    assert event.actor == "schedule:nightly" and event.payload["job"] == "backup"
    assert ledger.verify().ok
