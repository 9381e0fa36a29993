"""The worker's side: runs one `HostJob` in the worker's own workspace.

The worker opens its workspace configuration itself (its database URL, its
runbooks, its inventory and credential references), so the message says only
which change, host and step. Before any device is touched it checks, in order:

1. the opskit version of the coordinator is its own;
2. the runbook the change was approved with is here, with the approved digest;
3. the idempotency claim: the first delivery of (change, host, step) records
   `host.dispatched` in the ledger; any later one finds it and records
   `host.duplicate_delivery` instead, and runs nothing. The check is a query
   inside the append's own transaction, which holds the ledger's write lock
   (every append takes it), so two workers holding the same message cannot
   both pass, and the claim costs one append.

The claim and `host.backup` are durable before the call that records them
returns (nothing touches the device before the claim, no apply step runs
before the backup); the host's other steps are queued for the worker's group
commit (`opskit worker` keeps one open) and are durable before the result
is returned.

A check that fails fails the host with the reason (`host.failed`), nothing
touched. The result is a `HostSummary.to_dict()` plus its `detail` and
whether the run changed the device, e.g.::

    {"status": "ok", "ran": True, "changed": True, "config_hash": "sha256:...",
     "error": None, "detail": {"proof": None, ...}}
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from opskit import __version__
from opskit.changes.hostrun import HostRecorder, HostWork, record_ready
from opskit.changes.runners import HostJob
from opskit.changes.summary import HostSummary
from opskit.errors import OpskitError
from opskit.hoststate import HostState

if TYPE_CHECKING:
    from opskit.changes.context import EngineContext
    from opskit.changes.service import ChangeService

DISPATCHED = "host.dispatched"
DUPLICATE = "host.duplicate_delivery"


def execute(service: ChangeService, message: dict[str, Any], *, worker: str) -> dict[str, Any]:
    """Runs `message` (a `HostJob.to_message()`) on `service`'s workspace."""
    job = HostJob.from_message(message)
    ctx = service.context
    work = HostWork(ctx, job.change_id, job.actor)
    refusal = _refusal(ctx, job)
    if refusal:
        work.recorder(job.ci)("host.failed", record_ready({"error": refusal, "worker": worker}))
        return {"status": HostState.FAILED, "ran": False, "error": refusal, "detail": {}}
    if not claim(ctx, job, worker):
        return {"status": "duplicate", "ran": False, "error": None, "detail": {}}
    change, book = _approved(ctx, job)
    ci = _inventory(ctx, job, change).get(job.ci)
    from opskit.connectors.pool import ConnectionPool

    pool = ConnectionPool(4)
    try:
        if job.phase == "rollback":
            outcome = HostSummary(ci.name, HostState.FAILED, batch=job.batch, ran=True)
            work.roll_back(change, book, ci, outcome, pool)
        else:
            recorder = work.host_recorder(ci.name, queue=ctx.journal.group_writer is not None)
            outcome = work.run(change, book, ci, job.batch or 0, pool, recorder)
            _flush(ctx, recorder, outcome)
    finally:
        # The session is closed off the host's path (as the rollout does): the
        # result goes to the coordinator meanwhile.
        _closer().submit(pool.close_all)
    _record_facts(ctx, job, outcome)
    return {
        **outcome.to_dict(),
        "ran": outcome.ran,
        "changed": outcome.changed,
        "detail": _plain(outcome.detail),
    }


_APPROVED: dict[str, tuple[Any, Any]] = {}
_INVENTORIES: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()
_CACHED = 16  # changes (and phases) a worker keeps


def _approved(ctx: EngineContext, job: HostJob) -> tuple[Any, Any]:
    """The change and its runbook, read once per change and phase by this
    worker (the local rollout reads them once per apply); read again when the
    runbook's digest is not the approved one (the files may have changed)."""
    key = f"{job.change_id}/{job.phase}"
    with _CACHE_LOCK:
        cached = _APPROVED.get(key)
        if cached is not None and cached[1].digest == job.runbook_digest:
            return cached
        if cached is not None:
            ctx.forget_catalog()
        change = ctx.store.get(job.change_id)
        book = ctx.catalog.get(change.runbook_ref)
        if book.digest != job.runbook_digest and cached is None:
            ctx.forget_catalog()  # read once more: the files may have changed since
            book = ctx.catalog.get(change.runbook_ref)
        _keep(_APPROVED, key, (change, book))
        return change, book


