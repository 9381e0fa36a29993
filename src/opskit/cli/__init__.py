"""The `opskit` command: a thin typer layer over the public Python API."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer

from opskit import __version__
from opskit.cli.common import GLOBALS, console, err_console, plain
from opskit.cli.group import OpskitGroup
from opskit.errors import OpskitError

app = typer.Typer(
    cls=OpskitGroup,  # one-line usage errors, plain --help placeholders
    name="opskit",
    help="Change automation: versioned runbooks, a CMDB inventory, a tamper-evident ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        console.print(f"opskit {__version__}")
        raise typer.Exit()


@app.callback()
def _globals(
    workspace: Annotated[
        str | None,
        typer.Option("--workspace", "-w", envvar="OPSKIT_WORKSPACE", help="Workspace folder."),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option("--db", envvar="OPSKIT_DB", help="Database URL (default: SQLite, .opskit/)."),
    ] = None,
    user: Annotated[
        str | None, typer.Option("--as", envvar="OPSKIT_USER", help="Who is acting.")
    ] = None,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    GLOBALS.workspace, GLOBALS.db, GLOBALS.user = workspace, db, user


def _register() -> None:
    from opskit.cli import (
        audit,
        backup,
        change,
        compliance,
        init,
        inspect,
        intended,
        inventory,
        lab,
        notify,
        report,
        runbook,
        schedule,
        witness,
        worker,
    )

    init.register(app)
    app.add_typer(inventory.app, name="inventory")
    app.add_typer(lab.app, name="lab")
    app.add_typer(audit.app, name="audit")
    app.add_typer(runbook.app, name="runbook")
    app.add_typer(change.app, name="change")
    app.add_typer(witness.app, name="witness")
    app.add_typer(report.app, name="report")
    inspect.register(app)
    app.add_typer(intended.app, name="intended")
    app.add_typer(backup.app, name="backup")
    app.add_typer(compliance.app, name="compliance")
    notify.register(app)
    worker.register(app)
    schedule.register(app)


_register()


DEBUG_ENV = "OPSKIT_DEBUG"


def _debug_logging() -> None:
    """OPSKIT_DEBUG=1 shows opskit's debug records on stderr, among them what
    the SSH libraries logged about a failed handshake (opskit.connectors.ssh)."""
    if os.environ.get(DEBUG_ENV, "").strip().lower() not in ("1", "true", "yes"):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("debug: %(name)s: %(message)s"))
    logger = logging.getLogger("opskit")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)


def main() -> None:
    """Entry point: an expected error becomes one line on stderr and exit 1.

    Usage errors are one line too, and exit 2 (opskit.cli.group); anything else
    is a bug and keeps its traceback.
    """
    from opskit.notify.trigger import background_delivery

    _debug_logging()
    try:
        with background_delivery():  # commands that append events start a sender
            app()
    except OpskitError as exc:
        # One line whatever the terminal width; the message is text, not markup.
        message = plain(str(exc))
        err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
