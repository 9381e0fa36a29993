"""The root command group: click's usage errors as one line, plain placeholders.

typer prints a missing option or a bad value as a multi-line box (usage,
hint, framed message), and its help shows each parameter's Python type as a
placeholder (`<str>`, `<bool>` for a flag). `OpskitGroup` is the class of the
`opskit` group, so every command gets the same treatment from one place:

- a usage error is one line on stderr, `error: opskit change create: missing
  option '--title'`, and exit 2 (click's code for usage errors);
- in `--help`, a flag has no placeholder, an option's value is named as click
  names it (`TEXT`, `INTEGER`, `PATH`...) and an argument shows its name only.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Sequence
from typing import Any

import typer
from typer.core import TyperGroup

from opskit.cli.common import err_console, plain

try:  # typer 0.2x and later carry their own copy of click
    from typer._click import exceptions as click_errors
except ImportError:  # pragma: no cover - older typer, on the click package
    from click import exceptions as click_errors  # type: ignore[no-redef]

PROG_NAME = "opskit"


class OpskitGroup(TyperGroup):
    """The `opskit` group (see the module docstring)."""

    def main(  # type: ignore[override]
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        prog_name = prog_name or PROG_NAME
        plain_placeholders(self)
        name_the_command(self)
        if not standalone_mode:  # an embedding caller handles click's exceptions itself
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except click_errors.ClickException as exc:
            # A bare `opskit change` has printed its help already (typer's way).
            if type(exc).__name__ != "NoArgsIsHelpError":
                print_usage_error(exc)
            sys.exit(exc.exit_code)
        except typer.Abort:  # e.g. end of input at a prompt
            err_console.print("error: aborted", highlight=False)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


def usage_error_line(exc: click_errors.ClickException) -> str:
    """`opskit change create: missing option '--title'`: the command and click's
    message, lower-cased, folded onto one line, without its final full stop."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else PROG_NAME
    message = " ".join(exc.format_message().split()).rstrip(".")
    if message[1:2].islower():  # "Missing option" -> "missing option"; "OSError" stays
        message = message[0].lower() + message[1:]
    return f"{where}: {message}"


def print_usage_error(exc: click_errors.ClickException) -> None:
    err_console.print(
        f"[red]error:[/red] {plain(usage_error_line(exc))}", highlight=False, soft_wrap=True
    )


# click's names for the value types (typer shows the Python type instead).
CLICK_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "Path": "PATH"}


def _type_name(param: Any) -> str:
    if hasattr(param, "type"):  # an older typer: a click parameter
        return str(param.type.name).upper()
    label = str(param.bare_type())
    if label.startswith("list[") and label.endswith("]"):  # a repeatable option
        label = label[5:-1]
    return CLICK_TYPE_NAMES.get(label, label.upper())


def _click_name(param: Any) -> str | None:
    """What `--help` shows after an option or argument: nothing for a flag or
    an argument (its name says it), else the metavar or click's type name."""
    if param.param_type_name == "argument" or getattr(param, "is_flag", False):
        return None
    if getattr(param, "count", False):
        return None
    return param.metavar or _type_name(param)


def plain_placeholders(command: Any, parent: typer.Context | None = None) -> None:
    """Every parameter of `command` and its subcommands shows `_click_name`."""
    ctx = typer.Context(command, parent=parent, info_name=command.name)
    for param in command.get_params(ctx):
        name = _click_name(param)
        if param.metavar is None:  # what click's own help formatter and usage show
            is_argument = param.param_type_name == "argument"
            param.metavar = str(param.name).upper() if is_argument else (name or "")
        # typer's help asks each parameter for its type display: answer plainly.
        param.display_type_rich = types.MethodType(lambda _self, ctx, shown=name: shown, param)
    for sub in getattr(command, "commands", {}).values():
        plain_placeholders(sub, ctx)


def name_the_command(command: Any) -> None:
    """click's parser raises "option '--param' requires an argument" without
    a context, which would name `opskit` instead of `opskit change create`:
    every command's parse_args gives such an error its own context."""
    if not getattr(command, "_opskit_names_errors", False):
        parse_args = command.parse_args

        def parse_with_context(ctx: typer.Context, args: list[str]) -> list[str]:
            try:
                return parse_args(ctx, args)  # type: ignore[no-any-return]
            except click_errors.UsageError as exc:
                if exc.ctx is None:
                    exc.ctx = ctx
                raise

        command.parse_args = parse_with_context
        command._opskit_names_errors = True
    for sub in getattr(command, "commands", {}).values():
        name_the_command(sub)


__all__ = [
    "OpskitGroup",
    "name_the_command",
    "plain_placeholders",
    "print_usage_error",
    "usage_error_line",
]
