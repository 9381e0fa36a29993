"""What every CLI command shares: the global options, output helpers and
the conversion of expected errors into one line and an exit code."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape

from opskit.errors import OpskitError, UsageError
from opskit.secrets import redact

if TYPE_CHECKING:
    from opskit.workspace import Workspace

console = Console()
err_console = Console(stderr=True)


@dataclass
class Globals:
    workspace: str | None = None
    db: str | None = None
    user: str | None = None


GLOBALS = Globals()


def workspace() -> Workspace:
    # Imported here: the database layer is too heavy for `--help` (see test_cli_startup).
    from opskit.workspace import Workspace

    return Workspace.open(GLOBALS.workspace, db=GLOBALS.db)


def current_user() -> str:
    user = GLOBALS.user or os.environ.get("OPSKIT_USER")
    if not user:
        raise UsageError("no identity: pass --as USER or set OPSKIT_USER")
    return user


def choice(option: str, value: str, allowed: Iterable[str]) -> str:
    """`value` when it is one of `allowed`, else a one-line usage error (exit 2)
    naming the option and what it accepts."""
    choices = [str(item) for item in allowed]
    if value not in choices:
        raise UsageError(f"{option} {value!r}: use one of {', '.join(choices)}")
    return value


def nonblank(option: str, value: str) -> str:
    """A text option that must say something (a title, a reason, a review);
    a blank one is a one-line usage error (exit 2)."""
    if not value.strip():
        raise UsageError(f"{option}: give a non-empty text")
    return value


def write_text(path: Path, text: str) -> None:
    """Writes an output file (--out); a path that cannot be written is one
    line, not an OSError traceback."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise OpskitError(f"{path}: cannot write ({exc.strerror or exc})") from None


def plain(value: object) -> str:
    """User or device text to embed in rich markup: secrets redacted, and
    brackets escaped so `[/x]` in a title is shown, not parsed as a tag."""
    return escape(redact(str(value)))


def print_json(data: Any) -> None:
    """Machine-readable output: one JSON document on stdout, secrets redacted."""
    sys.stdout.write(redact(json.dumps(data, indent=2, default=str, ensure_ascii=False)) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {redact(message)}", highlight=False, markup=True)
    return typer.Exit(code)
