"""The pipeline commands on the real lab (emulated IOS switches), each a real
`opskit` process on one shared workspace: `change wait` released by an
approval another process makes, `change apply [--dry-run] --junit` and
`inspect --junit` (files valid against the Ant JUnit schema), and
`change run --standard` (the same ledger records as the verbs one by one)."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from opskit.changes import ChangeService, State
from opskit.workspace import Workspace
from tests.pipelines.junit_support import rows, system_out
from tests.pipelines.pipeline_support import lab_workspace, opskit

pytestmark = [pytest.mark.lab, pytest.mark.slow]


@dataclass
class Pipeline:
    ws: Workspace
    switch: str  # the lab's dedicated switch: these tests may leave VLANs on it

    def service(self) -> ChangeService:
        return ChangeService(self.ws)

    def kinds(self, change_id: str) -> list[str]:
        return [e.kind for e in self.service().context.ledger.events(change_id=change_id)]


@pytest.fixture(scope="module")
def pipeline(lab: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    ws = lab_workspace(lab, tmp_path_factory.mktemp("pipeline") / "ws")
    yield Pipeline(ws, lab.dedicated_switch.name)
    ws.close()


def assessed(p: Pipeline, vlan: int, env: dict[str, str] | None = None, **params: Any) -> str:
    """A low-risk chg-test change on the dedicated switch, assessed (needs bob)."""
    args = ["--param", f"vlan_id={vlan}"]
    for key, value in params.items():
        args += ["--param", f"{key}={json.dumps(value)}"]
    created = opskit(p.ws, "change", "create", "--runbook", "chg-test@1.0.0",
                     "--select", f"name:{p.switch}", "--title", f"VLAN {vlan}", *args,
                     "--json", env=env)  # fmt: skip
    assert created.returncode == 0, created.stderr
    change_id = json.loads(created.stdout)["id"]
    for verb in ("submit", "assess"):
        assert opskit(p.ws, "change", verb, change_id, env=env).returncode == 0
    return change_id


def waiting(ws: Workspace, change_id: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "--as", "ci-bot",
         "change", "wait", change_id, "--interval", "0.2", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


def vlan() -> int:
    return random.randint(2000, 3999)


# -- change wait ---------------------------------------------------------------------------
def test_change_wait_is_released_by_an_approval_from_another_process(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    change_id = assessed(pipeline, vlan())
    waiter = waiting(pipeline.ws, change_id, "--for", "approved", "--timeout", "120")
    time.sleep(2.0)
    assert waiter.poll() is None  # still waiting: nobody approved yet
    approval = opskit(pipeline.ws, "change", "approve", change_id, user="bob")
    assert approval.returncode == 0, approval.stderr
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0, err
    assert out.strip() == f"{change_id}: approved (approved)"

    # --for completed: released by the apply another process runs (with --junit).
    waiter = waiting(pipeline.ws, change_id, "--for", "completed", "--timeout", "120")
    junit = tmp_path / "apply.xml"
    applied = opskit(pipeline.ws, "change", "apply", change_id, "--junit", str(junit))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    out, err = waiter.communicate(timeout=60)
    assert waiter.returncode == 0 and out.strip() == f"{change_id}: completed (completed)"
    suite = f"{change_id}.{pipeline.switch}"
    assert [r[:3] for r in rows(junit) if r[1] != "backup: snapshot"][:2] == [
        (suite, "apply: create the VLAN", "ok"),
        (suite, "verify: the VLAN is configured", "ok"),
    ]


def test_change_wait_exit_codes_rejected_and_timeout(pipeline: Pipeline) -> None:
    change_id = assessed(pipeline, vlan())
    timed_out = opskit(pipeline.ws, "change", "wait", change_id, "--timeout", "0.5",
                       "--interval", "0.2", user="ci-bot")  # fmt: skip
    assert timed_out.returncode == 3
    assert timed_out.stdout.startswith(f"{change_id}: still assessed after")
    waiter = waiting(pipeline.ws, change_id, "--timeout", "120")
    time.sleep(1.0)
    rejected = opskit(pipeline.ws, "change", "reject", change_id, "--reason", "no", user="bob")
    assert rejected.returncode == 0, rejected.stderr
    out, _ = waiter.communicate(timeout=60)
    assert waiter.returncode == 1 and out.strip() == f"{change_id}: rejected (not approved)"
    unknown = opskit(pipeline.ws, "change", "wait", "CHG-999999", "--timeout", "1")
    assert unknown.returncode != 0 and unknown.stderr.count("\n") == 1
    assert "CHG-999999" in unknown.stderr and "Traceback" not in unknown.stderr


# -- JUnit from apply --dry-run, a failed apply, inspect -------------------------------------
def test_dry_run_and_failed_apply_junit_carry_the_diff_and_the_reason(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    secret = "canary-" + uuid.uuid4().hex
    number = vlan()
    env = {"PIPELINE_CANARY": secret}  # a pipeline's secret, set for every step
    # Verification expects another name on this switch: the host fails and is rolled back.
    change_id = assessed(pipeline, number, env, expect_names={pipeline.switch: "other"},
                         community={"env": "PIPELINE_CANARY"})  # fmt: skip
    assert opskit(pipeline.ws, "change", "approve", change_id, user="bob").returncode == 0
    dry = tmp_path / "dry-run.xml"
    result = opskit(pipeline.ws, "change", "apply", change_id, "--dry-run", "--junit", str(dry),
                    env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    suite = f"{change_id}.{pipeline.switch}"
    assert rows(dry) == [(suite, "predicted diff", "ok", "")]
    assert f"vlan {number}" in system_out(dry)[suite]

    junit = tmp_path / "apply.xml"
    result = opskit(pipeline.ws, "change", "apply", change_id, "--junit", str(junit), env=env)
    assert result.returncode == 1
    failures = [r for r in rows(junit) if r[2] == "failure"]
    assert [r[1] for r in failures] == ["verify: the VLAN is configured"]
    assert " name other" in failures[0][3]
    assert f"vlan {number}" in system_out(junit)[suite]  # the diff the apply made
    for path in (dry, junit):
        assert secret not in path.read_text()


def test_inspect_junit_has_a_case_per_check(pipeline: Pipeline, tmp_path: Path) -> None:
    junit = tmp_path / "inspect.xml"
    result = opskit(pipeline.ws, "inspect", "--select", f"name:{pipeline.switch}",
                    "--param", "backup_max_age_hours=0", "--junit", str(junit))  # fmt: skip
    assert result.returncode == 1, result.stderr  # no backup that young: an exception
    found = rows(junit)
    assert {r[0] for r in found} == {f"inspection.{pipeline.switch}"}
    assert ("backup_age", "failure") in {(r[1], r[2]) for r in found}
    bad = opskit(pipeline.ws, "inspect", "--junit", str(tmp_path / "no" / "x.xml"))
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert not (tmp_path / "no").exists()


# -- change run --standard -------------------------------------------------------------------
def test_run_standard_records_what_the_verbs_record_one_by_one(
    pipeline: Pipeline, tmp_path: Path
) -> None:
    target = f"name:{pipeline.switch}"
    by_verbs = opskit(pipeline.ws, "change", "create", "--runbook", "chg-test@1.0.0", "--type",
                      "standard", "--select", target, "--title", "verbs", "--param",
                      f"vlan_id={vlan()}", "--json", user="ci-bot")  # fmt: skip
    verbs_id = json.loads(by_verbs.stdout)["id"]
    for verb in ("submit", "assess", "apply"):
        assert opskit(pipeline.ws, "change", verb, verbs_id, user="ci-bot").returncode == 0

    junit = tmp_path / "run.xml"
    result = opskit(pipeline.ws, "change", "run", "--standard", "--runbook", "chg-test@1.0.0",
                    "--select", target, "--title", "one command", "--param",
                    f"vlan_id={vlan()}", "--junit", str(junit), "--json",
                    user="ci-bot")  # fmt: skip
    assert result.returncode == 0, result.stderr
    run_id = json.loads(result.stdout)["change_id"]
    assert pipeline.service().get(run_id).state is State.COMPLETED
    assert pipeline.kinds(run_id) == pipeline.kinds(verbs_id)
    assert pipeline.kinds(run_id)[:4] == [
        "change.created", "change.submitted", "change.assessed", "change.approved"
    ]  # fmt: skip
    assert all(r[2] == "ok" for r in rows(junit))


def test_run_standard_refuses_a_runbook_the_policy_does_not_preapprove(
    pipeline: Pipeline,
) -> None:
    before = len(pipeline.service().list(include_cancelled=True))
    result = opskit(pipeline.ws, "change", "run", "--standard", "--runbook", "chg-test@2.0.0",
                    "--select", f"name:{pipeline.switch}", "--title", "t", "--param",
                    "vlan_id=5", user="ci-bot")  # fmt: skip
    assert result.returncode != 0 and result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert "run --standard refused" in result.stderr
    assert "is not a pre-approved standard change" in result.stderr
    assert len(pipeline.service().list(include_cancelled=True)) == before
    refused = list(pipeline.service().context.ledger.events(kind="change.refused"))
    assert refused[-1].payload["action"] == "run --standard"
    no_flag = opskit(pipeline.ws, "change", "run", "--runbook", "chg-test@1.0.0", "--select",
                     "x", "--title", "t", user="ci-bot")  # fmt: skip
    assert no_flag.returncode == 2 and "only --standard" in no_flag.stderr
