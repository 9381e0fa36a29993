"""Applying a change: checks, locks, batches, error budget, rollback, recovery.

The per-host work (precheck → backup → apply → verify, and rollback) is the
runbook executor's (`opskit.runbooks.executor`); this module runs it across
hosts in the strategy's batches and records every step in the ledger as it
happens, so that a crash (kill -9) leaves a ledger that verifies and a
change whose per-host state is known (`recover`).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from opskit.changes import deps, prediction, rules
from opskit.changes.groupcommit import QueueDrainer
from opskit.changes.model import ACTIVE_STATES, ChangeRequest, State
from opskit.errors import ChangeRefused, OpskitError
from opskit.processes import pid_alive

if TYPE_CHECKING:
    from opskit.changes.changestore import ChangeStore
    from opskit.changes.service import ChangeService
    from opskit.inventory.model import CI
    from opskit.workspace import Workspace

HEARTBEAT_SECONDS = 2.0
# Finished hosts wait this long for others to share their index transaction.
INDEX_LINGER_SECONDS = 0.25

# Per-host statuses in `change_hosts`.
PENDING, RUNNING, OK, FAILED = "pending", "running", "ok", "failed"
ROLLED_BACK, ROLLBACK_FAILED, SKIPPED, UNKNOWN = (
    "rolled_back",
    "rollback_failed",
    "skipped",
    "unknown",
)
# Rolled back without proof: no snapshot to restore or compare with (see changes.rollback).
NOT_RESTORED = "not_restored"
# A host in one of these has had (or may have had) its configuration changed.
TOUCHED = frozenset({RUNNING, OK, FAILED, ROLLBACK_FAILED, UNKNOWN, NOT_RESTORED})
UNPROVEN = "rollback steps ran, but no pre-change snapshot proves the host is as before"


ProgressCallback = Callable[[str, str, str], None]  # (ci, status, change_id)
# Queues a step (kind, payload, blobs); the call returned waits until it is durable.
StepQueue = Callable[[str, Mapping[str, Any] | None, Mapping[str, Any] | None], Callable[[], Any]]


def _executor() -> Any:
    from opskit.runbooks import executor

    return executor


def record_ready(payload: Mapping[str, Any]) -> Any:
    """The rollout's own step payloads, redacted and JSON-ready like the executor's."""
    return _executor().record_ready(payload)


@contextmanager
def open_pool(max_sessions: int) -> Iterator[Any]:
    """The connectors' session pool, closed at the end."""
    from opskit.connectors.pool import ConnectionPool

    with ConnectionPool(max_sessions) as pool:
        yield pool


# The executor's host outcomes -> the change's per-host statuses.
_RUN_STATUS = {
    "completed": "ok",
    "failed": "failed",
    "rolled_back": "rolled_back",
    "rollback_failed": "rollback_failed",
}


# -- predicted diffs ----------------------------------------------------------
def predict_diffs(
    ws: Workspace,
    book: Any,
    cis: list[CI],
    params: Mapping[str, Any],
    *,
    concurrency: int | None = None,
    pool: Any = None,
) -> dict[str, dict[str, Any]]:
    """Per host: the predicted diff and its hash ("" when nothing would
    change), or why none is available (`opskit.changes.prediction`). Nothing
    on a device changes. With `pool`, its sessions are used (and stay
    open for the rollout that follows)."""

    executor = _executor()
    width = max(1, min(concurrency or book.strategy.concurrency, len(cis) or 1))
    results: dict[str, dict[str, Any]] = {}
    with nullcontext(pool) if pool is not None else open_pool(width) as pool:

        def one(ci: CI) -> tuple[str, dict[str, Any]]:
            try:
                return ci.name, prediction.entry_for(
                    executor.predict_diff(book, ci, dict(params), pool)
                )
            except OpskitError as exc:
                return ci.name, prediction.unavailable(str(exc))

        with ThreadPoolExecutor(max_workers=width) as threads:
            for name, entry in threads.map(one, cis):
                results[name] = entry
    return dict(sorted(results.items()))


