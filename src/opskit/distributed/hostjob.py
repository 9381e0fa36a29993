"""The worker's side: runs one `HostJob` in the worker's own workspace.

The worker opens its workspace configuration itself (its database URL, its
runbooks, its inventory and credential references), so the message says only
which change, host and step. Before any device is touched it checks, in order:

1. the opskit version of the coordinator is its own;
2. the runbook the change was approved with is here, with the approved digest;
3. the idempotency claim: the first delivery of (change, host, step) records
   `host.dispatched` in the ledger; any later one finds it and records
   `host.duplicate_delivery` instead, and runs nothing. On PostgreSQL the
   check and the record are one critical section (an advisory lock on the
   key), so two workers holding the same message cannot both pass.

A check that fails fails the host with the reason (`host.failed`), nothing
touched. The result is a `HostSummary.to_dict()` plus its `detail`, e.g.::

    {"status": "ok", "ran": True, "config_hash": "sha256:...", "error": None,
     "detail": {"proof": None, ...}}
"""

from __future__ import annotations

import contextlib
import threading
import zlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from opskit import __version__
from opskit.changes.hostrun import HostWork, record_ready
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
    change, book, inventory = _approved(ctx, job.change_id, job.phase)
    ci = inventory.get(job.ci)
    from opskit.connectors.pool import ConnectionPool

    with ConnectionPool(4) as pool:
        if job.phase == "rollback":
            outcome = HostSummary(ci.name, HostState.FAILED, batch=job.batch, ran=True)
            work.roll_back(change, book, ci, outcome, pool)
        else:
            recorder = work.host_recorder(ci.name, queue=False)
            outcome = work.run(change, book, ci, job.batch or 0, pool, recorder)
    _record_facts(ctx, job, outcome)
    return {**outcome.to_dict(), "ran": outcome.ran, "detail": _plain(outcome.detail)}


_APPROVED: dict[str, tuple[Any, Any, Any]] = {}
_APPROVED_LOCK = threading.Lock()


def _approved(ctx: EngineContext, change_id: str, phase: str) -> tuple[Any, Any, Any]:
    """The change, its runbook and its inventory, read once per change and
    phase by this worker, as the local rollout reads them once per apply."""
    key = f"{change_id}/{phase}"
    with _APPROVED_LOCK:
        if key not in _APPROVED:
            change = ctx.store.get(change_id)
            book = ctx.catalog.get(change.runbook_ref)
            while len(_APPROVED) >= 16:
                _APPROVED.pop(next(iter(_APPROVED)))
            _APPROVED[key] = (change, book, ctx.inventory(change.inventory))
        return _APPROVED[key]


def _refusal(ctx: EngineContext, job: HostJob) -> str | None:
    if job.version != __version__:
        return f"worker runs opskit {__version__}, the coordinator {job.version}"
    try:
        change = ctx.store.get(job.change_id)
        book = ctx.catalog.get(change.runbook_ref)
        if book.digest != job.runbook_digest:
            ctx.forget_catalog()  # read once more: the files may have changed since
            book = ctx.catalog.get(change.runbook_ref)
    except OpskitError as exc:
        return f"runbook not available on this worker: {exc}"
    if book.digest != job.runbook_digest:
        return (
            f"runbook {change.runbook_ref} here has digest {book.digest}, "
            f"the change was approved with {job.runbook_digest}"
        )
    return None


def claim(ctx: EngineContext, job: HostJob, worker: str) -> bool:
    """True for the first delivery of `job.key` (recorded `host.dispatched`);
    False for a later one (recorded `host.duplicate_delivery`)."""
    record = HostWork(ctx, job.change_id, job.actor).recorder(job.ci)
    with _key_lock(ctx, job.key):
        for event in ctx.ledger.events(change_id=job.change_id, ci=job.ci, kind=DISPATCHED):
            if event.payload.get("key") == job.key:
                record(DUPLICATE, record_ready({"key": job.key, "worker": worker}))
                return False
        record(DISPATCHED, record_ready({"key": job.key, "worker": worker, "phase": job.phase}))
    return True


@contextlib.contextmanager
def _key_lock(ctx: EngineContext, key: str) -> Iterator[None]:
    """A PostgreSQL session advisory lock on `key` (SQLite: one machine, the
    ledger's own write lock orders the appends)."""
    engine = ctx.engine
    if engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    number = zlib.crc32(key.encode()) - 2**31
    with engine.connect() as connection:
        connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": number})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": number})
            connection.commit()


def _record_facts(ctx: EngineContext, job: HostJob, outcome: HostSummary) -> None:
    facts = outcome.run.facts if outcome.run else None
    if facts:
        from opskit.inventory.observed import ObservedStore

        ObservedStore(ctx.engine).record_facts(job.ci, facts, source=f"change {job.change_id}")


def _plain(detail: dict[str, Any]) -> dict[str, Any]:
    import json

    return json.loads(json.dumps(detail, default=str))
