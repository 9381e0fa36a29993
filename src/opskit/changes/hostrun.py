"""What happens on one host of a change: its run (precheck -> backup ->
apply -> verify, by the runbook executor, `opskit.runbooks.executor`) and
its rollback, every step recorded in the ledger as it happens. How hosts are
scheduled (batches, canary, error budget, caps) is the rollout's
(`opskit.changes.rollout`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from opskit.changes.context import EngineContext
from opskit.changes.model import ChangeRequest
from opskit.changes.runners import HostJob, remote_hosts
from opskit.changes.summary import UNPROVEN, HostSummary, not_restored_reason, unproven_kind
from opskit.errors import OpskitError
from opskit.hoststate import HostState, change_host_state
from opskit.ledger import values

if TYPE_CHECKING:
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory.model import CI
    from opskit.ledger.core import Ledger
    from opskit.runbooks.executor import Snapshot
    from opskit.runbooks.model import Runbook

# Queues a step (kind, payload, blobs); the call returned waits until it is durable.
StepQueue = Callable[[str, Mapping[str, Any] | None, Mapping[str, Any] | None], Callable[[], Any]]


def _executor() -> ModuleType:
    # The runbook executor (and the configuration machinery) only when a change runs.
    from opskit.runbooks import executor

    return executor


def record_ready(payload: Mapping[str, Any]) -> Any:
    """The rollout's own step payloads, redacted and JSON-ready like the
    executor's (`opskit.ledger.values.record_ready`)."""
    return values.record_ready(payload)


