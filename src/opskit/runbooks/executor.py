"""The per-host executor: one runbook on one CI.

Public API (the change engine, `opskit.changes`, drives it per host and
per batch; this module knows nothing of change requests, approvals or
strategy):

``run_host(runbook, ci, params, *, pool, recorder=None, dry_run=False,
rollback_mode="on_failure", templates_dir=None) -> HostRun``

    precheck → backup snapshot → apply → verify → (on failure) rollback →
    verify the rollback. ``params`` are the change's validated parameters
    (`Runbook.validate_params`); secret parameters are references, resolved
    here and registered for redaction. ``pool`` is an
    `opskit.connectors.pool.ConnectionPool` (``pool.session(ci, name)``); the
    run holds one session per connector until the host is done; the caller
    closes the pool. ``rollback_mode``: "on_failure" rolls the host back
    when apply or verify fails; "never" leaves it failed (the caller
    decides, e.g. strategy ``stop``).

    ``recorder(kind, payload, blobs)`` is called at each step boundary with
    kind one of ``host.precheck``, ``host.backup``, ``host.applied``,
    ``host.verified``, ``host.verify_failed``, ``host.rolled_back``,
    ``host.rollback_failed``, ``host.failed`` (and ``host.dry_run`` for dry
    runs, ``host.confirmed`` after a commit-confirm was confirmed). Payloads
    are JSON-ready dicts: ``steps`` (each with commands, outputs from the
    connector transcripts, diff, timings, status, expectation results),
    ``diff``, ``config_hash``, ``proof``...; ``blobs`` maps a name to content
    (the snapshot "config" or "file:/etc/x"; "diff"). The backup snapshot is
    recorded (``host.backup``) BEFORE any apply step runs. Everything passed
    to the recorder is redacted of registered secrets first.

    With ``dry_run=True`` nothing on a device changes: ``config`` steps ask
    the connector for its predicted diff (``apply_config(dry_run=True)``) or,
    when it cannot predict, compute one with hier_config from the running
    configuration; ``perform`` steps run in check mode where the connector has
    ``check_mode`` and are otherwise skipped; precheck/verify are not run.

``predict_diff(runbook, ci, params, pool) -> str | None``
    The predicted diff of the apply phase (a dry run), None when no
    connector of the runbook can predict one for this CI.

``rollback_host(runbook, ci, snapshot, pool, recorder=None, params=None) -> HostRun``
    Rolls a host back to a snapshot taken by an earlier run (``opskit change
    rollback`` of a completed change), with the same proof as an automatic
    rollback. ``snapshot``: a `Snapshot` (``Snapshot.from_blobs`` rebuilds one
    from the ledger's blobs; pass ``absent=`` the snapshot's "absent" files),
    the configuration text, or None when the runbook took no snapshot of
    this platform (its explicit rollback steps run, with no proof).

`HostRun` (``.to_dict()``): ``ci``, ``status`` (`opskit.hoststate.HostState`), ``steps``,
``snapshot``, ``diff`` (snapshot → configuration after apply),
``predicted_diff``, ``config_hash`` (after), ``proof`` (after a rollback:
method, snapshot_hash, after_hash, equal, residual_diff), ``exceptions``
(failed checks with ``on_fail: warn``, e.g. inspection findings), ``facts``
(data gathered by steps with ``check:``), ``error``, timings.

This module is the façade; the parts live in their own modules:
`opskit.runbooks.results` (`StepRun`, `HostRun`),
`opskit.runbooks.snapshot` (`Snapshot`), `opskit.runbooks.backup` (capture,
restore, proof), `opskit.runbooks.steps` (running one step),
`opskit.runbooks.phases` (the phase machine), `opskit.runbooks.context` (the
state one host run shares) and `opskit.runbooks.records` (`record_ready`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opskit.errors import ConnectorError
from opskit.hoststate import HostState
from opskit.inventory.model import CI
from opskit.runbooks.context import (
    ConnectorPool,
    HostContext,
    Recorder,
    RollbackMode,
    resolve_params,
)
from opskit.runbooks.model import Runbook
from opskit.runbooks.phases import HostExecution
from opskit.runbooks.records import now, record_ready
from opskit.runbooks.results import HostRun, StepRun
from opskit.runbooks.snapshot import Snapshot


def run_host(
    runbook: Runbook,
    ci: CI,
    params: Mapping[str, Any],
    *,
    pool: ConnectorPool,
    recorder: Recorder | None = None,
    dry_run: bool = False,
    rollback_mode: RollbackMode = "on_failure",
    templates_dir: Path | None = None,
) -> HostRun:
    """Runs the runbook on one CI (see the module docstring)."""
    execution = HostExecution(
        HostContext(
            runbook, ci, params, pool, recorder, dry_run=dry_run, templates_dir=templates_dir
        )
    )
    return execution.execute(rollback_mode)


def predict_diff(
    runbook: Runbook, ci: CI, params: Mapping[str, Any], pool: ConnectorPool
) -> str | None:
    """The predicted diff of the apply phase on this CI: "" when nothing
    would change, None when it cannot be predicted."""
    run = run_host(runbook, ci, params, pool=pool, dry_run=True)
    if run.status == HostState.FAILED:
        raise ConnectorError(run.error or f"{ci.name}: the dry run failed")
    return run.predicted_diff


def rollback_host(
    runbook: Runbook,
    ci: CI,
    snapshot: Snapshot | str | None,
    pool: ConnectorPool,
    recorder: Recorder | None = None,
    params: Mapping[str, Any] | None = None,
    templates_dir: Path | None = None,
) -> HostRun:
    """Rolls a host back to ``snapshot`` (see the module docstring)."""
    execution = HostExecution(
        HostContext(runbook, ci, params or {}, pool, recorder, templates_dir=templates_dir)
    )
    if isinstance(snapshot, str):
        name, spec = execution.snapshots.snapshot_connector()
        snapshot = Snapshot(name, spec.source, ci.platform, config=snapshot)
    # None: no snapshot was taken (backup off for this platform); explicit
    # rollback steps still run, without a comparison to prove them.
    run = execution.run
    run.started = now()
    run.snapshot = snapshot
    start = time.perf_counter()
    execution.ctx.applied_any = True
    try:
        ok = execution.rollback(snapshot)
    finally:
        execution.ctx.sessions.close()
    run.status = HostState.ROLLED_BACK if ok else HostState.ROLLBACK_FAILED
    run.finished = now()
    run.duration = time.perf_counter() - start
    return run


__all__ = [
    "ConnectorPool",
    "HostRun",
    "Recorder",
    "RollbackMode",
    "Snapshot",
    "StepRun",
    "predict_diff",
    "record_ready",
    "resolve_params",
    "rollback_host",
    "run_host",
]
