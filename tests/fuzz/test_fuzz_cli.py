"""Fuzzing the command line: random arguments to every `opskit` command that
does not reach a device, read from the typer app itself (new commands are
fuzzed without editing this file)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer.main
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from opskit.cli import app
from opskit.workspace import Workspace
from tests.fuzz import strategies as gen
from tests.fuzz.support import (
    REPO,
    CliResult,
    assert_clean_terminal_text,
    assert_no_traceback,
    assert_one_line_error,
    assert_unchanged,
    make_workspace,
    run_cli,
    snapshot,
)

# Commands that contact devices or hosts, start processes, or write outside
# the workspace: covered by their own tests, not by random arguments.
SKIPPED = {
    ("lab",),
    ("init",),
    ("change", "assess"),
    ("change", "apply"),
    ("change", "run"),
    ("change", "wait"),  # waits up to an hour by default (tests/pipelines)
    ("change", "rollback"),
    ("change", "recover"),
    ("inventory", "import"),
    ("backup", "run"),
    ("backup", "restore"),
    ("compliance", "run"),
    ("compliance", "remediate"),
    ("inspect",),  # runs the inspection runbook on devices (tests/reports)
    ("worker",),  # starts a Celery worker (tests/distributed)
    ("schedule", "run"),  # starts Celery beat (tests/distributed)
    ("witness", "serve"),  # starts an HTTP server (tests/tlog)
    ("inventory", "sync"),  # contacts a Nautobot server (tests/inventory)
}

ANY_TEXT = st.one_of(gen.TEXT, gen.CONTROL_TEXT, st.sampled_from(["", "-", "--", "--json", " "]))
# Plausible and implausible values by option or argument name.
VALUES: dict[str, st.SearchStrategy[str]] = {
    "change_id": st.sampled_from(["CHG-000001", "CHG-000002", "CHG-999999", "chg-1", ""]),
    "change": st.sampled_from(["CHG-000001", "CHG-999999", "x"]),
    "select": st.sampled_from(["core-sw1", "group:core", "group:core and (", "nope", "*", "a b"]),
    "runbook": st.sampled_from(["vlan-interface@1.0.0", "vlan-interface", "vlan@9", "nope@1.0.0"]),
    "ref": st.sampled_from(["vlan-interface@1.0.0", "inspection", "nope", "vlan-interface@9.9.9"]),
    "target": st.sampled_from(["vlan-interface", "runbooks/vlan-interface/1.0.0.yaml", "x.yaml"]),
    "param": st.sampled_from(["vlan_id=10", "vlan_name=users", "x", "=", "vlan_id=1e999"]),
    # Not ".": inventories/ read as one inventory merges example's and lab's secret
    # references into a traceback (test_a_group_secret_reference_replaces_the_default_one).
    "inventory": st.sampled_from(["example", "lab", "nope", ".."]),
    "name": st.sampled_from(["example", "core-sw1", "nope", "..", "fw1"]),
    "names": st.sampled_from(["core-sw1", "db-srv1", "nope"]),
    "since": st.sampled_from(["2026-12-01T22:00+01:00", "2026-12-01", "yesterday", "9999-99"]),
    "window_start": st.sampled_from(["2020-01-01T00:00+00:00", "2999-01-01T00:00+00:00", "x"]),
    "window_end": st.sampled_from(["2020-01-01T01:00+00:00", "2999-01-02T00:00+00:00", "x"]),
    "start": st.sampled_from(["2999-01-01T00:00+00:00", "2020-01-01T00:00", "x"]),
    "end": st.sampled_from(["2999-01-02T00:00+00:00", "2020-01-01T00:00+00:00", "x"]),
    "out": st.sampled_from(["out.txt", "missing/dir/out.txt", "."]),
    "key": st.sampled_from(["missing.key", "out.txt", "."]),
    "pubkey_file": st.sampled_from(["missing.pub", "."]),
    "bundle": st.sampled_from(["missing.json", "out.txt", "."]),
    "checkpoint": st.sampled_from(["missing.json", "out.txt"]),
    "output_format": st.sampled_from(["yaml", "json", "xml"]),
    "fmt": st.sampled_from(["pem", "raw", "base64", "xml"]),
    "state": st.sampled_from(["draft", "submitted", "bogus", ""]),
    "outcome": st.sampled_from(["successful", "failed", "bogus"]),
    "change_type": st.sampled_from(["standard", "normal", "emergency", "bogus"]),
    "stale_after": st.sampled_from(["60", "-1", "x"]),
    "ci": st.sampled_from(["core-sw1", "nope", ""]),
    "from_ref": st.sampled_from(["latest", "latest~1", "#1", "2026-12-01", "sha256:00", "x"]),
    "to_ref": st.sampled_from(["latest", "latest~99", "1", "9999-12-31T23:59:59-23:59"]),
    "feature": st.sampled_from(["vlans", "nope", ""]),
}
# The checkout under test first, as in every other test of this suite.
SRC = os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])
USERS = st.sampled_from(["alice", "bob", "carol", "erin", "nobody", ""])


def _commands() -> list[tuple[tuple[str, ...], object]]:
    found: list[tuple[tuple[str, ...], object]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        if any(path[: len(skip)] == skip for skip in SKIPPED):
            return
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            found.append((path, command))
            return
        for name, sub in subcommands.items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


COMMANDS = _commands()


@st.composite
def argv(draw: st.DrawFn) -> tuple[str, ...]:
    """`opskit [--as USER] GROUP COMMAND [ARGS...]` with random options."""
    path, command = draw(st.sampled_from(COMMANDS))
    args: list[str] = []
    if draw(st.integers(0, 5)):
        args += ["--as", draw(USERS)]
    args += path
    for param in command.params:  # type: ignore[attr-defined]
        wanted = draw(st.integers(0, 9)) < (8 if param.required else 4)
        if not wanted:
            continue
        values = VALUES.get(param.name, ANY_TEXT)
        if param.param_type_name == "argument":
            args.append(draw(st.one_of(values, values, ANY_TEXT)))
        elif getattr(param, "is_flag", False):
            args.append(param.opts[0])
        else:
            for _ in range(draw(st.integers(1, 2)) if param.multiple else 1):
                args += [
                    draw(st.sampled_from(param.opts)),
                    draw(st.one_of(values, values, ANY_TEXT)),
                ]
    if draw(st.integers(0, 9)) == 0:
        args.insert(draw(st.integers(0, len(args))), draw(st.sampled_from(["--bogus", "extra"])))
    return tuple(args)


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace with one draft change (CHG-000001) and one submitted (CHG-000002)."""
    workspace = make_workspace(tmp_path_factory.mktemp("fuzz-cli") / "ws")
    for _ in range(2):
        created = run_cli(
            "change", "create", "--runbook", "vlan-interface@1.0.0", "--select", "core-sw1",
            "--title", "seed", "--param", "vlan_id=10", "--param", "vlan_name=users",
            "--param", "interface=FastEthernet0/1", workspace=workspace.root, user="alice",
        )  # fmt: skip
        assert created.code == 0, str(created)
    submitted = run_cli("change", "submit", "CHG-000002", workspace=workspace.root, user="alice")
    assert submitted.code == 0, str(submitted)
    yield workspace
    workspace.close()


