"""Building reports from a workspace: one function per report type.

Each function opens the workspace's ledger, verifies it, computes the
report and returns a `Report` in the chosen language (`lang`: zh_CN or en;
None: the policy's `report_language`, then the locale). A ledger that does
not verify still gives a report, whose `ok` is False and whose first line
says so. `render(report, fmt)` turns it into Markdown, HTML, JSON or CSV
and `write(report, fmt, out)` writes it (one line on an unwritable path).

Example:
    >>> report = kpi_report(ws, since="2026-11-01", until="2026-11-30", lang="zh_CN")
    >>> report.data["figures"]["rollback_rate"]["value"]
    50.0
    >>> write(report, "html", Path("kpi.html"))
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opskit.errors import LedgerError
from opskit.reports.collect import Source, open_source
from opskit.reports.model import Period, Report, make_period

if TYPE_CHECKING:
    from opskit.workspace import Workspace

log = logging.getLogger(__name__)
Computed = tuple[dict[str, Any], list[dict[str, Any]]]


def _policy_language(ws: Workspace) -> str | None:
    return ws.policy.report_language


def _build(
    ws: Workspace,
    kind: str,
    lang: str | None,
    period: Period | None,
    compute: Callable[[Source], Computed],
) -> Report:
    from opskit.reports.i18n import choose_language

    language = choose_language(lang, _policy_language(ws))
    source = open_source(ws)
    try:
        data, rows = compute(source)
    except (LedgerError, ValueError, KeyError, TypeError) as exc:
        if source.status.verified:
            raise
        # A ledger that does not verify may not even parse: the report then
        # says only that (its first line), with no figures.
        log.debug("report on a broken ledger: %s", exc)
        data, rows = {}, []
    report = Report(kind, source.header(period, language), data, rows)
    if source.status.checkpoint is None or source.status.checkpoint.seq < source.status.head_seq:
        report.notes.append({"key": "no_checkpoint", "args": {}})
    return report


def change_report(ws: Workspace, change_id: str, *, lang: str | None = None) -> Report:
    """The evidence report of one change (`opskit.reports.evidence`)."""
    from opskit.reports.evidence import evidence_data

    report = _build(ws, "change", lang, None, lambda s: evidence_data(s, change_id))
    report.notes = [n for n in report.notes if n["key"] != "no_checkpoint" or _uncovered(report)]
    return report


def _uncovered(report: Report) -> bool:
    return any(row.get("checkpoint") is None for row in report.rows)


def changes_report(
    ws: Workspace,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    select: str | None = None,
    runbook: str | None = None,
    lang: str | None = None,
) -> Report:
    """The change log of a period (`opskit.reports.changelog`)."""
    from opskit.reports.changelog import changelog_data
    from opskit.reports.kpi import outcomes_per_week

    period = make_period(since, until)

    def compute(source: Source) -> Computed:
        data, rows = changelog_data(source, period, select=select, runbook=runbook)
        listed = {row["id"] for row in rows}
        chosen = [r for r in source.changes().values() if r.id in listed]
        data["per_week"] = outcomes_per_week(chosen, period)
        return data, rows

    report = _build(ws, "changes", lang, period, compute)
    if not report.rows:
        report.notes.insert(0, _no_changes(period))
    return report


def _no_changes(period: Period) -> dict[str, Any]:
    return {"key": "no_changes", "args": period.to_dict()}


def kpi_report(
    ws: Workspace,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    by: str = "month",
    lang: str | None = None,
) -> Report:
    """The KPI report of a period, with its trend (`opskit.reports.kpi`)."""
    from opskit.reports.kpi import kpi_data
    from opskit.reports.model import ReportOptionError

    if by not in ("month", "week"):
        raise ReportOptionError(f"--by {by!r}: use month or week")
    period = make_period(since, until)
    targets = _targets(ws)
    report = _build(ws, "kpi", lang, period, lambda s: kpi_data(s, period, by=by, targets=targets))
    if not report.data.get("changes"):
        report.notes.insert(0, _no_changes(period))
    return report


def _targets(ws: Workspace) -> dict[str, float | None]:
    targets = ws.policy.kpi_targets.model_dump()
    for key in ("approval_lead_time", "time_to_implement"):
        targets[key] = targets.pop(f"{key}_hours")
    return targets


def compliance_report(
    ws: Workspace,
    *,
    since: str | datetime | None = None,
    until: str | datetime | None = None,
    lang: str | None = None,
) -> Report:
    """Compliance per CI and feature (`opskit.reports.operations`)."""
    from opskit.reports.operations import compliance_data

    period = make_period(since, until)
    report = _build(ws, "compliance", lang, period, lambda s: compliance_data(s, period))
    if not report.data.get("measured"):
        report.notes.insert(0, {"key": "no_compliance", "args": {}})
    return report


def backups_report(
    ws: Workspace, *, max_age_hours: float = 24.0, lang: str | None = None
) -> Report:
    """The backup log: which CIs have a backup, how old, which are missing."""
    from opskit.reports.operations import backups_data

    return _build(ws, "backups", lang, None, lambda s: backups_data(s, max_age_hours=max_age_hours))


def inspection_report(ws: Workspace, *, seq: int | None = None, lang: str | None = None) -> Report:
    """The latest (or the given) recorded inspection, exceptions first."""
    from opskit.reports.operations import inspection_data

    report = _build(ws, "inspection", lang, None, lambda s: inspection_data(s, seq=seq))
    if not report.data.get("measured"):
        report.notes.insert(0, {"key": "no_inspection", "args": {}})
    return report


def render(report: Report, fmt: str) -> str:
    """The report as `fmt` (md, html, json, csv), secrets masked."""
    from opskit.reports.rendering import render_text

    return render_text(report, fmt)


def write(report: Report, fmt: str, out: Path) -> str:
    """Renders `report` and writes it to `out`; returns the text. An
    unwritable place is one line (OpskitError), and nothing is written."""
    from opskit.ledger.output import OutputFile

    text = render(report, fmt)
    try:
        with OutputFile(out) as handle:
            handle.write(text)
    except LedgerError as exc:
        from opskit.reports.model import ReportError

        raise ReportError(str(exc).replace("ledger: ", "")) from None
    return text
