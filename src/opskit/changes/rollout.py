"""Applying a change: checks, locks, batches, canary, error budget, group
caps, and the change's end state.

The per-host work (precheck → backup → apply → verify, and rollback) is
`opskit.changes.hostrun`'s, over the runbook executor; this module runs it
across hosts in the strategy's batches, every step recorded in the ledger as
it happens, so that a crash (kill -9) leaves a ledger that verifies and a
change whose per-host state is known (`opskit.changes.recovery`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from opskit.changes import preflight, rules
from opskit.changes.context import EngineContext, select_names
from opskit.changes.heartbeat import Heartbeat
from opskit.changes.hostrun import HostRecorder, HostWork
from opskit.changes.model import ChangeRequest, State
from opskit.changes.prediction import open_pool, predict_diffs
from opskit.changes.runners import runner_blockers
from opskit.changes.summary import ChangeSummary, DryRunSummary, HostSummary
from opskit.errors import ChangeRefused, OpskitError
from opskit.hoststate import RUN_FAILED, HostState, count_states
from opskit.inventory.core import Inventory
from opskit.inventory.observed import ObservedStore
from opskit.ledger.groupcommit import QueueDrainer

if TYPE_CHECKING:
    from opskit.compliance.after import AfterChange
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory.model import CI
    from opskit.runbooks.model import Runbook, Strategy

# Finished hosts wait this long for others to share their index transaction.
INDEX_LINGER_SECONDS = 0.25
# From this many hosts the after-change compliance is judged in a helper process.
JUDGE_APART_FROM_HOSTS = 50

ProgressCallback = Callable[[str, str, str], None]  # (ci, status, change_id)


class Rollout:
    """Applies one change across its hosts (see the module docstring)."""

    def __init__(
        self,
        ctx: EngineContext,
        change_id: str,
        actor: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.ctx = ctx
        self.journal = ctx.journal
        self.store = ctx.store
        self.change_id = change_id
        self.actor = actor
        self.work = HostWork(ctx, change_id, actor)
        self.progress = progress or (lambda ci, status, change_id: None)
        self.outcomes: dict[str, HostSummary] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._observed: ObservedStore | None = None
        # A host's non-backup steps are queued while its thread goes on (see _HostRecorder).
        self._queue_steps = False
        # Writes finished hosts' index rows and CMDB records off their threads.
        self._index: QueueDrainer[tuple[float, HostSummary]] | None = None
        # Compliance after the change, judged as hosts finish (by the index writer).
        self._after: AfterChange | None = None

    # -- recording -------------------------------------------------------------
    def recorder(self, ci: str) -> Callable[..., Any]:
        """The step recorder of one host, each step durable at once (`HostWork.recorder`)."""
        return self.work.recorder(ci)

    def host_recorder(self, ci: str) -> HostRecorder:
        """The recorder for one host's run (`HostWork.host_recorder`)."""
        return self.work.host_recorder(ci, queue=self._queue_steps)

    # -- entry points ------------------------------------------------------------
    def run(self, *, dry_run: bool = False) -> ChangeSummary | DryRunSummary:
        """Applies the change: its summary; with `dry_run`, the predicted
        diffs (a `DryRunSummary`) and nothing changed."""
        change = self.store.get(self.change_id)
        book = self.ctx.catalog.get(change.runbook_ref)
        inv = self.ctx.inventory(change.inventory)
        if dry_run:
            return self._dry_run(change, book, inv)
        # One session pool for the final checks and the rollout: a device's
        # session opened to predict its diff is reused to change it. `width`
        # sessions work on devices at once; up to `width` more are being
        # closed by the hosts that are done with them (see `_host`).
        width = max(1, min(int(book.strategy.concurrency), len(change.targets)))
        with open_pool(2 * width) as pool:
            return self._run(change, book, inv, pool)

    def _run(
        self, change: ChangeRequest, book: Runbook, inv: Inventory, pool: ConnectionPool
    ) -> ChangeSummary:
        reasons = preflight.apply_blockers(self.ctx, change, self.actor)
        reasons += runner_blockers(
            self.ctx.runner, self.ctx.ws, [inv.get(n) for n in change.targets]
        )
        if (
            not reasons
            and change.predicted_diff
            and any((e or {}).get("hash") for e in change.predicted_diff.values())
        ):
            # The approval covers the predicted diff: predict again and compare.
            now = predict_diffs(
                book,
                [inv.get(n) for n in change.targets],
                change.parameters,
                pool=pool,
            )
            drift = preflight.binding_drift(self.ctx, change, predicted=now)
            if drift:
                reasons = [rules.stale_reason(drift)]
        if not reasons:
            blocked = preflight.group_blockers(self.ctx, change, inv)
            if blocked:
                reasons.append(blocked)
        if reasons:
            self.journal.refuse(change.id, self.actor, "apply", "; ".join(reasons))
        try:
            self.store.acquire_locks(change)
        except ChangeRefused as exc:
            self.journal.record(
                "change.refused",
                actor=self.actor,
                change_id=change.id,
                payload={"action": "apply", "reason": str(exc)},
            )
            raise
        try:
            if change.state is State.APPROVED:
                change = preflight.schedule(self.ctx, change.id, self.actor)
            plan = self.plan_batches(change.targets, book.strategy)
            self.journal.transition(
                change,
                State.IN_PROGRESS,
                actor=self.actor,
                payload={
                    "runner": {"host": socket.gethostname(), "pid": os.getpid()},
                    "batches": plan,
                    "strategy": book.strategy.describe(),
                    "runbook_digest": book.digest,
                },
            )
            change = self.store.get(change.id)
            self.store.set_runner(change.id, alive=True)
            self.store.init_hosts(change.id, plan)
            with Heartbeat(self.store, change.id), self.journal.group_commit():
                return self._execute(change, book, inv, plan, pool)
        finally:
            if self._after is not None:
                self._after.close()  # its helper process, on any way out
            self.store.release_locks(change.id)
            self.store.set_runner(change.id, alive=False)

    @staticmethod
    def plan_batches(targets: list[str], strategy: Strategy) -> list[list[str]]:
        """Canary hosts first (by name, or the first N), then batches by count or percent."""
        remaining = list(targets)
        batches: list[list[str]] = []
        canary = strategy.canary
        if isinstance(canary, tuple | list):
            first = [n for n in canary if n in remaining]
        else:
            first = remaining[: int(canary or 0)]
        if first:
            batches.append(first)
            remaining = [n for n in remaining if n not in first]
        size = strategy.batch_size(len(remaining)) if remaining else 1
        for start in range(0, len(remaining), size):
            batches.append(remaining[start : start + size])
        return batches

    # -- the rollout proper ------------------------------------------------------
    def _execute(
        self,
        change: ChangeRequest,
        book: Runbook,
        inv: Inventory,
        plan: list[list[str]],
        pool: ConnectionPool,
    ) -> ChangeSummary:
        strategy = book.strategy
        total = len(change.targets)
        stopped_reason: str | None = None
        caps = {cap.group: cap.max_changing for cap in self.ctx.policy.concurrency}
        local_caps = {g: threading.Semaphore(n) for g, n in caps.items()}
        width = max(1, min(int(strategy.concurrency), total))
        # `width` hosts do device work at once; a host that is done with its
        # device waits for its steps to be durable on one of `width` more
        # threads, while the next host starts.
        device = threading.BoundedSemaphore(width)
        self._after = self._after_change(change)
        with self.ctx.runner(2 * width) as threads:
            self._queue_steps = True
            # Finished hosts are indexed in the background, all those that finished
            # within INDEX_LINGER_SECONDS in one transaction; close() writes what is
            # left at once and raises the first write error.
            self._index = QueueDrainer(
                lambda done: self._write_index(change.id, [o for _, o in done]),
                name="change index",
                hold=_index_hold,
            )
            for batch_no, names in enumerate(plan):
                futures = [
                    threads.submit(
                        self._host,
                        change,
                        book,
                        inv.get(n),
                        batch_no,
                        pool,
                        local_caps,
                        device,
                    )
                    for n in names
                ]
                for future in futures:
                    outcome = future.result()
                    self.outcomes[outcome.ci] = outcome
                failed = sum(1 for o in self.outcomes.values() if o.status in RUN_FAILED)
                is_canary = batch_no == 0 and bool(strategy.canary) and len(plan) > 1
                if is_canary and any(self.outcomes[n].status != HostState.OK for n in names):
                    stopped_reason = f"the canary batch failed ({failed} host(s))"
                elif strategy.budget_spent(failed, total):
                    stopped_reason = f"error budget spent: {failed} of {total} host(s) failed"
                if stopped_reason:
                    for later in plan[batch_no + 1 :]:
                        for name in later:
                            skipped = HostState.SKIPPED
                            self.outcomes[name] = HostSummary(name, skipped, batch=None)
                            self.store.set_host(
                                change.id, name, skipped, detail={"reason": stopped_reason}
                            )
                            self.progress(name, skipped, change.id)
                    self.journal.record(
                        "change.halted",
                        actor=self.actor,
                        change_id=change.id,
                        payload={"reason": stopped_reason, "on_failure": strategy.on_failure},
                    )
                    break
            self._close_index()  # the rollback below writes these hosts' rows itself
            if stopped_reason and strategy.on_failure == "rollback_all":
                done = [o for o in self.outcomes.values() if o.status == HostState.OK and o.ran]

                def rollback(outcome: HostSummary) -> HostSummary:
                    with device:
                        ci = inv.get(outcome.ci)
                        return self.rollback_one(change, book, ci, outcome, pool)

                list(threads.map(rollback, done))
        self._queue_steps = False
        self._close_index()
        return self._finish(change, book, inv, stopped_reason)

    def _host(
        self,
        change: ChangeRequest,
        book: Runbook,
        ci: CI,
        batch_no: int,
        pool: ConnectionPool,
        local_caps: dict[str, threading.Semaphore],
        device: threading.BoundedSemaphore | None = None,
    ) -> HostSummary:
        # Always taken before a group cap, so no thread holding a cap waits for it.
        device_held = device is not None and device.acquire()
        groups = [g for g in ci.groups if g in local_caps]
        for group in groups:
            local_caps[group].acquire()
        try:
            self._acquire_slots(change.id, ci, groups)
            # No index write here: the ledger's host.backup says it started.
            self.progress(ci.name, HostState.RUNNING, change.id)
            recorder = self.host_recorder(ci.name)
            outcome = self.work.run(change, book, ci, batch_no, pool, recorder)
            if device_held:
                # Its sessions are back in the pool: the next host may start.
                device.release()  # type: ignore[union-attr]
                device_held = False
            # This rollout is done with the device: its sessions are closed
            # here, off the next host's path (which would otherwise close an
            # idle session to make room before opening its own).
            pool.close_idle(ci.name)
            try:
                recorder.flush()  # every step of this host is durable from here
            except OpskitError as exc:
                outcome.status, outcome.error = HostState.FAILED, f"recording a step failed: {exc}"
                outcome.detail["error"] = outcome.error
            # The executor has already rolled a failed host back (unless the
            # strategy is `stop`) and proven it by configuration comparison.
            if self._index is not None:
                self._index.put((time.monotonic(), outcome), wake=False)
            else:
                self._write_index(change.id, [outcome])
            self.progress(ci.name, outcome.status, change.id)
            return outcome
        finally:
            if groups:
                self._release_slots(change.id, ci.name)
            for group in groups:
                local_caps[group].release()
            if device_held:
                device.release()  # type: ignore[union-attr]

    def rollback_one(
        self,
        change: ChangeRequest,
        book: Runbook,
        ci: CI,
        outcome: HostSummary,
        pool: ConnectionPool,
    ) -> HostSummary:
        """Rolls one host back (`HostWork.roll_back`), then indexes it and
        records it in the CMDB."""
        self.work.roll_back(change, book, ci, outcome, pool)
        self.store.set_host(change.id, ci.name, outcome.status, detail=outcome.detail)
        self._update_cmdb(change.id, outcome)
        self.progress(ci.name, outcome.status, change.id)
        return outcome

    def _acquire_slots(self, change_id: str, ci: CI, groups: list[str]) -> None:
        caps = {cap.group: cap.max_changing for cap in self.ctx.policy.concurrency}
        self.store.acquire_slots(change_id, ci.name, groups, caps)

    def _release_slots(self, change_id: str, ci: str) -> None:
        self.store.release_slots(change_id, ci)

    # -- the end -----------------------------------------------------------------
    def _finish(
        self, change: ChangeRequest, book: Runbook, inv: Inventory, stopped_reason: str | None
    ) -> ChangeSummary:
        counts = count_states(o.status for o in self.outcomes.values())
        change = self.journal.transition(
            change, State.VERIFYING, actor=self.actor, payload={"counts": counts}
        )
        ok, rolled_back = counts[HostState.OK], counts[HostState.ROLLED_BACK]
        if ok == len(change.targets):
            final, cause = State.COMPLETED, None
        elif (
            ok == 0
            and counts[HostState.ROLLBACK_FAILED] == counts[HostState.NOT_RESTORED] == 0
            and rolled_back > 0
        ):
            final, cause = State.ROLLED_BACK, _cause(stopped_reason, self.outcomes.values())
        else:
            final, cause = State.FAILED, _cause(stopped_reason, self.outcomes.values())
        summary = self.summary(change, final, cause=cause)
        after = (self._after or self._after_change(change)).finish(self.outcomes)
        summary.compliance = after.get("compliance")
        self.store.set_summary(change.id, summary.to_dict())
        self.journal.transition(
            change, final, actor=self.actor, payload={"counts": counts, "cause": cause}
        )
        self.checkpoint()
        return summary

    def _write_index(self, change_id: str, outcomes: list[HostSummary]) -> None:
        """Finished hosts' CMDB records and index rows, in one transaction
        (one statement for all the CMDB records). Both may lag the ledger: a
        crash before it commits leaves the index at `pending`, and `recover`
        rebuilds it, and any missing CMDB record, from the ledger."""
        cmdb = self._observed_store()
        with self.store.engine.begin() as connection:
            cmdb.record_changes(
                change_id,
                [(o.ci, o.status, o.config_hash) for o in outcomes],
                connection=connection,
            )
            self.store.set_hosts(
                change_id, [(o.ci, o.status, o.detail) for o in outcomes], connection=connection
            )
        for outcome in outcomes:
            self._record_facts(change_id, outcome)
        if self._after is not None:
            # Off every device's path: what `_finish` records is mostly judged here.
            self._after.judge(outcomes)

    def _after_change(self, change: ChangeRequest) -> AfterChange:
        from opskit.compliance.after import AfterChange

        # A large rollout judges in a helper process (`opskit.compliance.apart`):
        # starting it costs about what judging a few dozen hosts here would.
        apart = len(change.targets) >= JUDGE_APART_FROM_HOSTS
        return AfterChange(self.ctx.ws, change.id, self.actor, change.inventory, apart=apart)

    def _close_index(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            index.close()

    def _observed_store(self) -> ObservedStore:
        with self._lock:
            if self._observed is None:
                self._observed = ObservedStore(self.ctx.ws.engine)
            return self._observed

    def _update_cmdb(self, change_id: str, outcome: HostSummary) -> None:
        """The CMDB record of the CI: this change, its outcome on the CI and the
        configuration hash (for failed and rolled-back hosts too), as soon as
        the host is done."""
        self._observed_store().record_change(
            outcome.ci, change_id, outcome.status, outcome.config_hash
        )
        self._record_facts(change_id, outcome)

    def _record_facts(self, change_id: str, outcome: HostSummary) -> None:
        facts = outcome.run.facts if outcome.run else None
        if facts:
            self._observed_store().record_facts(outcome.ci, facts, source=f"change {change_id}")

    def checkpoint(self) -> None:
        """A signed ledger checkpoint at the end of a rollout or rollback."""
        self.journal.checkpoint(self.actor)

    def summary(self, change: ChangeRequest, final: State, *, cause: str | None) -> ChangeSummary:
        """The change's summary: its hosts as the rollout left them (their
        counts are computed from them)."""
        return ChangeSummary(change.id, final, change.runbook_ref, cause, dict(self.outcomes))

    # -- dry run -------------------------------------------------------------------
    def _dry_run(self, change: ChangeRequest, book: Runbook, inv: Inventory) -> DryRunSummary:
        cis = [inv.get(n) for n in select_names(inv, change.selection)]
        predicted = predict_diffs(book, cis, change.parameters)
        approved = {h: (e or {}).get("hash") for h, e in (change.predicted_diff or {}).items()}
        matches = (
            {h: approved.get(h) == e.get("hash") for h, e in predicted.items()} if approved else {}
        )
        self.journal.record(
            "change.dry_run",
            actor=self.actor,
            change_id=change.id,
            payload={
                "predicted": {
                    h: {k: v for k, v in e.items() if k != "diff"} for h, e in predicted.items()
                },
                "matches_assessment": matches,
            },
            blobs={f"diff:{h}": e["diff"] for h, e in predicted.items() if e.get("diff")},
        )
        return DryRunSummary(change.id, change.state, predicted, matches)


def _cause(stopped_reason: str | None, outcomes: Iterable[HostSummary]) -> str | None:
    first = _first_error(outcomes)
    return "; ".join(part for part in (stopped_reason, first) if part) or None


def _first_error(outcomes: Iterable[HostSummary]) -> str | None:
    for outcome in sorted(outcomes, key=lambda o: o.ci):
        if outcome.error:
            return f"{outcome.ci}: {outcome.error}"
    return None


def _index_hold(queue: list[tuple[float, HostSummary]]) -> float:
    return INDEX_LINGER_SECONDS - (time.monotonic() - queue[0][0])
