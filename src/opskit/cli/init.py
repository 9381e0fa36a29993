"""`opskit init`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from opskit.cli.common import GLOBALS, console


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        path: Annotated[Path | None, typer.Argument(help="Folder to create.")] = None,
        force: Annotated[bool, typer.Option(help="Overwrite an existing policy.")] = False,
    ) -> None:
        """Create a new workspace (policy, folders, state database, signing key)."""
        from opskit.workspace import init_workspace

        target = path or Path(GLOBALS.workspace or ".")
        ws = init_workspace(target, db=GLOBALS.db, force=force)
        console.print(f"workspace created at {ws.root}")
