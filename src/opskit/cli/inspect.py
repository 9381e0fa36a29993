"""`opskit inspect`: run the `inspection` runbook as a read-only, recorded
job (`opskit.reports.run_recorded_inspection`) and print its report,
exceptions first. Exit 1 when any exception is found."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opskit.cli.change_common import JunitOpt, parse_params
from opskit.cli.common import console, current_user, plain, print_json, workspace, write_text
from opskit.errors import UsageError


def register(app: typer.Typer) -> None:
    @app.command("inspect")
    def inspect(
        select: Annotated[
            str | None,
            typer.Option("--select", help="CIs to inspect (default: the runbook's selection)."),
        ] = None,
        param: Annotated[
            list[str] | None,
            typer.Option("--param", help="A threshold, KEY=VALUE (repeat); see the runbook."),
        ] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
        out: Annotated[
            Path | None, typer.Option("--out", help="Also write the report (Markdown) here.")
        ] = None,
        junit: JunitOpt = None,
    ) -> None:
        """Inspect CIs read-only (巡检), recorded in the ledger; exit 1 on any exception."""
        from opskit.reports import run_recorded_inspection
        from opskit.reports.junit import check_junit_path, inspection_junit, write_junit

        actor = current_user()
        ws = workspace()
        if out is not None and (out.is_dir() or not out.parent.is_dir()):
            raise UsageError(f"--out {out}: cannot write there")
        check_junit_path(junit)
        result = run_recorded_inspection(ws, actor, select=select, params=parse_params(param or []))
        if out is not None:
            write_text(out, result.report.to_markdown())
        if junit is not None:
            write_junit(inspection_junit(result), junit)
        if as_json:
            print_json(result.to_dict())
        else:
            console.print(plain(result.report.to_markdown()), highlight=False, soft_wrap=True)
            console.print(f"recorded as ledger seq {result.seq}", highlight=False)
        if result.exit_code:
            raise typer.Exit(result.exit_code)
