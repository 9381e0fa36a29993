"""The reports part of `make demo`: what an auditor and a service manager get.

`write_demo_reports(root, out=None) -> dict` signs a checkpoint over the
demo's ledger (so every record of the evidence is covered by one), then
writes, under `<workspace>/reports/`, the evidence report of the latest
rolled-back change (HTML and Markdown, English and Chinese) and the KPI
report of the last 30 days (HTML, both languages), and prints where they
are and the KPI values. It uses only `opskit.reports` and the ledger's
public API.

Example:
    >>> write_demo_reports("demo-workspace")["files"][0]
    PosixPath('.../demo-workspace/reports/CHG-000004-evidence.en.html')
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from rich.console import Console

from opskit import reports
from opskit.ledger import Ledger
from opskit.reports.i18n import Translator
from opskit.reports.labels import KPI_NAMES
from opskit.workspace import Workspace


def latest_rolled_back(ledger: Ledger) -> str:
    """The id of the most recent change that ended rolled back."""
    events = list(ledger.reader().events(kind="change.rolled_back"))
    if not events or events[-1].change_id is None:
        raise RuntimeError("the demo ledger has no rolled-back change to report on")
    return events[-1].change_id


def write_demo_reports(root: str | Path, *, out: Console | None = None) -> dict[str, Any]:
    """Writes the demo's reports (see the module docstring); returns the files and KPIs."""
    out = out or Console()
    ws = Workspace.open(Path(root).resolve())
    ledger = Ledger.open(ws)
    out.rule("reports for the auditor and the service manager")
    checkpoint = ledger.checkpoint(actor="erin")
    out.print(f"  checkpoint signed by erin at seq {checkpoint.seq}", highlight=False)
    change_id = latest_rolled_back(ledger)
    folder = ws.root / "reports"
    files = []
    for lang in ("en", "zh_CN"):
        evidence = reports.change_report(ws, change_id, lang=lang)
        for fmt in ("html", "md"):
            path = folder / f"{change_id}-evidence.{lang}.{fmt}"
            reports.write(evidence, fmt, path)
            files.append(path)
        kpi = reports.kpi_report(ws, by="week", lang=lang)
        path = folder / f"kpi.{lang}.html"
        reports.write(kpi, "html", path)
        files.append(path)
    out.print(
        f"  the evidence report of the rolled-back change {change_id} and the KPI report"
        f" (HTML: open in a browser, offline), in {folder}:",
        highlight=False,
    )
    for path in files:
        out.print(f"    {path}", highlight=False)
    figures = kpi.data["figures"]
    tr = Translator("en")
    out.print("  KPIs of the last 30 days:", highlight=False)
    for key, figure in figures.items():
        out.print(f"    {tr.gettext(KPI_NAMES[key]):>42}: {tr.figure(figure)}", highlight=False)
    return {"change": change_id, "files": files, "kpi": figures}


if __name__ == "__main__":
    write_demo_reports(sys.argv[1] if len(sys.argv) > 1 else "demo-workspace")
