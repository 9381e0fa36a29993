"""Random command lines through click's testing runner: never a traceback.

Hypothesis picks a command from the real command tree and gives it a mix of
its own options, made-up options and values full of control, bidi and other
odd characters, against a real workspace. Whatever happens, the user sees no
traceback: the command succeeds, or fails with an `OpskitError` (one line; the
entry point prints it) or a usage error (one line on stderr, exit 2).

`init` and `lab up` are left out: they create a workspace or start processes,
which is what they are for, not input handling.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from opskit.cli import app
from opskit.cli.group import plain_placeholders
from opskit.errors import OpskitError
from opskit.workspace import Workspace

SKIPPED = {("init",), ("lab", "up")}


@dataclass(frozen=True)
class Param:
    """What the fuzzer needs of one click parameter."""

    names: tuple[str, ...]  # the option's spellings; empty for an argument
    flag: bool
    required: bool
    many: bool  # an argument taking several values


def _param(param: Any) -> Param:
    names = () if param.param_type_name == "argument" else (*param.opts, *param.secondary_opts)
    flag = bool(getattr(param, "is_flag", False) or getattr(param, "count", False))
    return Param(names, flag, bool(param.required), param.nargs != 1)


def _leaves() -> list[tuple[tuple[str, ...], list[Param]]]:
    """(command path, its parameters) for every runnable command."""
    root = typer.main.get_command(app)
    plain_placeholders(root)
    found: list[tuple[tuple[str, ...], list[Param]]] = []

    def walk(command: Any, path: tuple[str, ...], parent: typer.Context | None) -> None:
        ctx = typer.Context(command, parent=parent, info_name=path[-1] if path else "opskit")
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            params = [_param(p) for p in command.get_params(ctx) if "--help" not in p.opts]
            if path not in SKIPPED:
                found.append((path, params))
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name), ctx)

    walk(root, (), None)
    return found


LEAVES = _leaves()

# Text a user (or a script) might pass: anything printable, controls, bidi
# overrides, zero-width and separator characters, and bytes that are not UTF-8
# (Python gives them as lone surrogates, \udcff); no NUL, which no real command
# line can carry.
ODD = "\x1b\x07\r\n\t\x7f\x85\u202e\u202d\u2066\u200b\u2028\ufeff\udcff[]/{}%'\""
values = st.one_of(
    st.text(
        alphabet=st.one_of(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
            st.sampled_from(ODD),
        ),
        max_size=30,
    ),
    st.integers(-(2**70), 2**70).map(str),
    st.sampled_from(["NaN", "-inf", "1e999", "CHG-000001", "alice", "name:*", "x@1.0.0", "-"]),
)


@st.composite
def command_lines(draw: st.DrawFn) -> list[str]:
    """A command with most of its parameters given (required ones nearly
    always), sometimes with made-up options and stray values mixed in."""
    path, params = draw(st.sampled_from(LEAVES))
    tokens: list[str] = []
    for param in params:
        if not draw(st.sampled_from([True] * 9 + [False]) if param.required else st.booleans()):
            continue
        if param.names:
            tokens.append(draw(st.sampled_from(param.names)))
        if not param.flag:
            tokens += draw(st.lists(values, min_size=1, max_size=3 if param.many else 1))
    made_up = st.text(min_size=1, max_size=12).map(lambda text: "--" + text)
    for junk in draw(st.lists(st.one_of(made_up, values), max_size=2)):
        tokens.insert(draw(st.integers(0, len(tokens))), junk)
    user = draw(st.sampled_from(["alice", "bob", "nobody\u202e"]))
    return ["--as", user, *path, *tokens]


@pytest.fixture
def fuzz_workspace(workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # Files a command writes (--out, keygen) land in a folder of the test's own.
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("OPSKIT_WORKSPACE", raising=False)
    return workspace.root


@settings(deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(args=command_lines())
def test_random_command_lines_never_show_a_traceback(fuzz_workspace: Path, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["-w", str(fuzz_workspace), *args])
    exc = result.exception
    event(f"exit {result.exit_code} {type(exc).__name__ if exc else ''}")
    if exc is not None and not isinstance(exc, SystemExit):
        # The entry point prints an OpskitError as one line; anything else is a bug.
        assert isinstance(exc, OpskitError), (args, repr(exc), result.output)
        assert "\n" not in str(exc)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    if result.exit_code != 0:  # an error: at most its one line
        assert len(result.stderr.splitlines()) <= 1, (args, result.stderr)
    assert "\x1b" not in result.output and "\u202e" not in result.output
