"""Every command's --help and usage errors, walked from click's command tree.

Each option has a help text and --help shows no Python-type placeholder
(`<str>`, `<bool>`); a missing required option or argument, or a value of the
wrong type, is ONE line on stderr (`error: opskit ...`) and exit 2.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from opskit.cli import app
from opskit.cli.group import plain_placeholders

PLACEHOLDER = re.compile(r"<[A-Za-z_][\w\[\], |.]*>")


def _tree() -> Iterator[tuple[list[str], Any, typer.Context]]:
    root = typer.main.get_command(app)
    plain_placeholders(root)

    def walk(
        command: Any, path: list[str], parent: typer.Context | None
    ) -> Iterator[tuple[list[str], Any, typer.Context]]:
        ctx = typer.Context(command, parent=parent, info_name=path[-1])
        yield path, command, ctx
        for name, sub in getattr(command, "commands", {}).items():
            yield from walk(sub, [*path, name], ctx)

    yield from walk(root, ["opskit"], None)


COMMANDS = [(path, command, ctx) for path, command, ctx in _tree()]
LEAVES = [(path, command) for path, command, _ in COMMANDS if not hasattr(command, "commands")]


def _id(path: list[str]) -> str:
    return " ".join(path[1:]) or "opskit"


def test_the_tree_has_every_command() -> None:
    names = {_id(path) for path, _ in LEAVES}
    assert {"change create", "inventory list", "runbook list", "audit verify", "init"} <= names
    assert len(LEAVES) > 30


@pytest.mark.parametrize("path,command,ctx", COMMANDS, ids=[_id(p) for p, _, _ in COMMANDS])
def test_every_command_and_option_has_a_help_text(
    path: list[str], command: Any, ctx: typer.Context
) -> None:
    assert (command.help or "").strip(), f"{_id(path)}: no help text"
    for param in command.get_params(ctx):
        if param.param_type_name == "option":
            assert (param.help or "").strip(), f"{_id(path)} {param.opts[0]}: no help text"


def _run(args: list[str]) -> Any:
    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


@pytest.mark.parametrize("path,command,ctx", COMMANDS, ids=[_id(p) for p, _, _ in COMMANDS])
def test_help_shows_no_type_placeholders(path: list[str], command: Any, ctx: Any) -> None:
    shown = _run([*path[1:], "--help"])
    assert shown.exit_code == 0, shown.output
    assert "Usage: opskit" in shown.stdout
    assert not PLACEHOLDER.findall(shown.stdout), PLACEHOLDER.findall(shown.stdout)


def _one_error_line(result: Any, path: list[str], *words: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {' '.join(path)}: "), lines[0]
    for word in words:
        assert word in lines[0], lines[0]
    assert "Traceback" not in result.output and "╭" not in result.output


REQUIRED = [
    (path, command)
    for path, command, ctx in COMMANDS
    if not hasattr(command, "commands") and any(p.required for p in command.get_params(ctx))
]


@pytest.mark.parametrize("path,command", REQUIRED, ids=[_id(p) for p, _ in REQUIRED])
def test_a_missing_required_parameter_is_one_line(path: list[str], command: Any) -> None:
    _one_error_line(_run(path[1:]), path, "missing")


TYPED = [
    (path, param.opts[0])
    for path, command, ctx in COMMANDS
    if not hasattr(command, "commands")
    for param in command.get_params(ctx)
    if param.param_type_name == "option" and param.metavar in ("INTEGER", "FLOAT")
]


@pytest.mark.parametrize("path,option", TYPED, ids=[f"{_id(p)} {o}" for p, o in TYPED])
def test_a_value_of_the_wrong_type_is_one_line(path: list[str], option: str) -> None:
    result = _run([*path[1:], option, "many\x1b[2J"])
    _one_error_line(result, path, option, "invalid value")
    assert "\x1b" not in result.output  # the terminal never gets an escape sequence


def test_unknown_command_and_option_are_one_line() -> None:
    _one_error_line(_run(["change", "bogus"]), ["opskit", "change"], "bogus")
    _one_error_line(_run(["inventory", "list", "--bogus"]), ["opskit", "inventory", "list"])
    _one_error_line(_run(["--bogus"]), ["opskit"], "--bogus")


def test_an_option_without_its_value_names_its_command() -> None:
    # click's parser raises this one without a context: it named `opskit` alone.
    result = _run(["change", "create", "--param"])
    _one_error_line(result, ["opskit", "change", "create"], "'--param' requires an argument")


def test_the_real_command_prints_one_line_and_exits_2() -> None:
    """The same through the installed entry point, with stderr a pipe."""
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    done = subprocess.run(
        [sys.executable, "-m", "opskit", "change", "create", "--runbook", "x@1.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2
    assert done.stderr == "error: opskit change create: missing option '--select'\n"
    assert done.stdout == ""


@pytest.mark.parametrize("identity", [b"al\xffice", b"bob\x1b[2J", "mallory\u202e".encode()])
def test_an_unsafe_identity_is_refused_before_anything_is_recorded(
    workspace: Any, identity: bytes
) -> None:
    """--as / OPSKIT_USER with an undecodable byte, an escape sequence or a
    bidi override: one usage line naming the option; the ledger is untouched."""
    ledger_files = sorted((workspace.root / ".opskit").rglob("*"))
    before = {path: path.read_bytes() for path in ledger_files if path.is_file()}
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    env_bytes = {key.encode(): value.encode() for key, value in env.items()}
    env_bytes[b"OPSKIT_USER"] = identity
    done = subprocess.run(
        [sys.executable, "-m", "opskit", "--workspace", str(workspace.root), "change",
         "create", "--runbook", "vlan-interface@1.0.0", "--select", "lab-sw01",
         "--title", "t", "--param", "vlan_id=10"],
        capture_output=True,
        timeout=60,
        env=env_bytes,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    (line,) = done.stderr.decode(errors="replace").splitlines()
    assert line.startswith("error: --as / OPSKIT_USER:"), line
    after = {path: path.read_bytes() for path in before}
    assert after == before
