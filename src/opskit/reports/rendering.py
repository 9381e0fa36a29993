"""Rendering a `Report` as Markdown, self-contained HTML, JSON or CSV.

Markdown and HTML come from the Jinja2 templates in `templates/` (HTML with
autoescaping: ledger text is shown as written, never interpreted), with the
report's language installed as gettext (`opskit.reports.i18n`). HTML has its
CSS inline and its charts as inline SVG (`opskit.reports.charts`): no
external asset, no script. JSON is the report's data; CSV is its one table
(`Report.rows`). Every output passes the secret redactor last. A ledger that
does not verify is named on the first line of every format.

Example:
    >>> render_text(report, "md").splitlines()[0]
    '# 变更管理关键指标报告'
"""

from __future__ import annotations

import csv
import io
import json
from functools import lru_cache
from typing import Any

from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape

from opskit.reports import charts, labels
from opskit.reports.i18n import N_, Translator
from opskit.reports.model import FORMATS, Report, ReportOptionError
from opskit.secrets import redact

BROKEN_LEDGER = N_("THE LEDGER DOES NOT VERIFY")


def render_text(report: Report, fmt: str) -> str:
    """`report` as `fmt` (see the module docstring)."""
    if fmt not in FORMATS:
        raise ReportOptionError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    tr = Translator(report.header.language)
    if fmt == "json":
        text = _json(report, tr)
    elif fmt == "csv":
        text = _csv(report, tr)
    else:
        template = _environment(fmt).get_template(f"{report.kind}.{fmt}")
        text = template.render(_context(report, tr))
    return redact(text)


def note_text(note: dict[str, Any], tr: Translator) -> str:
    return tr.gettext(labels.NOTES[note["key"]]) % note["args"]


def broken_line(report: Report, tr: Translator) -> str | None:
    """The first line of a report on a ledger that does not verify."""
    ledger = report.header.ledger
    if ledger.verified:
        return None
    return f"{tr.gettext(BROKEN_LEDGER)}: {ledger.problem}"


def _json(report: Report, tr: Translator) -> str:
    data = report.to_dict()
    data["notes"] = [{**n, "text": note_text(n, tr)} for n in report.notes]
    line = broken_line(report, tr)
    # The verdict first: a reader of the file sees it before any figure.
    return json.dumps({"ledger_problem": line, **data}, indent=2, ensure_ascii=False) + "\n"


def _csv(report: Report, tr: Translator) -> str:
    buffer = io.StringIO()
    line = broken_line(report, tr)
    if line:
        buffer.write(f"# {line}\r\n")
    columns: dict[str, None] = {}
    for row in report.rows:
        columns.update(dict.fromkeys(row))
    if not columns:
        columns = dict.fromkeys(EMPTY_COLUMNS.get(report.kind, ("empty",)))
    # RFC 4180 line ends: a field holding a CR or an LF is then quoted too.
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\r\n")
    writer.writeheader()
    for row in report.rows:
        writer.writerow({key: _cell(value) for key, value in row.items()})
    return buffer.getvalue()


# The header row of an empty CSV: a valid file with the columns it would have.
EMPTY_COLUMNS = {
    "changes": ("id", "title", "type", "risk", "requester", "approvers", "window", "state"),
    "kpi": ("scope", "since", "until"),
    "compliance": ("ci", "feature", "compliant", "at", "detail", "seq"),
    "backups": ("ci", "status", "at", "age_hours", "hash"),
    "inspection": ("ci", "platform", "check", "status", "detail"),
    "change": ("seq", "at", "kind", "actor", "ci", "hash", "status", "checkpoint"),
}


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else value


@lru_cache(maxsize=2)
def _environment(fmt: str) -> Environment:
    env = Environment(
        loader=PackageLoader("opskit.reports", "templates"),
        autoescape=select_autoescape(enabled_extensions=("html",), default=False),
        extensions=["jinja2.ext.i18n"],
        # A record that lacks a field (an older or a hand-written event) shows
        # nothing there instead of failing the whole report.
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["cell"] = _md_cell
    env.filters["tojson_pretty"] = lambda v: json.dumps(v, indent=2, ensure_ascii=False)
    return env


def _md_cell(value: Any) -> str:
    """A Markdown table cell: one line, pipes escaped."""
    text = "" if value is None else str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _context(report: Report, tr: Translator) -> dict[str, Any]:
    env_globals = {
        "report": report,
        "header": report.header,
        "data": report.data,
        "rows": report.rows,
        "notes": [note_text(n, tr) for n in report.notes],
        "broken": broken_line(report, tr),
        "title": tr.gettext(labels.REPORT_TITLES[report.kind]),
        "lang_tag": report.header.language.replace("_", "-"),
        "tr": tr,
        "code": lambda value: tr.gettext(labels.CODES.get(str(value), str(value))),
        "kpi_name": lambda key: tr.gettext(labels.KPI_NAMES[key]),
        "kpi_definition": lambda key: tr.gettext(labels.KPI_DEFINITIONS[key]),
        "charts": charts.Charts(tr),
        "_": tr.gettext,
        "gettext": tr.gettext,
        "ngettext": tr.ngettext,
    }
    return env_globals
