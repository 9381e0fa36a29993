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
        from opskit.errors import WorkspaceError
        from opskit.workspace import init_workspace

        target = path or Path(GLOBALS.workspace or ".")
        if target.exists() and not target.is_dir():
            raise WorkspaceError(f"{target}: exists and is not a folder")
        try:
            ws = init_workspace(target, db=GLOBALS.db, force=force)
        except OSError as exc:
            # e.g. the path is a file, or a parent cannot be created.
            where = exc.filename or target
            raise WorkspaceError(
                f"{where}: cannot create the workspace ({exc.strerror or exc})"
            ) from None
        console.print(f"workspace created at {ws.root}")
