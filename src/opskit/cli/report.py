"""`opskit report`: the reports of `opskit.reports`, written as Markdown,
HTML, JSON or CSV, in Chinese or English. A thin layer: every figure comes
from the Python API; this module only reads options and writes the text."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from opskit.cli.common import console, err_console, plain, workspace

if TYPE_CHECKING:
    from opskit.reports import Report

app = typer.Typer(
    help="Reports from the verified ledger: change evidence, change log, KPIs, compliance, "
    "backups, inspection (md, html, json, csv; zh_CN or en).",
    no_args_is_help=True,
)

Format = Annotated[str, typer.Option("--format", "-f", help="md, html, json or csv.")]
Out = Annotated[
    Path | None, typer.Option("--out", "-o", help="Write to this file (default: stdout).")
]
Lang = Annotated[
    str | None,
    typer.Option("--lang", help="zh_CN or en (default: the policy's report_language, the locale)."),
]
Since = Annotated[
    str | None,
    typer.Option("--since", help="Start, ISO 8601 date or time (default: 30 days before --until)."),
]
Until = Annotated[
    str | None,
    typer.Option("--until", help="End, ISO 8601; a bare date includes that day (default: now)."),
]


def _emit(report: Report, fmt: str, out: Path | None) -> None:
    """Writes or prints the report; says where, repeats its first note, and
    exits 1 when the ledger did not verify."""
    from opskit.reports import render, write
    from opskit.reports.i18n import Translator
    from opskit.reports.model import FORMATS, ReportOptionError
    from opskit.reports.rendering import broken_line, note_text

    if fmt not in FORMATS:
        raise ReportOptionError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if out is not None:
        write(report, fmt, out)
        console.print(f"{report.kind} report written to {plain(out)}", highlight=False)
    else:
        typer.echo(render(report, fmt), nl=False)
    tr = Translator(report.header.language)
    for note in report.notes:
        if note["key"] == "no_changes":
            err_console.print(plain(note_text(note, tr)), highlight=False, soft_wrap=True)
    line = broken_line(report, tr)
    if line is not None:
        err_console.print(f"[red]{plain(line)}[/red]", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


@app.command("change")
def change(
    change_id: Annotated[str, typer.Argument(help="The change, e.g. CHG-000042.")],
    fmt: Format = "md",
    out: Out = None,
    lang: Lang = None,
) -> None:
    """The evidence report of one change, with the status of every record."""
    from opskit.reports import change_report

    _emit(change_report(workspace(), change_id, lang=lang), fmt, out)


@app.command("changes")
def changes(
    since: Since = None,
    until: Until = None,
    select: Annotated[
        str | None,
        typer.Option("--select", help="Only changes touching these CIs (name, owner, site...)."),
    ] = None,
    runbook: Annotated[
        str | None, typer.Option("--runbook", help="Only changes of this runbook (NAME[@VERSION]).")
    ] = None,
    fmt: Format = "md",
    out: Out = None,
    lang: Lang = None,
) -> None:
    """The change log of a period: one row per change requested in it."""
    from opskit.reports import changes_report

    report = changes_report(
        workspace(), since=since, until=until, select=select, runbook=runbook, lang=lang
    )
    _emit(report, fmt, out)


@app.command("kpi")
def kpi(
    since: Since = None,
    until: Until = None,
    by: Annotated[str, typer.Option("--by", help="Trend per month or week.")] = "month",
    fmt: Format = "md",
    out: Out = None,
    lang: Lang = None,
) -> None:
    """The change-management KPIs of a period and their trend, against kpi_targets."""
    from opskit.reports import kpi_report

    _emit(kpi_report(workspace(), since=since, until=until, by=by, lang=lang), fmt, out)


@app.command("compliance")
def compliance(
    since: Since = None, until: Until = None, fmt: Format = "md", out: Out = None, lang: Lang = None
) -> None:
    """Compliance per CI and feature, from the ledger's compliance results."""
    from opskit.reports import compliance_report

    _emit(compliance_report(workspace(), since=since, until=until, lang=lang), fmt, out)


@app.command("backups")
def backups(
    max_age: Annotated[
        float, typer.Option("--max-age-hours", help="A backup older than this is stale.")
    ] = 24.0,
    fmt: Format = "md",
    out: Out = None,
    lang: Lang = None,
) -> None:
    """The backup log: which CIs have a backup, how old, which are missing."""
    from opskit.reports import backups_report

    _emit(backups_report(workspace(), max_age_hours=max_age, lang=lang), fmt, out)


@app.command("inspection")
def inspection(
    seq: Annotated[
        int | None, typer.Option("--seq", help="This recorded run (default: the latest).")
    ] = None,
    fmt: Format = "md",
    out: Out = None,
    lang: Lang = None,
) -> None:
    """The inspection (巡检) report of a recorded `opskit inspect` run, exceptions first."""
    from opskit.reports import inspection_report

    _emit(inspection_report(workspace(), seq=seq, lang=lang), fmt, out)
