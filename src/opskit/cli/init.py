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
        examples: Annotated[
            bool | None,
            typer.Option(
                "--examples/--no-examples",
                help="Copy the shipped example inventories, runbooks, playbooks and templates"
                " (the default for a new workspace; existing files are kept). In an existing"
                " workspace, --examples only adds the examples it lacks.",
            ),
        ] = None,
    ) -> None:
        """Create a new workspace (policy, folders, state database, signing key, examples)."""
        from opskit.errors import WorkspaceError
        from opskit.workspace import POLICY_FILE, copy_examples, init_workspace

        target = path or Path(GLOBALS.workspace or ".")
        if target.exists() and not target.is_dir():
            raise WorkspaceError(f"{target}: exists and is not a folder")
        if examples and not force and (target / POLICY_FILE).is_file():
            copied = copy_examples(target)
            console.print(f"{len(copied)} example file(s) added to {target.resolve()}")
            return
        try:
            ws = init_workspace(target, db=GLOBALS.db, force=force, examples=examples is not False)
        except OSError as exc:
            # e.g. the path is a file, or a parent cannot be created.
            where = exc.filename or target
            raise WorkspaceError(
                f"{where}: cannot create the workspace ({exc.strerror or exc})"
            ) from None
        console.print(f"workspace created at {ws.root}")
        if examples is False:
            console.print(
                f"no examples copied: put an inventory under {ws.inventories_dir} and name it"
                f" in {ws.policy_path} (inventory:)"
            )