# -- the rollout -----------------------------------------------------------------
@dataclass
class HostOutcome:
    ci: str
    status: str
    batch: int | None = None
    changed: bool = False
    config_hash: str | None = None
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    run: Any = None  # the executor's HostRun, for rollback


class Rollout:
    def __init__(
        self,
        service: ChangeService,
        change_id: str,
        actor: str,
        *,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.svc = service
        self.journal = service.journal
        self.store = service.store
        self.change_id = change_id
        self.actor = actor
        self.progress = progress or (lambda ci, status, change_id: None)
        self.outcomes: dict[str, HostOutcome] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._observed: Any = None
        # A host's non-backup steps are queued while its thread goes on (see _HostRecorder).
        self._queue_steps = False
        # Writes finished hosts' index rows and CMDB records off their threads.
        self._index: QueueDrainer[tuple[float, HostOutcome]] | None = None

    # -- recording -------------------------------------------------------------
    def recorder(self, ci: str) -> Callable[..., Any]:
        """The callback the executor calls for each host step: appends it to
        the ledger at once, bound to this change, CI and actor. The executor
        hands over payloads and blobs already redacted and JSON-ready
        (`record_ready`); the rollout's own steps are made so too."""

        def record(
            kind: str,
            payload: Mapping[str, Any] | None = None,
            blobs: Mapping[str, Any] | None = None,
        ) -> Any:
            return self.journal.record(
                kind,
                actor=self.actor,
                change_id=self.change_id,
                ci=ci,
                payload=payload or {},
                blobs=blobs,
                prepared=True,
            )

        return record

    def host_recorder(self, ci: str) -> _HostRecorder:
        """The recorder for one host's run: `host.backup` is durable before the
        call returns (no apply step runs before it is); the other steps are
        queued in order and `flush` waits for them once, at the end of the host."""

        def queue(
            kind: str, payload: Mapping[str, Any] | None, blobs: Mapping[str, Any] | None
        ) -> Callable[[], Any]:
            return self.journal.record_later(
                kind,
                actor=self.actor,
                change_id=self.change_id,
                ci=ci,
                payload=payload or {},
                blobs=blobs,
                prepared=True,
            )

        return _HostRecorder(
            _proof_or_not_restored(self.recorder(ci), UNPROVEN),
            _proof_or_not_restored(queue, UNPROVEN) if self._queue_steps else None,
        )

    # -- entry points ------------------------------------------------------------
    def run(self, *, dry_run: bool = False) -> dict[str, Any]:
        svc = self.svc
        change = svc.get(self.change_id)
        book = svc.catalog.get(change.runbook_ref)
        inv = deps.load_inventory(svc.ws, change.inventory)
        if dry_run:
            return self._dry_run(change, book, inv)
        # One session pool for the final checks and the rollout: a device's
        # session opened to predict its diff is reused to change it. `width`
        # sessions work on devices at once; up to `width` more are being
        # closed by the hosts that are done with them (see `_host`).
        width = max(1, min(int(book.strategy.concurrency), len(change.targets)))
        with open_pool(2 * width) as pool:
            return self._run(change, book, inv, pool)

    def _run(self, change: ChangeRequest, book: Any, inv: Any, pool: Any) -> dict[str, Any]:
        svc = self.svc
        reasons = svc.apply_blockers(change, self.actor)
        if (
            not reasons
            and change.predicted_diff
            and any((e or {}).get("hash") for e in change.predicted_diff.values())
        ):
            # The approval covers the predicted diff: predict again and compare.
            now = predict_diffs(
                svc.ws,
                book,
                [deps.get_ci(inv, n) for n in change.targets],
                change.parameters,
                pool=pool,
            )
            drift = svc.binding_drift(change, predicted=now)
            if drift:
                reasons = [rules.stale_reason(drift)]
        if not reasons:
            blocked = self._group_blockers(change, inv)
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
                change = svc.schedule(change.id, self.actor)
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
            with _Heartbeat(self.store, change.id), self.journal.group_commit():
                return self._execute(change, book, inv, plan, pool)
        finally:
            self.store.release_locks(change.id)
            self.store.set_runner(change.id, alive=False)

    @staticmethod
    def plan_batches(targets: list[str], strategy: Any) -> list[list[str]]:
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

    def _group_blockers(self, change: ChangeRequest, inv: Any) -> str | None:
        """A capped group already at its cap with other changes' CIs."""
        for cap in self.svc.policy.concurrency:
            mine = [n for n in change.targets if cap.group in deps.get_ci(inv, n).groups]
            if not mine:
                continue
            rows = self.store.group_slot_holders(cap.group, besides=change.id)
            if len(rows) >= cap.max_changing:
                busy = ", ".join(f"{ci} ({cid})" for ci, cid in rows)
                return (
                    f"group {cap.group} is at its cap of {cap.max_changing} changing CI(s): {busy}"
                )
        return None

    # -- the rollout proper ------------------------------------------------------
    def _execute(
        self, change: ChangeRequest, book: Any, inv: Any, plan: list[list[str]], pool: Any
    ) -> dict[str, Any]:
        svc = self.svc
        strategy = book.strategy
        total = len(change.targets)
        stopped_reason: str | None = None
        caps = {cap.group: cap.max_changing for cap in svc.policy.concurrency}
        local_caps = {g: threading.Semaphore(n) for g, n in caps.items()}
        width = max(1, min(int(strategy.concurrency), total))
        # `width` hosts do device work at once; a host that is done with its
        # device waits for its steps to be durable on one of `width` more
        # threads, while the next host starts.
        device = threading.BoundedSemaphore(width)
        with ThreadPoolExecutor(max_workers=2 * width) as threads:
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
                        deps.get_ci(inv, n),
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
                failed = sum(
                    1
                    for o in self.outcomes.values()
                    if o.status in (FAILED, ROLLED_BACK, ROLLBACK_FAILED)
                )
                is_canary = batch_no == 0 and bool(strategy.canary) and len(plan) > 1
                if is_canary and any(self.outcomes[n].status != OK for n in names):
                    stopped_reason = f"the canary batch failed ({failed} host(s))"
                elif strategy.budget_spent(failed, total):
                    stopped_reason = f"error budget spent: {failed} of {total} host(s) failed"
                if stopped_reason:
                    for later in plan[batch_no + 1 :]:
                        for name in later:
                            self.outcomes[name] = HostOutcome(name, SKIPPED, batch=None)
                            self.store.set_host(
                                change.id, name, SKIPPED, detail={"reason": stopped_reason}
                            )
                            self.progress(name, SKIPPED, change.id)
                    self.journal.record(
                        "change.halted",
                        actor=self.actor,
                        change_id=change.id,
                        payload={"reason": stopped_reason, "on_failure": strategy.on_failure},
                    )
                    break
            self._close_index()  # the rollback below writes these hosts' rows itself
            if stopped_reason and strategy.on_failure == "rollback_all":
                done = [o for o in self.outcomes.values() if o.status == OK and o.changed]

                def rollback(outcome: HostOutcome) -> HostOutcome:
                    with device:
                        ci = deps.get_ci(inv, outcome.ci)
                        return self._rollback_one(change, book, ci, outcome, pool)

                list(threads.map(rollback, done))
        self._queue_steps = False
        self._close_index()
        return self._finish(change, book, inv, stopped_reason)

    def _host(
        self,
        change: ChangeRequest,
        book: Any,
        ci: CI,
        batch_no: int,
        pool: Any,
        local_caps: dict[str, threading.Semaphore],
        device: threading.BoundedSemaphore | None = None,
    ) -> HostOutcome:
        # Always taken before a group cap, so no thread holding a cap waits for it.
        device_held = device is not None and device.acquire()
        groups = [g for g in ci.groups if g in local_caps]
        for group in groups:
            local_caps[group].acquire()
        try:
            self._acquire_slots(change.id, ci, groups)
            # No index write here: the ledger's host.backup says it started.
            self.progress(ci.name, RUNNING, change.id)
            recorder = self.host_recorder(ci.name)
            outcome = self._run_one(change, book, ci, batch_no, pool, recorder)
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
                outcome.status, outcome.error = FAILED, f"recording a step failed: {exc}"
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

    def _run_one(
        self,
        change: ChangeRequest,
        book: Any,
        ci: CI,
        batch_no: int,
        pool: Any,
        recorder: Callable[..., Any],
    ) -> HostOutcome:
        executor = _executor()
        mode = "never" if book.strategy.on_failure == "stop" else "on_failure"
        try:
            run = executor.run_host(
                book,
                ci,
                dict(change.parameters),
                pool=pool,
                recorder=recorder,
                rollback_mode=mode,
            )
        except OpskitError as exc:
            recorder(
                "host.failed",
                record_ready({"error": str(exc), "status": str(getattr(exc, "status", "failed"))}),
            )
            return HostOutcome(
                ci.name,
                FAILED,
                batch=batch_no,
                changed=True,
                error=str(exc),
                detail={"error": str(exc)},
            )
        status = _RUN_STATUS.get(str(run.status), FAILED)
        error = run.error
        if status == ROLLED_BACK and not run.proof:
            status, error = NOT_RESTORED, f"{run.error}; {UNPROVEN}" if run.error else UNPROVEN
        return HostOutcome(
            ci.name,
            status,
            batch=batch_no,
            changed=True,
            config_hash=run.config_hash,
            error=error,
            detail={
                "error": run.error,
                "failed_phase": run.failed_phase,
                "config_hash": run.config_hash,
                "snapshot_hash": run.snapshot.hash if run.snapshot else None,
                "proof": run.proof,
            },
            run=run,
        )

    def _rollback_one(
        self, change: ChangeRequest, book: Any, ci: CI, outcome: HostOutcome, pool: Any
    ) -> HostOutcome:
        """Rolls one host back to its pre-change snapshot (from this run, or
        from the ledger); the executor proves it by configuration comparison."""
        svc = self.svc
        executor = _executor()
        snapshot = getattr(outcome.run, "snapshot", None) or snapshot_from_ledger(
            svc, change.id, ci
        )
        if snapshot is None:
            self._not_restorable(change, book, ci, outcome, pool)
        else:
            try:
                result = executor.rollback_host(
                    book,
                    ci,
                    snapshot,
                    pool,
                    recorder=self.recorder(ci.name),
                    params=dict(change.parameters),
                )
                rolled = str(result.status) == "rolled_back"
                outcome.status = ROLLED_BACK if rolled else ROLLBACK_FAILED
                outcome.config_hash = (result.proof or {}).get("after_hash") or result.config_hash
                outcome.error = result.error
                outcome.detail["rollback"] = {"proof": result.proof, "error": result.error}
            except OpskitError as exc:
                self.recorder(ci.name)("host.rollback_failed", record_ready({"error": str(exc)}))
                outcome.status = ROLLBACK_FAILED
                outcome.error = str(exc)
        self.store.set_host(change.id, ci.name, outcome.status, detail=outcome.detail)
        self._update_cmdb(change.id, outcome)
        self.progress(ci.name, outcome.status, change.id)
        return outcome

    def _not_restorable(
        self, change: ChangeRequest, book: Any, ci: CI, outcome: HostOutcome, pool: Any
    ) -> None:
        """A host without a snapshot: its runbook's rollback steps run (when it
        has any), and it is recorded `host.not_restored` with the reason, or
        `host.rollback_failed` when a step failed."""
        from opskit.changes.rollback import not_restored_reason

        has_steps = isinstance(book.rollback, tuple) and bool(
            book.steps_for("rollback", ci.platform)
        )
        reason = not_restored_reason(book, ci, ran_steps=has_steps)
        record = _proof_or_not_restored(self.recorder(ci.name), reason)
        outcome.status, outcome.error = NOT_RESTORED, reason
        if not has_steps:
            record("host.not_restored", record_ready({"reason": reason}))
            return
        try:
            result = _executor().rollback_host(
                book, ci, None, pool, recorder=record, params=dict(change.parameters)
            )
        except OpskitError as exc:
            record("host.rollback_failed", record_ready({"error": str(exc)}))
            outcome.status, outcome.error = ROLLBACK_FAILED, str(exc)
            return
        if str(result.status) != "rolled_back":
            outcome.status, outcome.error = ROLLBACK_FAILED, result.error
        outcome.detail["rollback"] = {"proof": None, "error": outcome.error}

    def _acquire_slots(self, change_id: str, ci: CI, groups: list[str]) -> None:
        caps = {cap.group: cap.max_changing for cap in self.svc.policy.concurrency}
        self.store.acquire_slots(change_id, ci.name, groups, caps)

    def _release_slots(self, change_id: str, ci: str) -> None:
        self.store.release_slots(change_id, ci)

    # -- the end -----------------------------------------------------------------
    def _finish(
        self, change: ChangeRequest, book: Any, inv: Any, stopped_reason: str | None
    ) -> dict[str, Any]:
        counts = _counts(self.outcomes.values())
        change = self.journal.transition(
            change, State.VERIFYING, actor=self.actor, payload={"counts": counts}
        )
        if counts[OK] == len(change.targets):
            final, cause = State.COMPLETED, None
        elif (
            counts[OK] == 0
            and counts[ROLLBACK_FAILED] == counts[NOT_RESTORED] == 0
            and counts[ROLLED_BACK] > 0
        ):
            final, cause = State.ROLLED_BACK, _cause(stopped_reason, self.outcomes.values())
        else:
            final, cause = State.FAILED, _cause(stopped_reason, self.outcomes.values())
        summary = self.summary(change, final, cause=cause, counts=counts)
        self.store.set_summary(change.id, summary)
        self.journal.transition(
            change, final, actor=self.actor, payload={"counts": counts, "cause": cause}
        )
        self._checkpoint()
        return summary

    def _write_index(self, change_id: str, outcomes: list[HostOutcome]) -> None:
        """Finished hosts' CMDB records and index rows, in one transaction
        (one statement for all the CMDB records). Both may lag the ledger: a
        crash before it commits leaves the index at `pending`, and `recover`
        rebuilds it, and any missing CMDB record, from the ledger."""
        from opskit.inventory.observed import ci_changes

        # The rows `ObservedStore.record_change` writes, for many CIs at once.
        at = datetime.now(UTC)
        records = [
            {
                "ci": o.ci,
                "change_id": change_id,
                "status": o.status,
                "config_hash": o.config_hash,
                "detail": None,
                "at": at,
            }
            for o in outcomes
        ]
        with self.store.engine.begin() as connection:
            connection.execute(insert(ci_changes), records)
            self.store.set_hosts(
                change_id, [(o.ci, o.status, o.detail) for o in outcomes], connection=connection
            )
        for outcome in outcomes:
            self._record_facts(change_id, outcome)

    def _close_index(self) -> None:
        index, self._index = self._index, None
        if index is not None:
            index.close()

    def _observed_store(self) -> Any:
        with self._lock:
            if self._observed is None:
                self._observed = deps.observed_store(self.svc.ws)
            return self._observed

    def _update_cmdb(self, change_id: str, outcome: HostOutcome) -> None:
        """The CMDB record of the CI: this change, its outcome on the CI and the
        configuration hash (for failed and rolled-back hosts too), as soon as
        the host is done."""
        self._observed_store().record_change(
            outcome.ci, change_id, outcome.status, outcome.config_hash
        )
        self._record_facts(change_id, outcome)

    def _record_facts(self, change_id: str, outcome: HostOutcome) -> None:
        facts = getattr(outcome.run, "facts", None)
        if facts:
            self._observed_store().record_facts(outcome.ci, facts, source=f"change {change_id}")

    def _checkpoint(self) -> None:
        self.journal.checkpoint(self.actor)

    def summary(
        self, change: ChangeRequest, final: State, *, cause: str | None, counts: dict[str, int]
    ) -> dict[str, Any]:
        return {
            "change_id": change.id,
            "state": final.value,
            "runbook": change.runbook_ref,
            "cause": cause,
            "counts": counts,
            "hosts": {
                name: {
                    "status": o.status,
                    "batch": o.batch,
                    "config_hash": o.config_hash,
                    "error": o.error,
                }
                for name, o in sorted(self.outcomes.items())
            },
        }

    # -- dry run -------------------------------------------------------------------
    def _dry_run(self, change: ChangeRequest, book: Any, inv: Any) -> dict[str, Any]:
        cis = [deps.get_ci(inv, n) for n in deps.select_names(inv, change.selection)]
        predicted = predict_diffs(self.svc.ws, book, cis, change.parameters)
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
        return {
            "change_id": change.id,
            "state": change.state.value,
            "dry_run": True,
            "predicted_diff": predicted,
            "matches_assessment": matches,
        }

    # -- rolling back a finished change ------------------------------------------
    def rollback_change(self) -> dict[str, Any]:
        """Rolls every changed host back (see `opskit.changes.rollback`)."""
        from opskit.changes.rollback import rollback_change

        return rollback_change(self)


# -- crash recovery -----------------------------------------------------------------
def runner_gone(change: ChangeRequest, *, now: datetime, stale_after: float) -> bool:
    if change.runner_host == socket.gethostname():
        if change.runner_pid == os.getpid():
            return False
        return not pid_alive(change.runner_pid)
    # Another machine: trust only the heartbeat.
    beat = change.heartbeat_at
    return beat is None or now - beat > timedelta(seconds=stale_after)


def snapshot_from_ledger(service: ChangeService, change_id: str, ci: CI) -> Any:
    """The pre-change snapshot of `ci` recorded by this change (`host.backup`), or None."""
    from opskit.runbooks.executor import Snapshot

    backup = None
    for event in service.ledger.events(change_id=change_id, ci=ci.name, kind="host.backup"):
        backup = event
    if backup is None:
        return None
    described = backup.payload.get("snapshot") or {}
    blobs = {name: service.ledger.get_blob(ref) for name, ref in backup.blobs.items()}
    return Snapshot.from_blobs(
        blobs,
        platform=described.get("platform", ci.platform),
        connector=described.get("connector", "netmiko"),
        source=described.get("source", "running"),
    )


def host_states_from_ledger(
    service: ChangeService, change: ChangeRequest
) -> dict[str, dict[str, Any]]:
    """What the ledger shows per host: the steps recorded and the last one."""
    per_host: dict[str, dict[str, Any]] = {
        name: {"steps": [], "last": None, "backup": False, "config_hash": None}
        for name in change.targets
    }
    for event in service.ledger.events(change_id=change.id):
        ci = getattr(event, "ci", None)
        if not ci or ci not in per_host:
            continue
        entry = per_host[ci]
        entry["steps"].append(event.kind)
        entry["last"] = event.kind
        if "backup" in event.kind:
            entry["backup"] = True
        payload = getattr(event, "payload", None) or {}
        if payload.get("config_hash"):
            entry["config_hash"] = payload["config_hash"]
    return per_host


def status_from_steps(steps: list[str]) -> str:
    """A host's state as far as its ledger events tell (for an interrupted run)."""
    if not steps:
        return PENDING
    if "host.rolled_back" in steps:
        return ROLLED_BACK
    if "host.not_restored" in steps:
        return NOT_RESTORED
    if "host.rollback_failed" in steps:
        return ROLLBACK_FAILED
    if "host.verified" in steps:
        return OK
    if "host.failed" in steps and "host.backup" not in steps:
        return FAILED  # failed before anything could change
    # Interrupted somewhere between backup and the end: possibly changed.
    return UNKNOWN


def recover(
    service: ChangeService,
    actor: str,
    *,
    rollback: bool = False,
    stale_after: float = 30.0,
    change_id: str | None = None,
) -> list[dict[str, Any]]:
    """Finds changes left in progress by a runner that is gone (only
    `change_id`, when given), reports per host what the ledger shows,
    releases their locks and sets them `failed`; with `rollback`, rolls back
    every host that may have changed."""
    from opskit.policy import Role

    if not (service.policy.roles_of(actor) & {Role.IMPLEMENTER, Role.CHANGE_MANAGER}):
        service.journal.refuse(
            None, actor, "recover", f"{actor} is not an implementer or change_manager in the policy"
        )
    reports: list[dict[str, Any]] = []
    now = service.clock()
    listed_changes = [service.store.get(change_id)] if change_id else service.store.list()
    for listed in listed_changes:
        if listed.state not in ACTIVE_STATES:
            continue
        change = service.store.get(listed.id)
        if not runner_gone(change, now=now, stale_after=stale_after):
            reports.append(
                {
                    "change_id": change.id,
                    "state": change.state.value,
                    "action": "still running",
                    "runner_pid": change.runner_pid,
                }
            )
            continue
        ledger_view = host_states_from_ledger(service, change)
        hosts: dict[str, dict[str, Any]] = {}
        for name in change.targets:
            indexed = change.hosts.get(name, {}).get("status", PENDING)
            view = ledger_view.get(name, {})
            status = indexed
            if indexed in (RUNNING, PENDING):
                status = status_from_steps(view.get("steps", []))
            hosts[name] = {
                "indexed": indexed,
                "status": status,
                "ledger_steps": view.get("steps", []),
                "last_step": view.get("last"),
                "backup": view.get("backup", False),
            }
            if status != indexed:
                service.store.set_host(
                    change.id,
                    name,
                    status,
                    detail={"recovered": True, "last_step": view.get("last")},
                )
            if status not in (PENDING, SKIPPED):  # a CI the run never touched has no record
                _ensure_cmdb_record(service, change.id, name, status, view.get("config_hash"))
        released = service.store.release_locks(change.id)
        service.journal.record(
            "change.recovered",
            actor=actor,
            change_id=change.id,
            payload={
                "runner": {"host": change.runner_host, "pid": change.runner_pid},
                "hosts": hosts,
                "locks_released": released,
            },
        )
        cause = "the runner process ended during the rollout (recovered)"
        counts = _counts(HostOutcome(n, h["status"]) for n, h in hosts.items())
        service.store.set_summary(
            change.id,
            {
                "change_id": change.id,
                "state": "failed",
                "cause": cause,
                "counts": counts,
                "hosts": hosts,
            },
        )
        service.journal.transition(
            change, State.FAILED, actor=actor, payload={"cause": cause, "recovered": True}
        )
        service.store.set_runner(change.id, alive=False)
        report: dict[str, Any] = {
            "change_id": change.id,
            "state": "failed",
            "action": "recovered",
            "locks_released": released,
            "hosts": hosts,
        }
        if rollback:
            report["rollback"] = Rollout(service, change.id, actor).rollback_change()
            report["state"] = report["rollback"]["state"]
        reports.append(report)
    reports.extend(_release_orphan_locks(service, actor, change_id))
    return reports


def _ensure_cmdb_record(
    service: ChangeService, change_id: str, ci: str, status: str, config_hash: str | None
) -> None:
    """The rollout writes a host's CMDB record after its ledger steps: one the
    crash cut off is written here, from what the ledger shows."""
    observed = deps.observed_store(service.ws)
    if any(c.change_id == change_id for c in observed.changes(ci)):
        return
    observed.record_change(ci, change_id, status, config_hash, detail="recovered from the ledger")


def _release_orphan_locks(
    service: ChangeService, actor: str, only: str | None = None
) -> list[dict[str, Any]]:
    """Locks of changes that are not running (a runner that died between
    locking and starting): released, and said so."""
    holders = service.store.lock_holders()
    holders = [h for h in holders if only is None or h == only]
    reports = []
    for change_id in holders:
        state = service.store.get(change_id).state
        if state in ACTIVE_STATES:
            continue
        released = service.store.release_locks(change_id)
        service.journal.record(
            "change.locks_released",
            actor=actor,
            change_id=change_id,
            payload={"locks_released": released, "state": state.value, "reason": "not running"},
        )
        reports.append(
            {
                "change_id": change_id,
                "state": state.value,
                "action": "released orphan locks",
                "locks_released": released,
            }
        )
    return reports


class _HostRecorder:
    """One host's step recorder. `host.backup` is appended and durable before
    the call returns: the audit guarantee is that the pre-change snapshot is in
    the ledger before any apply step touches the device. The other steps are
    queued for the ledger in order (the group commit writes them in the order
    queued), so the device work goes on meanwhile; `flush` waits until all of
    them are durable and raises the first error. Without a queue every step
    waits."""

    WAIT_FOR = frozenset({"host.backup"})

    def __init__(
        self,
        record: Callable[..., Any],
        queue: StepQueue | None,
    ) -> None:
        self._record = record
        self._queue = queue
        self._pending: list[Callable[[], Any]] = []

    def __call__(
        self,
        kind: str,
        payload: Mapping[str, Any] | None = None,
        blobs: Mapping[str, Any] | None = None,
    ) -> Any:
        if self._queue is None or kind in self.WAIT_FOR:
            self.flush()  # earlier steps first: the ledger keeps the host's order
            return self._record(kind, payload, blobs)
        self._pending.append(self._queue(kind, payload, blobs))
        return None

    def flush(self) -> None:
        pending, self._pending = self._pending, []
        first: BaseException | None = None
        for result in pending:  # waits for each
            try:
                result()
            except Exception as exc:
                first = first or exc
        if first is not None:
            raise first


class _Heartbeat:
    """Refreshes the change's heartbeat while the rollout runs."""

    def __init__(self, store: ChangeStore, change_id: str) -> None:
        self.store = store
        self.change_id = change_id
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{change_id}", daemon=True
        )

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            # A missed beat only makes the change look stale sooner.
            with suppress(Exception):
                self.store.heartbeat(self.change_id)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _proof_or_not_restored(record: Any, reason: str) -> Any:
    """`record`, with an unproven `host.rolled_back` (rollback steps ran,
    no snapshot to compare with) recorded as `host.not_restored` and why."""
    from opskit.changes.rollback import unproven_kind

    def honest(kind: str, payload: Any = None, blobs: Any = None) -> Any:
        if unproven_kind(kind, payload):
            kind, payload = "host.not_restored", {**(payload or {}), "reason": reason}
        return record(kind, payload, blobs)

    return honest