def _inventory(ctx: EngineContext, job: HostJob, change: Any) -> Any:
    key = f"{job.change_id}/{job.phase}"
    with _CACHE_LOCK:
        if key not in _INVENTORIES:
            _keep(_INVENTORIES, key, ctx.inventory(change.inventory))
        return _INVENTORIES[key]


def _keep(cache: dict[str, Any], key: str, value: Any) -> None:
    while len(cache) >= _CACHED:
        cache.pop(next(iter(cache)))
    cache[key] = value


def _refusal(ctx: EngineContext, job: HostJob) -> str | None:
    if job.version != __version__:
        return f"worker runs opskit {__version__}, the coordinator {job.version}"
    try:
        change, book = _approved(ctx, job)
    except OpskitError as exc:
        return f"runbook not available on this worker: {exc}"
    if book.digest != job.runbook_digest:
        return (
            f"runbook {change.runbook_ref} here has digest {book.digest}, "
            f"the change was approved with {job.runbook_digest}"
        )
    return None


class DuplicateDelivery(OpskitError):
    """An earlier delivery of the key claimed the host (raised in the claim's
    transaction, which then writes nothing)."""


def claim(ctx: EngineContext, job: HostJob, worker: str) -> bool:
    """True for the first delivery of `job.key` (recorded `host.dispatched`);
    False for a later one (recorded `host.duplicate_delivery`)."""
    record = HostWork(ctx, job.change_id, job.actor).recorder(job.ci)
    try:
        ctx.journal.record(
            DISPATCHED,
            actor=job.actor,
            change_id=job.change_id,
            ci=job.ci,
            payload=record_ready({"key": job.key, "worker": worker, "phase": job.phase}),
            prepared=True,
            guard=_first(job),
        )
    except DuplicateDelivery:
        record(DUPLICATE, record_ready({"key": job.key, "worker": worker}))
        return False
    return True


def give_up(ctx: EngineContext, job: HostJob, reason: str) -> dict[str, Any]:
    """A runner's result for a host it gives up before a worker took it: the
    coordinator claims the key, so a late delivery runs nothing, and the host
    is failed, untouched. When a worker claimed it first, nobody knows what
    it did: `unknown`."""
    if not claim(ctx, job, worker="coordinator (gave up)"):
        return unknown(f"{reason}, after a worker claimed the host")
    return {"status": HostState.FAILED, "ran": False, "error": reason, "detail": {}}


def unknown(reason: str) -> dict[str, Any]:
    """A runner's result for a host whose fate on the device nobody knows."""
    return {"status": HostState.UNKNOWN, "ran": True, "error": reason, "detail": {}}


def _first(job: HostJob) -> Any:
    """A journal guard: raises `DuplicateDelivery` when the ledger (or this
    very transaction) already holds a `host.dispatched` of the key. It runs
    under the ledger's write lock, after every earlier append committed."""
    from opskit.ledger.store import EVENTS

    query = f"SELECT record FROM {EVENTS} WHERE change_id = ? AND ci = ? AND kind = ?"

    def guard(batch: Any) -> None:
        batch.cursor.execute(batch.ledger.sql(query), (job.change_id, job.ci, DISPATCHED))
        stored = [json.loads(row[0]).get("payload", {}) for row in batch.cursor.fetchall()]
        pending = [e.payload for e in batch.events if e.kind == DISPATCHED and e.ci == job.ci]
        if any(p.get("key") == job.key for p in stored + pending):
            raise DuplicateDelivery(f"{job.key}: delivered before")

    return guard


_CLOSER: list[ThreadPoolExecutor] = []


def _closer() -> ThreadPoolExecutor:
    """One thread that closes finished hosts' sessions."""
    with _CACHE_LOCK:
        if not _CLOSER:
            _CLOSER.append(ThreadPoolExecutor(1, thread_name_prefix="opskit session closer"))
        return _CLOSER[0]


def _flush(ctx: EngineContext, recorder: HostRecorder, outcome: HostSummary) -> None:
    """Waits until the host's queued steps are durable (as the rollout does),
    committed at once: the coordinator waits for this host's result."""
    writer = ctx.journal.group_writer
    if writer is not None:
        writer.hurry()
    try:
        recorder.flush()
    except OpskitError as exc:
        outcome.status, outcome.error = HostState.FAILED, f"recording a step failed: {exc}"
        outcome.detail["error"] = outcome.error


def _record_facts(ctx: EngineContext, job: HostJob, outcome: HostSummary) -> None:
    facts = outcome.run.facts if outcome.run else None
    if facts:
        from opskit.inventory.observed import ObservedStore

        ObservedStore(ctx.engine).record_facts(job.ci, facts, source=f"change {job.change_id}")


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(detail, default=str))
