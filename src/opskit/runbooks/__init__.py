"""Versioned runbooks: the model, the catalog and the per-host executor.

Public API:

- `load_runbook(path, root=None) -> Runbook`, `RunbookCatalog(ws)` with
  ``.list()``, ``.scan()`` (valid runbooks and `InvalidRunbook` errors),
  ``.get("name@version")`` / ``.get("name")`` (latest),
  ``.versions(name)``, ``.resolve(ref_or_path)``.
- `Runbook` (``.ref``, ``.digest``, ``.validate_params(params)``,
  ``.implementation_plan()``, ``.rollback_plan()``, ``.strategy``,
  ``.requires``, phases of `Step`).
- `run_host`, `predict_diff`, `rollback_host`, `HostRun` (its state is an
  `opskit.hoststate.HostState`), `Snapshot` (see `opskit.runbooks.executor`).
- `render_markdown(runbook)` (see `opskit.runbooks.doc`) and the inspection
  report builder `opskit.runbooks.inspection`.
- `opskit.runbooks.rendercheck.render_check(book, cis, params)`: every step
  rendered for every target before a change is assessed; the static checks
  `runbook validate` runs live there too. Parameter value rules (control
  characters, ``x-opskit-multiline``, formats, finite numbers):
  `opskit.runbooks.parameters`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opskit.runbooks.loader import (
    InvalidRunbook,
    RunbookCatalog,
    load_runbook,
    runbook_digest,
    runbook_schema,
)
from opskit.runbooks.model import BackupSpec, Expectation, Runbook, Step, Strategy, Targets

if TYPE_CHECKING:
    from opskit.runbooks.executor import (
        HostRun,
        Recorder,
        RollbackMode,
        Snapshot,
        StepRun,
        predict_diff,
        rollback_host,
        run_host,
    )

# Imported on first use: listing or validating runbooks needs none of the
# executor's dependencies (connectors, hier_config, TextFSM).
_EXECUTOR_NAMES = frozenset(
    {
        "HostRun",
        "Recorder",
        "RollbackMode",
        "Snapshot",
        "StepRun",
        "predict_diff",
        "rollback_host",
        "run_host",
    }
)


def __getattr__(name: str) -> Any:
    if name in _EXECUTOR_NAMES:
        from opskit.runbooks import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'opskit.runbooks' has no attribute {name!r}")


__all__ = [
    "BackupSpec",
    "Expectation",
    "HostRun",
    "InvalidRunbook",
    "Recorder",
    "RollbackMode",
    "Runbook",
    "RunbookCatalog",
    "Snapshot",
    "Step",
    "StepRun",
    "Strategy",
    "Targets",
    "load_runbook",
    "predict_diff",
    "rollback_host",
    "run_host",
    "runbook_digest",
    "runbook_schema",
]
