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

from pathlib import Path
from typing import Any

import pytest
import typer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from opskit.cli import app
from opskit.cli.group import plain_placeholders
from opskit.errors import OpskitError
from opskit.workspace import Workspace

SKIPPED = {("init",), ("lab", "up")}


def _leaves() -> list[tuple[tuple[str, ...], list[str]]]:
    """(command path, its option names) for every runnable command."""
    root = typer.main.get_command(app)
    plain_placeholders(root)
    found: list[tuple[tuple[str, ...], list[str]]] = []

    def walk(command: Any, path: tuple[str, ...], parent: typer.Context | None) -> None:
        ctx = typer.Context(command, parent=parent, info_name=path[-1] if path else "opskit")
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            options = [
                name
                for param in command.get_params(ctx)
                if param.param_type_name == "option" and "--help" not in param.opts
                for name in (*param.opts, *param.secondary_opts)
            ]
            if path not in SKIPPED:
                found.append((path, options))
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
    path, options = draw(st.sampled_from(LEAVES))
    option_names = st.sampled_from(options) if options else st.nothing()
    made_up = st.text(min_size=1, max_size=12).map(lambda text: "--" + text)
    tokens = draw(st.lists(st.one_of(option_names, made_up, values), max_size=6))
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
    if exc is not None and not isinstance(exc, SystemExit):
        # The entry point prints an OpskitError as one line; anything else is a bug.
        assert isinstance(exc, OpskitError), (args, repr(exc), result.output)
        assert "\n" not in str(exc)
    assert "Traceback" not in result.output
    assert result.exit_code in (0, 1, 2), (args, result.exit_code, result.output)
    if result.exit_code == 2:  # a usage error: exactly its one line
        assert len(result.stderr.splitlines()) <= 1, (args, result.stderr)
        assert "\x1b" not in result.stderr and "\u202e" not in result.stderr
