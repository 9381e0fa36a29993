"""`opskit change`: being built (see the issue that owns it)."""

from __future__ import annotations

import typer

app = typer.Typer(help="change commands.", no_args_is_help=True)