class HostWork:
    """One change's work on its hosts, for one actor."""

    def __init__(self, ctx: EngineContext, change_id: str, actor: str) -> None:
        self.ctx = ctx
        self.journal = ctx.journal
        self.change_id = change_id
        self.actor = actor

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

    def host_recorder(self, ci: str, *, queue: bool) -> HostRecorder:
        """The recorder for one host's run: `host.backup` is durable before the
        call returns (no apply step runs before it is); the other steps are
        queued in order (with `queue`, during a rollout's group commit) and
        `flush` waits for them once, at the end of the host."""

        def later(
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

        return HostRecorder(
            proof_or_not_restored(self.recorder(ci), UNPROVEN),
            proof_or_not_restored(later, UNPROVEN) if queue else None,
        )

    def run(
        self,
        change: ChangeRequest,
        book: Runbook,
        ci: CI,
        batch_no: int,
        pool: ConnectionPool,
        recorder: Callable[..., Any],
    ) -> HostSummary:
        remote = remote_hosts(self.ctx.runner)
        if remote is not None:  # another process runs it and records its steps
            job = HostJob(change.id, ci.name, "run", book.digest, batch_no, self.actor)
            return summary_from_remote(ci.name, batch_no, remote.dispatch(job, ci, self.ctx))
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
                record_ready(
                    {"error": str(exc), "status": str(getattr(exc, "status", HostState.FAILED))}
                ),
            )
            return HostSummary(
                ci.name,
                HostState.FAILED,
                batch=batch_no,
                ran=True,
                error=str(exc),
                detail={"error": str(exc)},
            )
        status = change_host_state(run.status)
        error = run.error
        if status == HostState.ROLLED_BACK and not run.proof:
            status = HostState.NOT_RESTORED
            error = f"{run.error}; {UNPROVEN}" if run.error else UNPROVEN
        return HostSummary(
            ci.name,
            status,
            batch=batch_no,
            ran=True,
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

    def roll_back(
        self,
        change: ChangeRequest,
        book: Runbook,
        ci: CI,
        outcome: HostSummary,
        pool: ConnectionPool,
    ) -> HostSummary:
        """Rolls one host back to its pre-change snapshot (from this run, or
        from the ledger); the executor proves it by configuration comparison.
        Updates and returns `outcome`."""
        remote = remote_hosts(self.ctx.runner)
        if remote is not None:
            job = HostJob(change.id, ci.name, "rollback", book.digest, outcome.batch, self.actor)
            done = summary_from_remote(ci.name, outcome.batch, remote.dispatch(job, ci, self.ctx))
            outcome.status, outcome.config_hash = done.status, done.config_hash
            outcome.error, outcome.detail["rollback"] = done.error, done.detail.get("rollback")
            return outcome
        executor = _executor()
        snapshot = (outcome.run.snapshot if outcome.run else None) or snapshot_from_ledger(
            self.ctx.ledger, change.id, ci
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
                rolled = result.status == HostState.ROLLED_BACK
                outcome.status = HostState.ROLLED_BACK if rolled else HostState.ROLLBACK_FAILED
                outcome.config_hash = (result.proof or {}).get("after_hash") or result.config_hash
                outcome.error = result.error
                outcome.detail["rollback"] = {"proof": result.proof, "error": result.error}
            except OpskitError as exc:
                self.recorder(ci.name)("host.rollback_failed", record_ready({"error": str(exc)}))
                outcome.status = HostState.ROLLBACK_FAILED
                outcome.error = str(exc)
        return outcome

    def _not_restorable(
        self,
        change: ChangeRequest,
        book: Runbook,
        ci: CI,
        outcome: HostSummary,
        pool: ConnectionPool,
    ) -> None:
        """A host without a snapshot: its runbook's rollback steps run (when it
        has any), and it is recorded `host.not_restored` with the reason, or
        `host.rollback_failed` when a step failed."""
        has_steps = isinstance(book.rollback, tuple) and bool(
            book.steps_for("rollback", ci.platform)
        )
        reason = not_restored_reason(book, ci, ran_steps=has_steps)
        record = proof_or_not_restored(self.recorder(ci.name), reason)
        outcome.status, outcome.error = HostState.NOT_RESTORED, reason
        if not has_steps:
            record("host.not_restored", record_ready({"reason": reason}))
            return
        try:
            result = _executor().rollback_host(
                book, ci, None, pool, recorder=record, params=dict(change.parameters)
            )
        except OpskitError as exc:
            record("host.rollback_failed", record_ready({"error": str(exc)}))
            outcome.status, outcome.error = HostState.ROLLBACK_FAILED, str(exc)
            return
        if result.status != HostState.ROLLED_BACK:
            outcome.status, outcome.error = HostState.ROLLBACK_FAILED, result.error
        outcome.detail["rollback"] = {"proof": None, "error": outcome.error}


def summary_from_remote(ci: str, batch: int | None, result: dict[str, Any]) -> HostSummary:
    """A host's summary from a remote runner's result (`RemoteHosts.dispatch`)."""
    return HostSummary(
        ci,
        HostState(result["status"]),
        batch=batch,
        ran=bool(result.get("ran", True)),
        config_hash=result.get("config_hash"),
        error=result.get("error"),
        detail=dict(result.get("detail") or {}),
        remote_changed=result.get("changed"),
    )


def snapshot_from_ledger(ledger: Ledger, change_id: str, ci: CI) -> Snapshot | None:
    """The pre-change snapshot of `ci` recorded by this change (`host.backup`), or None."""
    from opskit.runbooks.executor import Snapshot

    backup = None
    for event in ledger.events(change_id=change_id, ci=ci.name, kind="host.backup"):
        backup = event
    if backup is None:
        return None
    described = backup.payload.get("snapshot") or {}
    blobs = {name: ledger.get_blob(ref) for name, ref in backup.blobs.items()}
    return Snapshot.from_blobs(
        blobs,
        platform=described.get("platform", ci.platform),
        connector=described.get("connector", "netmiko"),
        source=described.get("source", "running"),
    )


class HostRecorder:
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


def proof_or_not_restored(record: Any, reason: str) -> Any:
    """`record`, with an unproven `host.rolled_back` (rollback steps ran,
    no snapshot to compare with) recorded as `host.not_restored` and why."""

    def honest(kind: str, payload: Any = None, blobs: Any = None) -> Any:
        if unproven_kind(kind, payload):
            kind, payload = "host.not_restored", {**(payload or {}), "reason": reason}
        return record(kind, payload, blobs)

    return honest
