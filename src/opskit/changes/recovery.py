"""Crash recovery: changes a runner left in progress when it ended (kill -9,
a lost machine). `recover` reads what the ledger shows per host, rebuilds
the working index and the CMDB records from it, releases the locks, marks
the change failed and, when asked, rolls back every host that may have
changed (`opskit.changes.rollback`). It sits above the rollout: it uses it,
never the other way round.
"""

from __future__ import annotations

from typing import Any

from opskit.changes.context import EngineContext
from opskit.changes.heartbeat import runner_gone
from opskit.changes.model import ACTIVE_STATES, ChangeRequest, State
from opskit.changes.rollback import rollback_change
from opskit.changes.rollout import Rollout
from opskit.changes.summary import (
    ORPHAN_LOCKS,
    RECOVERED,
    STILL_RUNNING,
    RecoveredHost,
    RecoveryReport,
)
from opskit.hoststate import NEVER_STARTED, UNFINISHED, HostState, count_states
from opskit.inventory.observed import ObservedStore
from opskit.policy import Role


def host_states_from_ledger(ctx: EngineContext, change: ChangeRequest) -> dict[str, dict[str, Any]]:
    """What the ledger shows per host: the steps recorded and the last one."""
    per_host: dict[str, dict[str, Any]] = {
        name: {"steps": [], "last": None, "backup": False, "config_hash": None}
        for name in change.targets
    }
    for event in ctx.ledger.events(change_id=change.id):
        ci = event.ci
        if not ci or ci not in per_host:
            continue
        entry = per_host[ci]
        entry["steps"].append(event.kind)
        entry["last"] = event.kind
        if "backup" in event.kind:
            entry["backup"] = True
        payload = event.payload or {}
        if payload.get("config_hash"):
            entry["config_hash"] = payload["config_hash"]
    return per_host


def status_from_steps(steps: list[str]) -> HostState:
    """A host's state as far as its ledger events tell (for an interrupted run)."""
    if not steps:
        return HostState.PENDING
    if "host.rolled_back" in steps:
        return HostState.ROLLED_BACK
    if "host.not_restored" in steps:
        return HostState.NOT_RESTORED
    if "host.rollback_failed" in steps:
        return HostState.ROLLBACK_FAILED
    if "host.verified" in steps:
        return HostState.OK
    if "host.failed" in steps and "host.backup" not in steps:
        return HostState.FAILED  # failed before anything could change
    # Interrupted somewhere between backup and the end: possibly changed.
    return HostState.UNKNOWN


def recover(
    ctx: EngineContext,
    actor: str,
    *,
    rollback: bool = False,
    stale_after: float = 30.0,
    change_id: str | None = None,
) -> list[RecoveryReport]:
    """Finds changes left in progress by a runner that is gone (only
    `change_id`, when given), reports per host what the ledger shows,
    releases their locks and sets them `failed`; with `rollback`, rolls back
    every host that may have changed."""
    if not (ctx.policy.roles_of(actor) & {Role.IMPLEMENTER, Role.CHANGE_MANAGER}):
        ctx.journal.refuse(
            None, actor, "recover", f"{actor} is not an implementer or change_manager in the policy"
        )
    reports: list[RecoveryReport] = []
    now = ctx.clock()
    listed_changes = [ctx.store.get(change_id)] if change_id else ctx.store.list()
    for listed in listed_changes:
        if listed.state not in ACTIVE_STATES:
            continue
        change = ctx.store.get(listed.id)
        if not runner_gone(change, now=now, stale_after=stale_after):
            reports.append(
                RecoveryReport(
                    change.id, change.state.value, STILL_RUNNING, runner_pid=change.runner_pid
                )
            )
            continue
        reports.append(_recover_change(ctx, actor, change, rollback))
    reports.extend(_release_orphan_locks(ctx, actor, change_id))
    return reports


def _recover_change(
    ctx: EngineContext, actor: str, change: ChangeRequest, rollback: bool
) -> RecoveryReport:
    hosts = _recovered_hosts(ctx, change)
    payload_hosts = {name: host.to_dict() for name, host in hosts.items()}
    released = ctx.store.release_locks(change.id)
    ctx.journal.record(
        "change.recovered",
        actor=actor,
        change_id=change.id,
        payload={
            "runner": {"host": change.runner_host, "pid": change.runner_pid},
            "hosts": payload_hosts,
            "locks_released": released,
        },
    )
    cause = "the runner process ended during the rollout (recovered)"
    counts = count_states(h.status for h in hosts.values())
    ctx.store.set_summary(
        change.id,
        {
            "change_id": change.id,
            "state": "failed",
            "cause": cause,
            "counts": counts,
            "hosts": payload_hosts,
        },
    )
    ctx.journal.transition(
        change, State.FAILED, actor=actor, payload={"cause": cause, "recovered": True}
    )
    ctx.store.set_runner(change.id, alive=False)
    report = RecoveryReport(change.id, "failed", RECOVERED, released, hosts=hosts)
    if rollback:
        report.rollback = rollback_change(Rollout(ctx, change.id, actor))
        report.state = report.rollback.state.value
    return report


def _recovered_hosts(ctx: EngineContext, change: ChangeRequest) -> dict[str, RecoveredHost]:
    """Each target as the ledger shows it; the index and the CMDB brought in line."""
    ledger_view = host_states_from_ledger(ctx, change)
    hosts: dict[str, RecoveredHost] = {}
    for name in change.targets:
        indexed = change.hosts.get(name, {}).get("status", HostState.PENDING)
        view = ledger_view.get(name, {})
        status = indexed
        if indexed in UNFINISHED:
            status = status_from_steps(view.get("steps", []))
        hosts[name] = RecoveredHost(
            indexed, status, view.get("steps", []), view.get("last"), view.get("backup", False)
        )
        if status != indexed:
            ctx.store.set_host(
                change.id,
                name,
                status,
                detail={"recovered": True, "last_step": view.get("last")},
            )
        if status not in NEVER_STARTED:  # a CI the run never touched has no record
            _ensure_cmdb_record(ctx, change.id, name, status, view.get("config_hash"))
    return hosts


def _ensure_cmdb_record(
    ctx: EngineContext, change_id: str, ci: str, status: str, config_hash: str | None
) -> None:
    """The rollout writes a host's CMDB record after its ledger steps: one the
    crash cut off is written here, from what the ledger shows."""
    observed = ObservedStore(ctx.ws.engine)
    if any(c.change_id == change_id for c in observed.changes(ci)):
        return
    observed.record_change(ci, change_id, status, config_hash, detail="recovered from the ledger")


def _release_orphan_locks(
    ctx: EngineContext, actor: str, only: str | None = None
) -> list[RecoveryReport]:
    """Locks of changes that are not running (a runner that died between
    locking and starting): released, and said so."""
    holders = ctx.store.lock_holders()
    holders = [h for h in holders if only is None or h == only]
    reports = []
    for change_id in holders:
        state = ctx.store.get(change_id).state
        if state in ACTIVE_STATES:
            continue
        released = ctx.store.release_locks(change_id)
        ctx.journal.record(
            "change.locks_released",
            actor=actor,
            change_id=change_id,
            payload={"locks_released": released, "state": state.value, "reason": "not running"},
        )
        reports.append(RecoveryReport(change_id, state.value, ORPHAN_LOCKS, released))
    return reports