def _run_ok(run: Any) -> bool:
    ok = getattr(run, "ok", None)
    if ok is not None:
        return bool(ok)
    status = str(getattr(run, "status", "failed"))
    return status in ("ok", "changed", "completed", "success")


def _run_detail(run: Any) -> dict[str, Any]:
    to_dict = getattr(run, "to_dict", None)
    if callable(to_dict):
        data = to_dict()
        return data if isinstance(data, dict) else {"result": data}
    return {"status": str(getattr(run, "status", "")), "error": getattr(run, "error", None)}


def _counts(outcomes: Iterable[HostOutcome]) -> dict[str, int]:
    statuses = (PENDING, RUNNING, OK, FAILED, ROLLED_BACK, ROLLBACK_FAILED, SKIPPED, UNKNOWN)
    counts = {s: 0 for s in (*statuses, NOT_RESTORED)}
    for outcome in outcomes:
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def _cause(stopped_reason: str | None, outcomes: Iterable[HostOutcome]) -> str | None:
    first = _first_error(outcomes)
    return "; ".join(part for part in (stopped_reason, first) if part) or None


def _first_error(outcomes: Iterable[HostOutcome]) -> str | None:
    for outcome in sorted(outcomes, key=lambda o: o.ci):
        if outcome.error:
            return f"{outcome.ci}: {outcome.error}"
    return None


def _index_hold(queue: list[tuple[float, HostOutcome]]) -> float:
    return INDEX_LINGER_SECONDS - (time.monotonic() - queue[0][0])
