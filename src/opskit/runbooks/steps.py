"""Running runbook steps on one host: render, act, check expectations, record.

`StepRunner.run_phase` runs a phase's steps in order and stops at the first
failed one (`StepFailed`); `run_step` renders a step's parameters, performs
its action through the connector session (built-in actions map onto the
`Connector` interface, any other goes to `Connector.perform`), evaluates its
expectations and redacts what it recorded.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opskit import compliance
from opskit.connectors.base import ActionResult, Capability, Connector, HostStatus
from opskit.errors import ConnectorError, OpskitError
from opskit.runbooks.backup import SnapshotKeeper
from opskit.runbooks.context import HostContext
from opskit.runbooks.expectations import ExpectationResult, StepOutput, evaluate
from opskit.runbooks.model import Step
from opskit.runbooks.records import log_bug, now, redact_step, transcript
from opskit.runbooks.results import StepFailed, StepRun
from opskit.runbooks.templating import render_params

_NOT_PRESENT = re.compile(r"^\s*(%\s*)?\S*-config is not present\s*$", re.IGNORECASE)


class StepRunner:
    """Runs the steps of one host run (phase by phase)."""

    def __init__(self, ctx: HostContext, snapshots: SnapshotKeeper) -> None:
        self.ctx = ctx
        self.snapshots = snapshots

    def run_phase(self, phase: str, steps: Sequence[Step] | None = None) -> list[StepRun]:
        ctx = self.ctx
        runs = []
        for step in steps if steps is not None else ctx.runbook.steps_for(phase, ctx.ci.platform):
            step_run = self.run_step(step)
            runs.append(step_run)
            ctx.run.steps.append(step_run)
            if step_run.failed:
                raise StepFailed(step_run)
        return runs

    def run_step(self, step: Step) -> StepRun:
        ctx = self.ctx
        step_run = StepRun(
            phase=step.phase,
            name=step.name,
            connector=step.connector,
            action=step.action,
            started=now(),
            check=step.check,
        )
        start = time.perf_counter()
        conn: Connector | None = None
        try:
            rendered = render_params(
                step, ctx.values(), ctx.ci, ctx.templates_dir, secrets=ctx.secret_refs()
            )
            conn = ctx.connector(step.connector)
            output = self._execute(step, rendered, conn, step_run)
            step_run.expectations = list(output.checks)
            if step.expect and not (ctx.dry_run and step.phase in ("verify", "precheck")):
                step_run.expectations += evaluate(
                    ctx.render_expectations(step),
                    output,
                    conn=conn,
                    ci=ctx.ci,
                    templates_dir=ctx.templates_dir,
                )
            self._judge(step, step_run)
        except ConnectorError as exc:
            step_run.status = str(getattr(exc, "status", HostStatus.FAILED))
            step_run.error = str(exc)
            if conn is not None:
                step_run.transcript = transcript(conn)
            ctx.sessions.discard_if_broken(step.connector, exc)
            if step.on_fail == "warn":
                # A check the device cannot answer is "unavailable", not a finding.
                unavailable = step_run.status in (
                    HostStatus.REJECTED,
                    HostStatus.CAPABILITY_MISSING,
                )
                ctx.run.exceptions.append(
                    {
                        "check": step.check or step.name,
                        "step": step.name,
                        "severity": "unavailable" if unavailable else "exception",
                        "detail": str(exc),
                    }
                )
                step_run.status = "warn"
        except OpskitError as exc:
            step_run.status = "failed"
            step_run.error = str(exc)
        except Exception as exc:
            # A bug below us (a connector, a vendor library) must not leave a
            # half-changed device without its rollback: fail the step, keep
            # the traceback in the log.
            log_bug(f"{ctx.ci.name}: step {step.where} raised")
            step_run.status = "failed"
            step_run.error = f"internal error in {step.connector} {step.action}: " + (
                f"{type(exc).__name__}: {exc}"
            )
            ctx.sessions.discard_broken(step.connector, exc)
        finally:
            step_run.duration = time.perf_counter() - start
            redact_step(step_run)
            if conn is not None:
                step_run.transcript += transcript(conn)
                if not step_run.commands:
                    step_run.commands = [t["command"] for t in step_run.transcript]
        return step_run

    def _judge(self, step: Step, step_run: StepRun) -> None:
        """Failed expectations fail the step (or warn); a check keeps its facts."""
        ctx = self.ctx
        failed = [e for e in step_run.expectations if not e.passed]
        if failed:
            reason = "; ".join(f"{e.description}: {e.detail}" for e in failed)
            if step.on_fail == "warn":
                step_run.status = "warn"
                unavailable = all(e.unavailable for e in failed)
                ctx.run.exceptions.append(
                    {
                        "check": step.check or step.name,
                        "step": step.name,
                        "severity": "unavailable" if unavailable else "exception",
                        "detail": reason,
                    }
                )
            else:
                step_run.status = "failed"
                step_run.error = f"expectation failed: {reason}"
        if step.check:
            redact_step(step_run)
            ctx.run.facts[step.check] = {
                "status": step_run.status,
                "output": step_run.output,
                "data": step_run.data,
                "expectations": [e.to_dict() for e in step_run.expectations],
            }

    def _execute(
        self, step: Step, rendered: dict[str, Any], conn: Connector, step_run: StepRun
    ) -> StepOutput:
        action = step.action
        mutating = step.phase in ("apply", "rollback")
        if action == "config":
            lines = list(rendered.get("lines", []))
            step_run.commands = lines
            if self.ctx.dry_run and mutating:
                step_run.diff = self._predict(conn, lines, bool(rendered.get("replace", False)))
                step_run.status = "ok"
                return StepOutput(text=step_run.diff or "")
            self.ctx.last_running = None
            result = conn.apply_config(
                lines,
                replace=bool(rendered.get("replace", False)),
                commit_confirm=rendered.get("commit_confirm"),
            )
            if mutating:
                self.ctx.applied_any = True
            if result.committed:
                self.ctx.committed_by.add(conn.name)
            if result.pending_confirm:
                self.ctx.commit_pending = conn
                self.ctx.run.pending_confirm = True
            step_run.changed = result.changed
            step_run.status = "changed" if result.changed else "ok"
            step_run.diff = result.diff
            step_run.output = result.output
            return StepOutput(text=result.output)
        if action == "commands":
            commands = list(rendered.get("commands", []))
            step_run.commands = commands
            results = conn.send_commands(commands, parse=bool(rendered.get("parse", False)))
            step_run.output = "\n".join(r.output for r in results)
            parsed = {r.command: r.parsed for r in results if r.parsed is not None}
            if parsed:
                step_run.data["parsed"] = parsed
            return StepOutput(
                text=step_run.output, by_command={r.command: r.output for r in results}
            )
        if action == "get_config":
            source = rendered.get("source", "running")
            step_run.commands = [f"get_config {source}"]
            step_run.output = conn.get_config(source)
            if source == "running" and step.phase == "verify":
                self.ctx.last_running = (conn.name, step_run.output)
            return StepOutput(
                text=step_run.output, config=step_run.output if source == "running" else None
            )
        if action == "restore_snapshot":
            if self.ctx.run.snapshot is None:
                raise OpskitError("restore_snapshot: no snapshot was taken on this host")
            method = self.snapshots.restore(self.ctx.run.snapshot, step_run)
            return StepOutput(text=f"restored by {method}")
        if action == "config_compare":
            # Unsaved changes: the running configuration against the startup one.
            source = rendered.get("source", "startup")
            running = conn.get_config("running")
            other = conn.get_config(source)
            if _NOT_PRESENT.match(other):
                other = ""  # IOS: "startup-config is not present" (never saved)
            equal, residual = compliance.equal(other, running, self.ctx.ci.platform)
            step_run.commands = ["get_config running", f"get_config {source}"]
            step_run.output = residual
            step_run.data = {
                "equal": equal,
                "running_hash": compliance.config_hash(running, self.ctx.ci.platform),
                f"{source}_hash": compliance.config_hash(other, self.ctx.ci.platform),
            }
            if equal:
                detail = "equal"
            elif not compliance.normalize(other, self.ctx.ci.platform):
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
        if action == "save":
            step_run.commands = ["save"]
            if self.ctx.dry_run:
                step_run.status = "skipped"
                return StepOutput(text="")
            conn.save_config()
            step_run.changed = True
            step_run.status = "changed"
            return StepOutput(text="")
        if action == "facts":
            facts = conn.get_facts()
            step_run.data = {"facts": facts}
            step_run.output = json.dumps(facts, default=str, indent=1, sort_keys=True)
            return StepOutput(text=step_run.output, data=facts)
        # A connector-specific action.
        params = dict(rendered)
        playbook = params.pop("playbook", None)
        if isinstance(playbook, str):
            path = Path(playbook)
            if not path.is_absolute() and self.ctx.playbooks_dir is not None:
                path = self.ctx.playbooks_dir / path
            params["path"] = str(path)
        if self.ctx.dry_run and mutating:
            if Capability.CHECK_MODE not in conn.capabilities:
                step_run.status = "skipped"
                step_run.output = f"{conn.name} cannot run {action} in check mode; skipped"
                return StepOutput(text="")
            params.update(check=True, diff=True)
        self.ctx.last_running = None  # a connector action may change anything
        result: ActionResult = conn.perform(action, params)
        if mutating and not self.ctx.dry_run:
            self.ctx.applied_any = True
        step_run.changed = result.changed
        step_run.output = result.output
        step_run.diff = result.diff
        step_run.data = dict(result.data)
        step_run.status = (
            ("changed" if result.changed else "ok")
            if result.status in (HostStatus.OK, HostStatus.CHANGED)
            else str(result.status)
        )
        if step_run.failed and not step_run.error:
            step_run.error = f"{conn.name} {action}: {result.status}" + (
                f": {result.output.strip()[-300:]}" if result.output.strip() else ""
            )
        return StepOutput(text=result.output, data=dict(result.data), result=result)

    def _predict(self, conn: Connector, lines: list[str], replace: bool) -> str | None:
        if Capability.DRY_RUN_DIFF in conn.capabilities:
            return conn.apply_config(lines, dry_run=True, replace=replace).diff
        if Capability.GET_CONFIG in conn.capabilities:
            running = conn.get_config("running")
            if replace:
                return compliance.diff(running, "\n".join(lines), self.ctx.ci.platform)
            return compliance.predict(running, lines, self.ctx.ci.platform, host=self.ctx.ci.name)
        return None


# Step actions that never change a device's configuration.
_NO_CONFIG_EFFECT = frozenset({"get_config", "facts", "save", "config_compare"})


def predicted_diff(steps: Sequence[StepRun]) -> str | None:
    """The dry-run apply phase's diff: "" when every step predicts no change
    (nothing to do, or no apply step at all), None when some step's effect
    cannot be predicted (a connector without diff prediction or check mode,
    exec commands)."""
    diffs: list[str] = []
    for step in steps:
        if step.diff:
            diffs.append(step.diff)
        elif step.diff is None and _effect_unknown(step):
            return None
    return "\n".join(diffs)


def _effect_unknown(step: StepRun) -> bool:
    if step.action in _NO_CONFIG_EFFECT:
        return False
    if step.action in ("config", "commands"):
        return True  # no diff from the connector, or commands run as they are
    # A connector action run in check mode: unchanged is a prediction too.
    return step.status == "skipped" or step.changed


def diff_blob(steps: Sequence[StepRun]) -> dict[str, bytes | str] | None:
    diffs = [s.diff for s in steps if s.diff]
    return {"diff": "\n".join(diffs)} if diffs else None


__all__ = ["StepRunner", "diff_blob", "predicted_diff"]
