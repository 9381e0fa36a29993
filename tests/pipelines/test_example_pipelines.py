"""The example pipelines (examples/ci/) run against the lab: their YAML is
parsed, each job's script (without the CI service's own steps: checkout,
installing opskit, uploading artifacts) runs in bash as the CI service would
run it, with `opskit` on PATH, and the approvals happen in between from other
processes, as people would give them. The JUnit files must be valid and the
evidence report written."""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from opskit.changes import ChangeService, State
from opskit.workspace import Workspace
from tests.fixtures.workspace import REPO
from tests.pipelines.junit_support import rows, system_out
from tests.pipelines.pipeline_support import lab_workspace, opskit

pytestmark = [pytest.mark.lab, pytest.mark.slow]

EXAMPLES = REPO / "examples" / "ci"
# What both pipelines do, in order (the opskit command of each line).
SEQUENCE = [
    "inventory validate",
    "runbook validate",
    "change create",
    "change submit",
    "change assess",
    "change apply --dry-run",
    "change wait",
    "change apply",
    "report change",
]
# The GitHub expressions the scripts use (GitHub substitutes them before bash runs).
EXPRESSION = re.compile(r"\$\{\{\s*[^}]*\}\}")


@dataclass
class Job:
    """One job's scripts (each run in a shell of its own: GitHub's steps;
    GitLab's script and after_script), and where the CI service passes
    variables on (read after each script)."""

    name: str
    scripts: list[str]
    env_file: str | None = None  # GITHUB_ENV, or GitLab's dotenv report
    env: dict[str, str] = field(default_factory=dict)


def github_jobs(path: Path) -> list[Job]:
    workflow = yaml.safe_load(path.read_text())
    jobs = []
    for name, job in workflow["jobs"].items():
        scripts = [
            step["run"]
            for step in job["steps"]
            if "run" in step and not step["run"].startswith("pip install")
        ]
        jobs.append(Job(name, scripts, "github.env", dict(job.get("env") or {})))
    return jobs


def gitlab_jobs(path: Path) -> list[Job]:
    pipeline = yaml.safe_load(path.read_text())
    order = pipeline["stages"]
    jobs = [
        (name, job) for name, job in pipeline.items() if isinstance(job, dict) and "stage" in job
    ]
    jobs.sort(key=lambda item: order.index(item[1]["stage"]))
    return [
        Job(
            name,
            ["\n".join(job["script"]), *job.get("after_script", [])],
            (job.get("artifacts", {}).get("reports") or {}).get("dotenv"),
        )
        for name, job in jobs
    ]


def opskit_commands(jobs: list[Job]) -> list[str]:
    commands = []
    for job in jobs:
        for line in "\n".join(job.scripts).splitlines():
            words = shlex.split(line.split(">")[0]) if line.startswith("opskit ") else []
            if words:
                command = " ".join(words[1:3])
                commands.append(command + (" --dry-run" if "--dry-run" in words else ""))
    return commands


@pytest.fixture(scope="module")
def ws(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    workspace = lab_workspace(lab, tmp_path_factory.mktemp("examples") / "ws")
    yield workspace
    workspace.close()


def shim(folder: Path) -> Path:
    """`opskit` on PATH: this interpreter's opskit (the installed entry point's stand-in)."""
    folder.mkdir()
    script = folder / "opskit"
    script.write_text(f'#!/bin/sh\nexec {shlex.quote(sys.executable)} -m opskit "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return folder


def run_job(job: Job, env: dict[str, str], cwd: Path) -> None:
    """Each script in a bash of its own (-e: its first failing line fails
    the job), then the variables it passed on added to `env`."""
    job_env = {k: EXPRESSION.sub("", str(v)) for k, v in job.env.items()}
    env_file = cwd / (job.env_file or "no.env")
    for script in job.scripts:
        result = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", EXPRESSION.sub("7", script)],
            cwd=cwd,
            env={**env, **{k: v for k, v in job_env.items() if v}, "GITHUB_ENV": str(env_file)},
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert result.returncode == 0, f"job {job.name}:\n{result.stdout}\n{result.stderr}"
        if job.env_file and env_file.exists():
            for line in env_file.read_text().splitlines():
                key, _, value = line.partition("=")
                env[key] = value


def approve(ws: Workspace, change_id: str) -> None:
    """The change's approvers, each in a process of their own, until it is approved."""
    for person in ("bob", "carol", "dave"):
        if ChangeService(ws).get(change_id).state is State.APPROVED:
            return
        opskit(ws, "change", "approve", change_id, user=person)
    assert ChangeService(ws).get(change_id).state is State.APPROVED


@pytest.mark.parametrize(
    ("name", "parse", "vlan"),
    [("github-actions.yml", github_jobs, 3101), ("gitlab-ci.yml", gitlab_jobs, 3102)],
)
def test_the_example_pipeline_runs_against_the_lab(
    ws: Workspace, lab: Any, tmp_path: Path, name: str, parse: Any, vlan: int
) -> None:
    jobs = parse(EXAMPLES / name)
    assert opskit_commands(jobs) == SEQUENCE
    env = {
        **os.environ,
        "PATH": f"{shim(tmp_path / 'bin')}{os.pathsep}{os.environ['PATH']}",
        "OPSKIT_WORKSPACE": str(ws.root),
        "OPSKIT_USER": "ci-bot",
        "RUNBOOK": "vlan-interface@1.0.0",
        "SELECT": f"name:{lab.dedicated_switch.name}",
        "VLAN_ID": str(vlan),
        "VLAN_NAME": f"users{vlan}",
        "INTERFACE": "FastEthernet0/3",
        "CI_MERGE_REQUEST_IID": "7",
        "COLUMNS": "200",
    }
    env.pop("OPSKIT_DB", None)
    work = tmp_path / "job"
    work.mkdir()
    proposal, *execution = [job for job in jobs if job.name != "validate"]
    for job in [j for j in jobs if j.name == "validate"] + [proposal]:
        run_job(job, env, work)
    change_id = env["CHANGE_ID"]
    suite = f"{change_id}.{lab.dedicated_switch.name}"
    assert rows(work / "dry-run.xml") == [(suite, "predicted diff", "ok", "")]
    assert f"vlan {vlan}" in (work / "predicted-diff.txt").read_text()

    approve(ws, change_id)
    for job in execution:
        run_job(job, env, work)
    assert ChangeService(ws).get(change_id).state is State.COMPLETED
    applied = rows(work / "apply.xml")
    assert {r[0] for r in applied} == {suite} and all(r[2] == "ok" for r in applied)
    assert f"vlan {vlan}" in system_out(work / "apply.xml")[suite]
    html = (work / "evidence.html").read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>") and change_id in html
