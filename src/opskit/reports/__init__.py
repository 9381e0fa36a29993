"""Reports for auditors, service managers and pipelines, computed from the
verified ledger: the evidence report of a change, the change log of a
period, the KPIs, compliance, the backup log and the inspection report, in
Markdown, self-contained HTML, JSON and CSV, in Simplified Chinese and
English. docs/reports.md describes each report and defines every figure.

- `change_report(ws, change_id)`, `changes_report(ws, since=, until=,
  select=, runbook=)`, `kpi_report(ws, since=, until=, by=)`,
  `compliance_report(ws, since=, until=)`, `backups_report(ws,
  max_age_hours=)`, `inspection_report(ws, seq=)`: each takes `lang=`
  (zh_CN or en) and returns a `Report`;
- `render(report, fmt)` and `write(report, fmt, out)`;
- `run_recorded_inspection(ws, actor, select=, params=)`: `opskit inspect`.

Example:
    >>> report = change_report(ws, "CHG-000002", lang="en")
    >>> change = report.data["change"]
    >>> report.ok, change["outcome"]
    (True, 'rolled_back')
    >>> render(report, "md").splitlines()[0]
    '# Change evidence report: CHG-000002'
"""

from opskit.reports.api import (
    backups_report,
    change_report,
    changes_report,
    compliance_report,
    inspection_report,
    kpi_report,
    render,
    write,
)
from opskit.reports.inspect import InspectionResult, run_recorded_inspection
from opskit.reports.model import FORMATS, LANGUAGES, Period, Report, ReportError

__all__ = [
    "FORMATS",
    "LANGUAGES",
    "InspectionResult",
    "Period",
    "Report",
    "ReportError",
    "backups_report",
    "change_report",
    "changes_report",
    "compliance_report",
    "inspection_report",
    "kpi_report",
    "render",
    "run_recorded_inspection",
    "write",
]
