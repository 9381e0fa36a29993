"""What the CLI prints when its output is a pipe, and what it prints at all.

- Not a terminal (a CI log, `| grep`): tables are not wrapped to 80 columns;
  one CI, one runbook, one error: one line.
- JSON output is strict JSON: never `NaN`/`Infinity`, and control or bidi
  characters inside strings are `\\uXXXX` escapes (the same strings once parsed).
- Human-readable output shows control, bidi and zero-width characters as
  escapes (`\\u202e`, `\\x1b`), never raw.

Real `opskit` processes with stdout and stderr pipes, and no COLUMNS (as in CI).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opskit.cli.common import UNSAFE_CATEGORIES, safe_text, to_json
from opskit.workspace import Workspace

UNSAFE = ("\u202e", "\x1b", "\u200b", "\r", "\x85", "\u2028")


def _cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    # readline (loaded by pytest) exports COLUMNS=80 to child processes unless
    # the environment is given: a CI job has no COLUMNS.
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "opskit", "-w", str(ws.root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _strict(text: str) -> Any:
    def refuse(token: str) -> Any:
        raise AssertionError(f"not JSON: {token}")

    return json.loads(text, parse_constant=refuse)


# -- no wrapping when the output is not a terminal ---------------------------------
def test_inventory_list_in_a_pipe_is_one_line_per_ci(workspace: Workspace) -> None:
    cis = _strict(_cli(workspace, "inventory", "list", "--json").stdout)
    listed = _cli(workspace, "inventory", "list")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert len(lines) == len(cis) + 5  # title, 3 header lines, rows, bottom rule
    for ci in cis:
        (row,) = [line for line in lines if f" {ci['name']} " in line]
        for value in (ci["platform"], ci["owner"], ", ".join(ci["groups"])):
            assert value in row, (value, row)


def _broken_runbooks(ws: Workspace, count: int) -> list[str]:
    names = []
    for index in range(count):
        name = f"broken-{index:02d}"
        folder = ws.root / "runbooks" / name
        folder.mkdir(parents=True)
        (folder / "1.0.0.yaml").write_text(
            f"name: {name}\nversion: 1.0.0\ndescription: missing nearly everything {index}\n"
        )
        names.append(name)
    return names


def test_runbook_list_with_invalid_files_is_one_line_each(workspace: Workspace) -> None:
    broken = _broken_runbooks(workspace, 15)
    data = _strict(_cli(workspace, "runbook", "list", "--json").stdout)
    assert {e["name"] for e in data["errors"]} == set(broken)
    listed = _cli(workspace, "runbook", "list")
    assert listed.returncode == 1
    rows = len(data["runbooks"]) + len(data["errors"])
    assert len(listed.stdout.splitlines()) == rows + 4  # 3 header lines, bottom rule
    for error in data["errors"]:
        (row,) = [line for line in listed.stdout.splitlines() if f" {error['name']} " in line]
        assert safe_text(" ".join(error["error"].split())) in row
    assert listed.stderr.count("\n") == 1  # the one summary line


def test_a_long_error_stays_one_line_in_a_pipe(workspace: Workspace) -> None:
    name = "a-ci-name-that-does-not-exist-" + "x" * 120
    shown = _cli(workspace, "inventory", "show", name)
    assert shown.returncode == 1
    assert shown.stderr.count("\n") == 1 and name in shown.stderr


# -- strict JSON and neutralised characters ------------------------------------------
EVIL = "safe \u202eevil\x1b[2J\r over\u200b\x85\u2028!"


def _evil_inventory(ws: Workspace) -> None:
    folder = ws.root / "inventories" / "evil"
    folder.mkdir()
    description = json.dumps(EVIL)  # a YAML double-quoted string accepts JSON escapes
    (folder / "devices.yaml").write_text(
        "cis:\n- name: evil1\n  type: switch\n  platform: cisco_ios\n  host: 10.0.0.1\n"
        f"  owner: {description}\n  description: {description}\n"
        "  attributes: {weight: .nan, ceiling: .inf, floor: -.inf, label: " + description + "}\n"
    )


def test_inventory_show_json_is_strict_json_with_escaped_characters(
    workspace: Workspace,
) -> None:
    _evil_inventory(workspace)
    shown = _cli(workspace, "inventory", "show", "evil1", "-i", "evil", "--json")
    if shown.returncode != 0:  # an inventory may refuse NaN: then one line naming it
        assert shown.stderr.count("\n") == 1 and "nan" in shown.stderr.lower()
        return
    assert not any(char in shown.stdout for char in UNSAFE)
    data = _strict(shown.stdout)
    assert data["description"] == EVIL  # the escapes decode to the very same text
    assert data["attributes"]["weight"] == "NaN"
    assert data["attributes"]["ceiling"] == "Infinity"
    assert data["attributes"]["floor"] == "-Infinity"


def test_human_output_shows_control_and_bidi_characters_as_escapes(
    workspace: Workspace,
) -> None:
    _evil_inventory(workspace)
    for args in (("show", "evil1"), ("list",)):
        shown = _cli(workspace, "inventory", *args, "-i", "evil")
        if shown.returncode != 0:  # refused for its NaN (see above): nothing raw either
            assert not any(char in shown.stderr for char in UNSAFE)
            continue
        assert not any(char in shown.stdout for char in UNSAFE), args
        assert "\\u202eevil\\x1b[2J\\r over\\u200b\\x85\\u2028!" in shown.stdout, args


def test_an_error_naming_user_text_escapes_it(workspace: Workspace) -> None:
    shown = _cli(workspace, "inventory", "show", "no\u202esuch\x1b]0;title\x07")
    assert shown.returncode == 1
    assert not any(char in shown.stderr for char in (*UNSAFE, "\x07"))
    assert shown.stderr.count("\n") == 1 and "no\\u202esuch\\x1b]0;title\\x07" in shown.stderr


def test_usage_errors_escape_the_value_too(workspace: Workspace) -> None:
    shown = _cli(workspace, "inventory", "export", "--format", "x\u202e\x1b")
    assert shown.returncode == 2
    assert shown.stderr == "error: --format 'x\\u202e\\x1b': use one of yaml, json\n"


def test_inventory_export_json_is_strict(workspace: Workspace) -> None:
    _evil_inventory(workspace)
    exported = _cli(workspace, "inventory", "export", "-i", "evil", "--format", "json")
    if exported.returncode != 0:
        assert exported.stderr.count("\n") == 1
        return
    data = _strict(exported.stdout)
    assert not any(char in exported.stdout for char in UNSAFE)
    assert EVIL in _strings(data)


def _strings(data: Any) -> list[str]:
    if isinstance(data, dict):
        return [text for value in data.values() for text in _strings(value)]
    if isinstance(data, list):
        return [text for value in data for text in _strings(value)]
    return [data] if isinstance(data, str) else []


@pytest.mark.parametrize(
    "value,expected",
    [
        (math.nan, "NaN"),
        (math.inf, "Infinity"),
        (-math.inf, "-Infinity"),
        ([1.5, (math.nan,)], [1.5, ["NaN"]]),
        ({"a": {"b": -math.inf}}, {"a": {"b": "-Infinity"}}),
        ({math.nan: 1, 2.5: math.inf}, {"NaN": 1, "2.5": "Infinity"}),  # YAML keys can be NaN
        ("\ud800lone surrogate", "\ud800lone surrogate"),
        ("tag \U000e0041 char", "tag \U000e0041 char"),
    ],
)
def test_to_json_is_strict_and_lossless_for_text(value: Any, expected: Any) -> None:
    text = to_json(value)
    assert text.isascii() or not any(char in text for char in UNSAFE)
    text.encode("utf-8")  # a lone surrogate would not even encode
    assert _strict(text) == expected


def test_safe_text_keeps_ordinary_text() -> None:
    ordinary = "příbor — Zürich 東京 😀 tab\tand\nnewline [bold]"
    assert safe_text(ordinary) == ordinary
    assert safe_text("a\u202eb\x00c\x7fd") == "a\\u202eb\\x00c\\x7fd"


def test_debug_logging_shows_the_library_detail(tmp_path: Path) -> None:
    """OPSKIT_DEBUG=1: what the SSH libraries logged is available, at DEBUG."""
    script = (
        "import logging, opskit.connectors.netmiko\n"
        "from opskit.cli import _debug_logging\n"
        "_debug_logging()\n"
        "logging.getLogger('paramiko.transport').error('Exception (client): banner')\n"
    )
    quiet = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert quiet.stderr == ""
    env = {**os.environ, "OPSKIT_DEBUG": "1"}
    loud = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    assert "paramiko.transport: Exception (client): banner" in loud.stderr


# -- properties ------------------------------------------------------------------
def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in UNSAFE_CATEGORIES


def _expected(data: Any) -> Any:
    """What strict JSON gives back: non-finite numbers as their names, float keys as text."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {key: _expected(value) for key, value in data.items()}
    if isinstance(data, list):
        return [_expected(value) for value in data]
    return data


json_data = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(deadline=None)
@given(data=json_data)
def test_to_json_is_always_strict_and_safe(data: Any) -> None:
    text = to_json(data)
    assert not any(_unsafe(char) and char != "\n" for char in text)  # newlines: indentation
    assert _strict(text) == _expected(data)


@given(text=st.text())
def test_safe_text_leaves_nothing_unsafe_and_keeps_the_rest(text: str) -> None:
    shown = safe_text(text)
    assert not any(_unsafe(char) and char not in "\n\t" for char in shown)
    assert safe_text(shown) == shown
    if not any(_unsafe(char) and char not in "\n\t" for char in text):
        assert shown == text
