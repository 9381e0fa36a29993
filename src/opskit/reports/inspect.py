"""`opskit inspect`: the `inspection` runbook as a read-only, recorded job.

`run_recorded_inspection(ws, actor, select=None, params=None) ->
InspectionResult` runs the workspace's `inspection` runbook (read-only: it
has no apply steps) on the selected CIs (default: the runbook's own
selection) and records one `inspection.run` ledger event with the actor,
the runbook, the selection, the parameters and the per-host results. No
change request is needed. The result is typed so that other writers (a
JUnit file) take it as it is: `result.report` is the
`opskit.runbooks.inspection.InspectionReport` (hosts, findings, exceptions
first), `result.runs` the `HostRun`s, `result.seq` the ledger record.

Example:
    >>> result = run_recorded_inspection(ws, "alice", select="platform:cisco_ios")
    >>> result.seq, result.report.summary()["exceptions"], result.exit_code
    (31, 1, 1)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opskit.reports.model import ReportError
from opskit.reports.operations import INSPECTION_KIND

if TYPE_CHECKING:
    from opskit.runbooks.executor import HostRun
    from opskit.runbooks.inspection import InspectionReport
    from opskit.workspace import Workspace

RUNBOOK = "inspection"


@dataclass
class InspectionResult:
    """A recorded inspection: the report, the host runs and the ledger seq."""

    report: InspectionReport
    runs: list[HostRun]
    seq: int
    runbook: str
    selection: str
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """1 when any exception was found or a host could not be inspected, else 0."""
        summary = self.report.summary()
        return 1 if summary["exceptions"] or summary["hosts_failed"] else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "runbook": self.runbook,
            "selection": self.selection,
            "parameters": self.parameters,
            **self.report.to_dict(),
        }


def run_recorded_inspection(
    ws: Workspace,
    actor: str,
    *,
    select: str | None = None,
    params: Mapping[str, Any] | None = None,
    inventory: str | None = None,
) -> InspectionResult:
    """Runs and records an inspection (see the module docstring)."""
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory import load_workspace_inventory
    from opskit.ledger import Ledger
    from opskit.runbooks import RunbookCatalog
    from opskit.runbooks.inspection import run_inspection

    book = RunbookCatalog(ws).get(RUNBOOK)
    if book.apply:
        raise ReportError(f"runbook {book.ref}: an inspection must not have apply steps")
    values = book.validate_params(dict(params or {}))
    selection = select or book.targets.select or "*"
    cis = [
        ci
        for ci in load_workspace_inventory(ws, inventory).select(selection)
        if not book.targets.platforms or ci.platform in book.targets.platforms
    ]
    if not cis:
        raise ReportError(f"--select {selection!r}: no CI the inspection runbook can inspect")
    ledger = Ledger.open(ws)
    with ConnectionPool(max(1, min(len(cis), 20))) as pool:
        report, runs = run_inspection(book, cis, pool=pool, params=values, ledger=ledger)
    payload = {
        "runbook": book.ref,
        "runbook_digest": book.digest,
        "selection": selection,
        "parameters": values,
        "report": report.to_dict(),
    }
    event = ledger.append(INSPECTION_KIND, actor=actor, payload=payload)
    return InspectionResult(report, runs, event.seq, book.ref, selection, dict(values))
