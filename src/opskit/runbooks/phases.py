"""The phase machine of one host run: precheck → backup → apply → verify → rollback.

`HostExecution.execute` runs the phases in order, records each boundary
(``host.precheck``, ``host.backup``, ``host.applied``, ``host.verified``...)
and, when apply or verify fails, rolls the host back and proves it
(`rollback`). A dry run runs the apply phase only, predicting its diff.
"""

from __future__ import annotations

import time
from typing import Any

from opskit.errors import OpskitError
from opskit.hoststate import HostState
from opskit.runbooks.backup import SnapshotKeeper
from opskit.runbooks.context import HostContext, RollbackMode
from opskit.runbooks.opstate_capture import StateWatch
from opskit.runbooks.records import now, transcript
from opskit.runbooks.results import HostRun, StepFailed, StepRun, ms
from opskit.runbooks.snapshot import Snapshot
from opskit.runbooks.steps import StepRunner, diff_blob, predicted_diff


class HostExecution:
    """One runbook on one CI: its context, its snapshot and its steps, phase by phase."""

    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx
        self.snapshots = SnapshotKeeper(self.ctx)
        self.steps = StepRunner(self.ctx, self.snapshots)
        spec = ctx.runbook.state_snapshot
        self.state = StateWatch(ctx, self.snapshots, spec) if spec is not None else None

    @property
    def run(self) -> HostRun:
        return self.ctx.run

    # -- the whole host ---------------------------------------------------
    def execute(self, rollback_mode: RollbackMode) -> HostRun:
        run = self.run
        run.started = now()
        start = time.perf_counter()
        try:
            if self.ctx.dry_run:
                self._dry_run()
                return run
            self._live(rollback_mode)
            return run
        finally:
            self.ctx.sessions.close()
            run.finished = now()
            run.duration = time.perf_counter() - start

    def _dry_run(self) -> None:
        run = self.run
        try:
            steps = self.steps.run_phase("apply")
        except StepFailed as exc:
            run.status = HostState.FAILED
            run.failed_phase = "apply"
            run.error = exc.step_run.error
            self.ctx.record("host.failed", {"phase": "apply", "dry_run": True, "error": run.error})
            return
        run.predicted_diff = predicted_diff(steps)
        run.status = HostState.DRY_RUN
        self.ctx.record(
            "host.dry_run",
            {"steps": [s.to_dict() for s in steps], "predicted_diff": run.predicted_diff},
            {"predicted_diff": run.predicted_diff} if run.predicted_diff else None,
        )

    def _live(self, rollback_mode: RollbackMode) -> None:
        ctx = self.ctx
        run = self.run
        book = ctx.runbook
        phase = "precheck"
        try:
            prechecks = self.steps.run_phase("precheck")
            if prechecks:
                ctx.record("host.precheck", {"steps": [s.to_dict() for s in prechecks], "ok": True})
            phase = "backup"
            if book.backup.enabled and (
                not book.backup.platforms or ctx.ci.platform in book.backup.platforms
            ):
                self.snapshots.backup()
            if self.state is not None:
                self.state.before()
            phase = "apply"
            started = time.perf_counter()
            applied = self.steps.run_phase("apply")
            if applied:
                ctx.record(
                    "host.applied",
                    {
                        "steps": [s.to_dict() for s in applied],
                        "changed": any(s.changed for s in applied),
                        "duration_ms": ms(time.perf_counter() - started),
                    },
                    diff_blob(applied),
                )
            phase = "verify"
            started = time.perf_counter()
            self._compare_state()
            verified = self.steps.run_phase("verify")
            if ctx.commit_pending is not None:
                ctx.commit_pending.confirm_commit()
                confirmed = transcript(ctx.commit_pending)
                ctx.commit_pending = None
                run.pending_confirm = False
                ctx.record("host.confirmed", {"transcript": confirmed})
            self._finish_verified(verified, time.perf_counter() - started)
        except StepFailed as exc:
            self._fail(phase, exc.step_run, rollback_mode)
        except OpskitError as exc:
            # The backup itself failed (or confirming a commit did).
            self._fail(phase, None, rollback_mode, error=str(exc))

    def _compare_state(self) -> None:
        """The state after apply against the state before: an unexplained
        difference fails verification (before any verify step runs)."""
        if self.state is None:
            return
        failed = self.state.after()
        if failed is not None:
            self.run.steps.append(failed)
            raise StepFailed(failed)

    def _finish_verified(self, verified: list[StepRun], duration: float) -> None:
        run = self.run
        payload: dict[str, Any] = {
            "steps": [s.to_dict() for s in verified],
            "duration_ms": ms(duration),
            "exceptions": run.exceptions,
        }
        blobs: dict[str, bytes | str] | None = None
        if run.snapshot is not None and self.ctx.applied_any:
            after = self.snapshots.fresh_running(run.snapshot) or self.snapshots.capture()
            run.config_hash = after.hash
            equal, run.diff = run.snapshot.compare(after)
            payload.update(config_hash=after.hash, changed=not equal)
            # The configuration after the change, stored once: the verify
            # step that fetched it refers to this blob (`share_blob_texts`).
            blobs = {"config": after.config} if after.config else {}
            if run.diff:
                blobs["diff"] = run.diff
        if verified or self.ctx.applied_any:
            self.ctx.record("host.verified", payload, blobs)
        run.status = HostState.COMPLETED

    def _fail(
        self,
        phase: str,
        step_run: StepRun | None,
        rollback_mode: RollbackMode,
        error: str | None = None,
    ) -> None:
        ctx = self.ctx
        run = self.run
        run.failed_phase = phase
        run.error = error or (step_run.error if step_run else None) or f"{phase} failed"
        if phase == "verify" and step_run is not None:
            ctx.record(
                "host.verify_failed",
                {
                    "step": step_run.to_dict(),
                    "steps": [s.to_dict() for s in run.steps if s.phase == "verify"],
                    "error": run.error,
                },
            )
        # A failed apply step may have changed part of the device; a failed
        # verification after no apply step (read-only runbooks) changed nothing.
        changed_something = ctx.applied_any or phase == "apply"
        if phase in ("precheck", "backup") or not changed_something:
            run.status = HostState.FAILED
            ctx.record("host.failed", {"phase": phase, "error": run.error, "rolled_back": False})
            return
        if rollback_mode == "never":
            run.status = HostState.FAILED
            ctx.record(
                "host.failed",
                {
                    "phase": phase,
                    "error": run.error,
                    "rolled_back": False,
                    "rollback": "not requested",
                },
            )
            return
        if self.rollback(run.snapshot):
            run.status = HostState.ROLLED_BACK
        else:
            run.status = HostState.ROLLBACK_FAILED
        ctx.record(
            "host.failed",
            {
                "phase": phase,
                "error": run.error,
                "rolled_back": run.status == HostState.ROLLED_BACK,
            },
        )

    # -- rollback ---------------------------------------------------------
    def rollback(self, snapshot: Snapshot | None) -> bool:
        """Rolls back and proves it; True when the host is back to its snapshot."""
        ctx = self.ctx
        start = time.perf_counter()
        method = "steps"
        steps_before = len(self.run.steps)
        error: str | None = None
        try:
            if ctx.runbook.rollback == "auto":
                if snapshot is None:
                    raise OpskitError("automatic rollback needs a backup snapshot; none was taken")
                method = self.snapshots.auto_rollback(snapshot)
            elif ctx.runbook.rollback == "none":
                method = "none"
            else:
                self.steps.run_phase("rollback")
        except StepFailed as exc:
            error = exc.step_run.error or f"rollback step {exc.step_run.name} failed"
        except OpskitError as exc:
            error = str(exc)
        proof = None
        if error is None and snapshot is not None:
            try:
                fetched = ctx.restored.pop(snapshot.connector, None)
                proof = self.snapshots.prove(snapshot, method, fetched)
            except OpskitError as exc:
                error = f"cannot fetch the configuration to prove the rollback: {exc}"
        ok = error is None and (proof is None or proof["equal"])
        if error is None and proof is not None and not proof["equal"]:
            error = "the configuration after rollback differs from the snapshot"
        self.run.proof = proof
        payload = {
            "method": method,
            "steps": [s.to_dict() for s in self.run.steps[steps_before:]],
            "proof": proof,
            "error": error,
            "duration_ms": ms(time.perf_counter() - start),
        }
        if ok and self.state is not None and (state_proof := self.state.after_rollback()):
            payload["state_proof"] = state_proof
        blobs = (
            {"residual_diff": proof["residual_diff"]} if proof and proof["residual_diff"] else None
        )
        ctx.record("host.rolled_back" if ok else "host.rollback_failed", payload, blobs)
        if not ok:
            self.run.error = (
                f"{self.run.error}; rollback failed: {error}" if self.run.error else error
            )
        return ok


__all__ = ["HostExecution"]
