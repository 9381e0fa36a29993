"""What every CLI command shares: the global options, output helpers and
the conversion of expected errors into one line and an exit code.

Terminal output goes through `console`/`err_console` (`OpskitConsole`): every
string it prints has its control, bidi and other invisible format characters
shown as escapes (`safe_text`), and when the stream is not a terminal (a pipe,
a CI log) nothing is wrapped to 80 columns: tables keep one row a line. JSON
output (`print_json`, `to_json`) is strict JSON.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console, ConsoleDimensions
from rich.markup import escape

from opskit.errors import OpskitError, UsageError
from opskit.secrets import redact

if TYPE_CHECKING:
    from opskit.workspace import Workspace

# Categories a terminal acts on instead of showing: controls (ESC starts a
# terminal sequence, CR overwrites the line), format characters (U+202E
# reverses the text after it; zero-width characters hide), line and paragraph
# separators, and lone surrogates (which cannot even be encoded).
UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})
_SUSPECT = re.compile(r"[^\x20-\x7e\n\t]")  # fast path: plain ASCII is never touched

#: The width used when the output is not a terminal and COLUMNS is unset:
#: nothing wraps, whatever a CI log or a pipe would otherwise get (80).
PIPE_WIDTH = 1_000_000


def _escape_unsafe(match: re.Match[str]) -> str:
    char = match.group()
    if unicodedata.category(char) not in UNSAFE_CATEGORIES:
        return char
    return char.encode("unicode_escape", "backslashreplace").decode("ascii")


def safe_text(text: str) -> str:
    """`text` with every control, bidi/format and separator character shown as
    its Python escape (`\\u202e`, `\\x1b`, `\\r`); newlines and tabs are kept."""
    return _SUSPECT.sub(_escape_unsafe, text)


class OpskitConsole(Console):
    """A rich console that neutralises unsafe characters in everything it
    prints and does not wrap when its stream is not a terminal."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        # Every str a print or a table cell carries passes here, markup or not.
        return super().render_str(safe_text(text), **kwargs)

    @property
    def size(self) -> ConsoleDimensions:
        if self._width is None and not self.is_terminal and "COLUMNS" not in os.environ:
            return ConsoleDimensions(PIPE_WIDTH, super().size.height)
        return super().size

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


console = OpskitConsole()
err_console = OpskitConsole(stderr=True)


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
    # Checked here, before any command can record the name: a control
    # character or an undecodable byte would otherwise reach the ledger's
    # own refusal wording.
    if any(unicodedata.category(char) in _UNSAFE_IN_NAMES for char in user):
        raise UsageError(
            "--as / OPSKIT_USER: an identity has no control, format or undecodable characters"
        )
    return user


_UNSAFE_IN_NAMES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


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
    brackets escaped so `[/x]` in a title is shown, not parsed as a tag, and
    control/bidi characters shown as escapes (`safe_text`)."""
    return escape(safe_text(redact(str(value))))


def _finite(data: Any) -> Any:
    """`data` with NaN and the infinities as the strings "NaN", "Infinity" and
    "-Infinity": JSON has no such numbers, and Python's `NaN` token is not JSON."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {_finite(key): _finite(value) for key, value in data.items()}  # keys too
    if isinstance(data, list | tuple):
        return [_finite(value) for value in data]
    if hasattr(data, "to_dict"):  # a typed result (a change summary): its JSON form
        return _finite(data.to_dict())
    return data


def _json_escape(match: re.Match[str]) -> str:
    char = match.group()
    if unicodedata.category(char) not in UNSAFE_CATEGORIES:
        return char
    units = char.encode("utf-16-be", "surrogatepass")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


def to_json(data: Any, *, indent: int | None = 2) -> str:
    """Strict JSON text (never `NaN`/`Infinity`), secrets redacted, and unsafe
    characters written as `\\uXXXX` escapes: the same strings once parsed, but
    nothing a terminal would act on when the JSON is shown."""
    text = json.dumps(
        _finite(data), indent=indent, default=str, ensure_ascii=False, allow_nan=False
    )
    return _SUSPECT.sub(_json_escape, redact(text))


def print_json(data: Any) -> None:
    """Machine-readable output: one strict JSON document on stdout (`to_json`)."""
    sys.stdout.write(to_json(data) + "\n")


def fail(message: str, code: int = 1) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {plain(message)}", highlight=False, markup=True)
    return typer.Exit(code)
