"""Running runbook steps on one host: render, act, check expectations, record.

`StepRunner.run_phase` runs a phase's steps in order and stops at the first
failed one (`StepFailed`); `run_step` renders a step's parameters, performs
its action through the connector session (`opskit.runbooks.actions`: the
built-in actions map onto the `Connector` interface, any other goes to
`Connector.perform`), evaluates its expectations and redacts what it recorded.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opskit.connectors.actions import BUILTIN, Effect
from opskit.connectors.base import Connector
from opskit.errors import ConnectorError, OpskitError
from opskit.hoststate import UNAVAILABLE, HostState
from opskit.runbooks.actions import StepCall, runner_for
from opskit.runbooks.backup import SnapshotKeeper
from opskit.runbooks.context import HostContext
from opskit.runbooks.expectations import StepOutput, evaluate
from opskit.runbooks.model import Step
from opskit.runbooks.records import log_bug, now, redact_step, transcript
from opskit.runbooks.results import StepFailed, StepRun
from opskit.runbooks.templating import render_params


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
            step_run.status = exc.status
            step_run.error = str(exc)
            if conn is not None:
                step_run.transcript = transcript(conn)
            ctx.sessions.discard_if_broken(step.connector, exc)
            if step.on_fail == "warn":
                # A check the device cannot answer is "unavailable", not a finding.
                unavailable = step_run.status in UNAVAILABLE
                ctx.run.exceptions.append(
                    {
                        "check": step.check or step.name,
                        "step": step.name,
                        "severity": "unavailable" if unavailable else "exception",
                        "detail": str(exc),
                    }
                )
                step_run.status = HostState.WARN
        except OpskitError as exc:
            step_run.status = HostState.FAILED
            step_run.error = str(exc)
        except Exception as exc:
            # A bug below us (a connector, a vendor library) must not leave a
            # half-changed device without its rollback: fail the step, keep
            # the traceback in the log.
            log_bug(f"{ctx.ci.name}: step {step.where} raised")
            step_run.status = HostState.FAILED
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
                step_run.status = HostState.WARN
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
                step_run.status = HostState.FAILED
                step_run.error = f"expectation failed: {reason}"
        if step.check:
            redact_step(step_run)
            ctx.run.facts[step.check] = {
                "status": str(step_run.status),
                "output": step_run.output,
                "data": step_run.data,
                "expectations": [e.to_dict() for e in step_run.expectations],
            }

    def _execute(
        self, step: Step, rendered: dict[str, Any], conn: Connector, step_run: StepRun
    ) -> StepOutput:
        call = StepCall(self.ctx, self.snapshots, step, rendered, conn, step_run)
        return runner_for(step.action)(call)


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
    spec = BUILTIN.get(step.action)
    effect = spec.effect if spec is not None else Effect.CHECKED
    if effect is Effect.NONE:
        return False
    if effect is Effect.DIFF:
        return True  # no diff from the connector, or commands run as they are
    # Run in check mode: unchanged is a prediction too.
    return step.status == HostState.SKIPPED or step.changed


def diff_blob(steps: Sequence[StepRun]) -> dict[str, bytes | str] | None:
    diffs = [s.diff for s in steps if s.diff]
    return {"diff": "\n".join(diffs)} if diffs else None


__all__ = ["StepRunner", "diff_blob", "predicted_diff"]
