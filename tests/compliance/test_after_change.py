"""Compliance after a change, judged while the rollout runs (`AfterChange`),
in the rollout's process or in a helper process (`apart`): hosts judged as
they finish are recorded as one evaluation at the end would record them; a
host whose configuration is not the one judged early is judged again;
judging early never raises; a helper process that dies loses nothing."""

from __future__ import annotations

import os
import signal
from typing import Any

import pytest

from opskit.changes.summary import HostSummary
from opskit.compliance.after import AfterChange, after_change
from opskit.compliance.runs import RESULT_KIND
from opskit.digests import sha256_text
from opskit.hoststate import HostState
from opskit.ledger.core import Ledger
from opskit.runbooks.results import HostRun, StepRun
from opskit.workspace import Workspace
from tests.compliance.support import CONFIGS

HOSTS = {  # example inventory CI -> a real IOS configuration (tests/data/configs)
    "core-sw1": "batfish-example-as2core1.cfg",
    "core-sw2": "batfish-example-as2core2.cfg",
}


def _outcome(name: str, config: str) -> HostSummary:
    """A host the change modified, whose verification fetched `config`."""
    run = HostRun(ci=name, platform="cisco_ios", runbook="bench@1.0.0")
    run.steps.append(StepRun(phase="apply", name="push", connector="netmiko",
                             action="config", changed=True))  # fmt: skip
    run.steps.append(StepRun(phase="verify", name="fetch", connector="netmiko",
                             action="get_config", commands=["get_config running"],
                             output=config))  # fmt: skip
    return HostSummary(name, HostState.OK, batch=0, ran=True, run=run)


def _recorded(ws: Workspace, run_seq: int) -> dict[str, dict[str, Any]]:
    """Per CI, what the run's result records (features, config blob)."""
    out = {}
    for event in Ledger.open(ws).events(kind=RESULT_KIND, after_seq=run_seq):
        if event.payload.get("run") == run_seq:
            out[event.ci] = {"features": event.payload["features"], "config": event.blobs["config"]}
    return out


@pytest.mark.parametrize("apart", [False, True], ids=["in-process", "helper-process"])
def test_hosts_judged_as_they_finish_are_recorded_as_at_the_end(
    workspace: Workspace, apart: bool
) -> None:
    configs = {n: (CONFIGS / "cisco_ios" / f).read_text() for n, f in HOSTS.items()}
    outcomes = {n: _outcome(n, c) for n, c in configs.items()}
    at_the_end = after_change(workspace, "CHG-000001", "alice", outcomes, "example")

    early = AfterChange(workspace, "CHG-000002", "alice", "example", apart=apart)
    assert (early.helper_pid is not None) is apart
    assert early.wait_for_helper(60) is apart
    for outcome in outcomes.values():  # as the index writer hands them over
        early.judge([outcome])
    early.close()  # a helper process has judged everything it was sent
    # Judged early means not judged again: without the template now, a host
    # judged at the end would have its features unknown (no intended configuration).
    template = workspace.templates_dir / "intended" / "cisco_ios.j2"
    text = template.read_text()
    template.unlink()
    judged_early = early.finish(outcomes)
    assert "error" not in judged_early["compliance"]
    ends = at_the_end["compliance"], judged_early["compliance"]
    assert {n: h["state"] for n, h in ends[0]["hosts"].items()} == {
        n: h["state"] for n, h in ends[1]["hosts"].items()
    }
    assert _recorded(workspace, ends[0]["run_seq"]) == _recorded(workspace, ends[1]["run_seq"])

    # A configuration other than the one judged early is judged again (the
    # template is back; without it, that host could not be evaluated).
    template.write_text(text)
    stale = AfterChange(workspace, "CHG-000003", "alice", "example", apart=apart)
    stale.wait_for_helper(60)
    stale.judge([_outcome("core-sw1", configs["core-sw2"])])
    result = stale.finish(outcomes)["compliance"]
    recorded = _recorded(workspace, result["run_seq"])
    assert recorded["core-sw1"]["config"] == sha256_text(configs["core-sw1"])
    assert recorded == _recorded(workspace, ends[0]["run_seq"])

    template.write_text("hostname {{ ci.name }\n")  # a template error: reported at the end
    broken = AfterChange(workspace, "CHG-000004", "alice", "example", apart=apart)
    broken.wait_for_helper(60)
    broken.judge(outcomes.values())  # never raises
    error = broken.finish(outcomes)["compliance"]["error"]
    assert error.startswith("compliance not evaluated after the change: CI core-sw1: templates/")


