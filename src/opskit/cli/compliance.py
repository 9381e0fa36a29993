"""`opskit compliance`: compliance runs, history, remediation (over `opskit.compliance`)."""

from __future__ import annotations

import typer

app = typer.Typer(
    help="Configuration compliance: run, history, show, remediate (as a change).",
    no_args_is_help=True,
)
