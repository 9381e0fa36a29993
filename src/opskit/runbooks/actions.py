"""How the executor runs each step action (declared in `opskit.connectors.actions`).

Each built-in action (`BUILTIN`) has one function here, keyed by its name in
`RUNNERS`; any other action is the connector's own and goes to
`Connector.perform` (`connector_action`). A function fills the `StepRun`
(commands, output, diff, data, status) and returns what the step's
expectations are checked against (`StepOutput`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opskit import configdiff
from opskit.connectors.actions import BUILTIN
from opskit.connectors.base import ActionResult, Capability, Connector
from opskit.errors import OpskitError
from opskit.hoststate import SUCCEEDED, HostState
from opskit.runbooks.backup import SnapshotKeeper
from opskit.runbooks.context import HostContext
from opskit.runbooks.expectations import ExpectationResult, StepOutput
from opskit.runbooks.model import Step
from opskit.runbooks.results import StepRun

_NOT_PRESENT = re.compile(r"^\s*(%\s*)?\S*-config is not present\s*$", re.IGNORECASE)


@dataclass
class StepCall:
    """One step action about to run: where, with what, and its record so far."""

    ctx: HostContext
    snapshots: SnapshotKeeper
    step: Step
    params: dict[str, Any]  # rendered
    conn: Connector
    run: StepRun

    @property
    def mutating_phase(self) -> bool:
        return self.step.phase in ("apply", "rollback")


ActionRunner = Callable[[StepCall], StepOutput]


def config(call: StepCall) -> StepOutput:
    ctx, conn, step_run, rendered = call.ctx, call.conn, call.run, call.params
    lines = list(rendered.get("lines", []))
    step_run.commands = lines
    if ctx.dry_run and call.mutating_phase:
        step_run.diff = _predict(ctx, conn, lines, bool(rendered.get("replace", False)))
        step_run.status = HostState.OK
        return StepOutput(text=step_run.diff or "")
    ctx.last_running = None
    result = conn.apply_config(
        lines,
        replace=bool(rendered.get("replace", False)),
        commit_confirm=rendered.get("commit_confirm"),
    )
    if call.mutating_phase:
        ctx.applied_any = True
    if result.committed:
        ctx.committed_by.add(conn.name)
    if result.pending_confirm:
        ctx.commit_pending = conn
        ctx.run.pending_confirm = True
    step_run.changed = result.changed
    step_run.status = HostState.CHANGED if result.changed else HostState.OK
    step_run.diff = result.diff
    step_run.output = result.output
    return StepOutput(text=result.output)


def _predict(ctx: HostContext, conn: Connector, lines: list[str], replace: bool) -> str | None:
    if Capability.DRY_RUN_DIFF in conn.capabilities:
        return conn.apply_config(lines, dry_run=True, replace=replace).diff
    if Capability.GET_CONFIG in conn.capabilities:
        running = conn.get_config("running")
        if replace:
            return configdiff.diff(running, "\n".join(lines), ctx.ci.platform)
        return configdiff.predict(running, lines, ctx.ci.platform, host=ctx.ci.name)
    return None


def commands(call: StepCall) -> StepOutput:
    step_run = call.run
    sent = list(call.params.get("commands", []))
    step_run.commands = sent
    results = call.conn.send_commands(sent, parse=bool(call.params.get("parse", False)))
    step_run.output = "\n".join(r.output for r in results)
    parsed = {r.command: r.parsed for r in results if r.parsed is not None}
    if parsed:
        step_run.data["parsed"] = parsed
    return StepOutput(text=step_run.output, by_command={r.command: r.output for r in results})


def get_config(call: StepCall) -> StepOutput:
    step_run = call.run
    source = call.params.get("source", "running")
    step_run.commands = [f"get_config {source}"]
    step_run.output = call.conn.get_config(source)
    if source == "running" and call.step.phase == "verify":
        call.ctx.last_running = (call.conn.name, step_run.output)
    return StepOutput(text=step_run.output, config=step_run.output if source == "running" else None)


def restore_snapshot(call: StepCall) -> StepOutput:
    snapshot = call.ctx.run.snapshot
    if snapshot is None:
        raise OpskitError("restore_snapshot: no snapshot was taken on this host")
    method = call.snapshots.restore(snapshot, call.run)
    return StepOutput(text=f"restored by {method}")


def config_compare(call: StepCall) -> StepOutput:
    """Unsaved changes: the running configuration against the startup one."""
    conn, step_run, platform = call.conn, call.run, call.ctx.ci.platform
    source = call.params.get("source", "startup")
    running = conn.get_config("running")
    other = conn.get_config(source)
    if _NOT_PRESENT.match(other):
        other = ""  # IOS: "startup-config is not present" (never saved)
    equal, residual = configdiff.equal(other, running, platform)
    step_run.commands = ["get_config running", f"get_config {source}"]
    step_run.output = residual
    step_run.data = {
        "equal": equal,
        "running_hash": configdiff.config_hash(running, platform),
        f"{source}_hash": configdiff.config_hash(other, platform),
    }
    if equal:
        detail = "equal"
    elif not configdiff.normalize(other, platform):
        detail = f"the {source} configuration is empty (never saved)"
    else:
        changed = sum(
            1
            for line in residual.splitlines()
            if line[:1] in "+-" and line[:3] not in ("+++", "---")
        )
        detail = f"{changed} line(s) differ from the {source} configuration"
    check = ExpectationResult(
        "config_compare", f"running configuration equals {source}", equal, detail
    )
    return StepOutput(text=residual, checks=[check])


def save(call: StepCall) -> StepOutput:
    step_run = call.run
    step_run.commands = ["save"]
    if call.ctx.dry_run:
        step_run.status = HostState.SKIPPED
        return StepOutput(text="")
    call.conn.save_config()
    step_run.changed = True
    step_run.status = HostState.CHANGED
    return StepOutput(text="")


def facts(call: StepCall) -> StepOutput:
    step_run = call.run
    gathered = call.conn.get_facts()
    step_run.data = {"facts": gathered}
    step_run.output = json.dumps(gathered, default=str, indent=1, sort_keys=True)
    return StepOutput(text=step_run.output, data=gathered)


def connector_action(call: StepCall) -> StepOutput:
    """A connector's own action, through `Connector.perform` (check mode in a dry run)."""
    ctx, conn, step_run, action = call.ctx, call.conn, call.run, call.step.action
    params = dict(call.params)
    playbook = params.pop("playbook", None)
    if isinstance(playbook, str):
        path = Path(playbook)
        if not path.is_absolute() and ctx.playbooks_dir is not None:
            path = ctx.playbooks_dir / path
        params["path"] = str(path)
    if ctx.dry_run and call.mutating_phase:
        if Capability.CHECK_MODE not in conn.capabilities:
            step_run.status = HostState.SKIPPED
            step_run.output = f"{conn.name} cannot run {action} in check mode; skipped"
            return StepOutput(text="")
        params.update(check=True, diff=True)
    ctx.last_running = None  # a connector action may change anything
    result: ActionResult = conn.perform(action, params)
    if call.mutating_phase and not ctx.dry_run:
        ctx.applied_any = True
    step_run.changed = result.changed
    step_run.output = result.output
    step_run.diff = result.diff
    step_run.data = dict(result.data)
    step_run.status = (
        (HostState.CHANGED if result.changed else HostState.OK)
        if result.status in SUCCEEDED
        else result.status
    )
    if step_run.failed and not step_run.error:
        step_run.error = f"{conn.name} {action}: {result.status}" + (
            f": {result.output.strip()[-300:]}" if result.output.strip() else ""
        )
    return StepOutput(text=result.output, data=dict(result.data), result=result)


#: The function that runs each built-in action (`opskit.connectors.actions.BUILTIN`).
RUNNERS: Mapping[str, ActionRunner] = {
    "config": config,
    "commands": commands,
    "get_config": get_config,
    "restore_snapshot": restore_snapshot,
    "config_compare": config_compare,
    "save": save,
    "facts": facts,
}
if set(RUNNERS) != set(BUILTIN):  # pragma: no cover - a declaration without its runner
    raise RuntimeError(f"built-in actions without a runner: {set(BUILTIN) ^ set(RUNNERS)}")


def runner_for(action: str) -> ActionRunner:
    """The function that runs ``action``: a built-in one, or the connector's."""
    return RUNNERS.get(action, connector_action)


__all__ = ["RUNNERS", "ActionRunner", "StepCall", "connector_action", "runner_for"]