def _judged_in_process(ws: Workspace, change_id: str) -> tuple[dict[str, HostSummary], Any]:
    """The example hosts' outcomes, and what judging them here records."""
    configs = {n: (CONFIGS / "cisco_ios" / f).read_text() for n, f in HOSTS.items()}
    outcomes = {n: _outcome(n, c) for n, c in configs.items()}
    return outcomes, after_change(ws, change_id, "alice", outcomes, "example")["compliance"]


def _same_as(ws: Workspace, result: dict[str, Any], expected: dict[str, Any]) -> None:
    assert {n: h["state"] for n, h in result["hosts"].items()} == {
        n: h["state"] for n, h in expected["hosts"].items()
    }
    assert _recorded(ws, result["run_seq"]) == _recorded(ws, expected["run_seq"])


def test_a_helper_process_that_dies_loses_no_host(workspace: Workspace) -> None:
    outcomes, expected = _judged_in_process(workspace, "CHG-000005")
    after = AfterChange(workspace, "CHG-000006", "alice", "example", apart=True)
    pid = after.helper_pid
    assert pid is not None and after.wait_for_helper(60)
    first, second = outcomes.values()
    after.judge([first])
    os.kill(pid, signal.SIGKILL)  # whatever it had judged is lost with it
    after.judge([second])  # refused by a dead process, or never answered
    _same_as(workspace, after.finish(outcomes)["compliance"], expected)


def test_a_helper_not_ready_is_not_waited_for(workspace: Workspace) -> None:
    outcomes, expected = _judged_in_process(workspace, "CHG-000007")
    after = AfterChange(workspace, "CHG-000008", "alice", "example", apart=True)
    pid = after.helper_pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a helper still starting, as far as the rollout can tell
    after.judge(outcomes.values())  # so judged in this process meanwhile
    template = workspace.templates_dir / "intended" / "cisco_ios.j2"
    template.unlink()  # judging at the end could not evaluate these hosts any more
    result = after.finish(outcomes)["compliance"]  # the helper ended, not waited for
    _same_as(workspace, result, expected)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended and reaped


def test_a_judge_compiles_a_template_once_for_all_its_batches(workspace: Workspace) -> None:
    """The index writer hands hosts over in many small batches: each batch
    renders from the templates compiled for the first, and a template
    edited meanwhile is compiled anew and judged by its new text."""
    from opskit.compliance.intended import TemplateCache
    from opskit.compliance.runs import ConfigJudge, plan_run
    from opskit.inventory import load_workspace_inventory

    configs = {n: (CONFIGS / "cisco_ios" / f).read_text() for n, f in HOSTS.items()}
    inventory = load_workspace_inventory(workspace, "example")
    cache = TemplateCache()
    first = plan_run(workspace, inventory, "name:core-sw1", templates=cache)
    compiled = len(cache)
    assert compiled >= 1 and first[0].intended is not None
    again = plan_run(workspace, inventory, "name:core-sw2", templates=cache)
    assert len(cache) == compiled and again[0].intended is not None

    judge = ConfigJudge(workspace, "example", origin="CHG-000001 verify")
    one = judge({"core-sw1": configs["core-sw1"]})["core-sw1"]
    two = judge({"core-sw2": configs["core-sw2"]})["core-sw2"]
    assert one[0].intended is not None and two[0].intended is not None
    template = workspace.templates_dir / "intended" / "cisco_ios.j2"
    template.write_text("hostname {{ ci.name }}\n")
    edited = judge({"core-sw1": configs["core-sw1"]})["core-sw1"]
    assert edited[0].intended is not None
    assert edited[0].intended.text == "hostname core-sw1\n"
    assert edited[0].intended.template_digest != one[0].intended.template_digest