def _run(ws: Workspace, args: tuple[str, ...]) -> tuple[CliResult, bool]:
    """Runs the command in a scratch folder (for --out files); True when a
    failed command left the workspace as it was."""
    before = snapshot(ws.root)
    with tempfile.TemporaryDirectory() as cwd:
        (Path(cwd) / "out.txt").write_text("not a key, not a bundle\n")
        result = run_cli(*args, workspace=ws.root, cwd=Path(cwd))
    if result.code != 0:
        # A refusal may record itself (`change.refused`); nothing else may change.
        assert_unchanged(before, snapshot(ws.root), refusal=result.code == 1)
    return result, True


@given(args=argv())
def test_no_arguments_make_a_traceback_and_a_failed_command_changes_nothing(
    ws: Workspace, args: tuple[str, ...]
) -> None:
    result, _ = _run(ws, args)
    assert_no_traceback(result)
    if result.code == 1:  # opskit's own errors (usage errors, exit 2, are click's for now)
        assert_one_line_error(result)


@given(args=argv())
def test_every_error_including_usage_errors_is_one_line(
    ws: Workspace, args: tuple[str, ...]
) -> None:
    result, _ = _run(ws, args)
    assert_one_line_error(result)


@given(args=argv())
def test_no_control_character_reaches_the_terminal(ws: Workspace, args: tuple[str, ...]) -> None:
    result, _ = _run(ws, args)
    assert_clean_terminal_text(result)


@given(
    command=st.sampled_from(
        [("audit", "checkpoint"), ("audit", "export", "--change", "CHG-000001")]
    ),
    out=st.sampled_from([".", "taken/cp.json", "taken/deeper/b.json", "missing/dir/cp.json"]),
)
def test_an_unwritable_out_file_signs_no_checkpoint(
    ws: Workspace, command: tuple[str, ...], out: str
) -> None:
    """A missing folder is made (as for any export); a place that cannot be
    written (a folder, under a file) is refused before anything is signed."""
    before = snapshot(ws.root)
    with tempfile.TemporaryDirectory() as cwd:
        (Path(cwd) / "taken").write_text("a file, not a folder\n")
        result = run_cli("--as", "erin", *command, "--out", out, workspace=ws.root, cwd=Path(cwd))
        written = sorted(str(p.relative_to(cwd)) for p in Path(cwd).rglob("*") if p.is_file())
    assert_one_line_error(result)
    if out.startswith("missing/"):
        assert result.code == 0 and written == [out, "taken"], f"{result}\n{written}"
        return
    assert result.code != 0, str(result)
    assert written == ["taken"], f"a refused export left {written}"
    assert_unchanged(before, snapshot(ws.root))


@settings(max_examples=max(3, settings.default.max_examples // 5))
@given(args=argv())
def test_the_installed_entry_point_prints_no_traceback(
    ws: Workspace, args: tuple[str, ...]
) -> None:
    """A few runs as a real process (`python -m opskit`), as a user or a
    pipeline starts it: logging, warnings and interpreter shutdown included."""
    # No process can be given an argument holding NUL (the OS ends it there).
    assume(not any("\x00" in arg for arg in args))
    before = snapshot(ws.root)
    with tempfile.TemporaryDirectory() as cwd:
        done = subprocess.run(
            [sys.executable, "-m", "opskit", *args],
            capture_output=True, text=True, errors="replace", timeout=120, cwd=cwd,
            env={**os.environ, "OPSKIT_WORKSPACE": str(ws.root), "PYTHONPATH": SRC},
        )  # fmt: skip
    result = CliResult(args, done.returncode, done.stdout, done.stderr)
    assert_no_traceback(result)
    if result.code == 1:
        assert_one_line_error(result)
    if result.code != 0:
        assert_unchanged(before, snapshot(ws.root), refusal=result.code == 1)
