"""Fuzzing the policy file (opskit.yaml): `load_policy` and the commands that read it."""

from __future__ import annotations

import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opskit.policy import load_policy
from opskit.workspace import Workspace
from tests.fuzz import strategies as gen
from tests.fuzz.support import (
    assert_api_error,
    assert_one_line_error,
    assert_unchanged,
    run_cli,
    snapshot,
)

_counter = itertools.count()


def write_policy(folder: Path, content: Any) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "opskit.yaml"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(gen.yaml_text(content), encoding="utf-8")
    return path


# -- valid policies round-trip ---------------------------------------------------------
@given(policy=gen.policies())
def test_valid_policy_loads_and_round_trips(scratch: Path, policy: dict[str, Any]) -> None:
    number = next(_counter)
    first = load_policy(write_policy(scratch / f"a{number}", policy))
    assert sorted(first.people) == sorted(policy["people"])
    dumped = first.model_dump(mode="json", exclude_none=True)
    second = load_policy(write_policy(scratch / f"b{number}", dumped))
    assert second == first


# -- broken policies: one line naming the file -------------------------------------------
@st.composite
def broken_policies(draw: st.DrawFn) -> Any:
    policy = draw(gen.policies())
    if draw(st.booleans()):
        return draw(gen.mutated_text(gen.yaml_text(policy)))
    return draw(gen.mutated_data(policy))


@given(content=broken_policies())
def test_broken_policy_is_refused_with_one_line_naming_the_file(
    scratch: Path, content: Any
) -> None:
    path = write_policy(scratch / f"broken{next(_counter)}", content)
    try:
        load_policy(path)
    except Exception as exc:
        assert_api_error(exc, [path])


@given(
    policy=gen.policies(),
    value=st.one_of(gen.NON_FINITE, st.floats(0.1, 10).filter(lambda f: not f.is_integer())),
    field=st.sampled_from(["count", "retention_days", "max_changing"]),
)
def test_policy_numbers_refuse_nan_infinity_and_fractions(
    scratch: Path, policy: dict[str, Any], value: float, field: str
) -> None:
    if field == "count":
        policy["approvals"]["low"]["count"] = value
    elif field == "retention_days":
        policy["retention_days"] = value
    else:
        policy["concurrency"] = [{"group": "core", "max_changing": value}]
    path = write_policy(scratch / f"num{next(_counter)}", policy)
    with pytest.raises(Exception) as caught:
        load_policy(path)
    assert_api_error(caught.value, [path])


@given(policy=gen.policies(), extra=st.one_of(st.integers(1, 5), gen.HUGE_INT.map(abs)))
def test_an_unreachable_quorum_is_refused(
    scratch: Path, policy: dict[str, Any], extra: int
) -> None:
    rule = policy["approvals"]["medium"]
    holders = sum(rule["roles"][0] in p["roles"] for p in policy["people"].values())
    rule["count"] = holders + extra
    path = write_policy(scratch / f"quorum{next(_counter)}", policy)
    with pytest.raises(Exception) as caught:
        load_policy(path)
    assert_api_error(caught.value, [path])


# -- commands on a broken policy: one line, nothing written -----------------------------
COMMANDS = [
    ["change", "list"],
    ["change", "create", "--runbook", "config-backup@1.0.0", "--select", "core-sw1",
     "--title", "fuzz", "--type", "normal"],
    ["inventory", "validate"],
    ["runbook", "list", "--json"],
    ["audit", "verify"],
]  # fmt: skip


@given(content=broken_policies(), command=st.sampled_from(COMMANDS))
def test_commands_on_a_broken_policy_print_one_line_and_change_nothing(
    ws: Workspace, content: Any, command: list[str]
) -> None:
    good = ws.policy_path.read_bytes()
    try:
        write_policy(ws.root, content)
        before = snapshot(ws.root)
        with tempfile.TemporaryDirectory() as cwd:
            result = run_cli(*command, workspace=ws.root, user="alice", cwd=Path(cwd))
        assert_one_line_error(result)
        if result.code != 0:
            assert_unchanged(before, snapshot(ws.root), refusal=" refused: " in result.stderr)
    finally:
        ws.policy_path.write_bytes(good)
        shutil.rmtree(ws.state_dir / "cache", ignore_errors=True)


@given(content=st.sampled_from([b"", b"\n", b"# nothing\n", b"---\n", b"{}\n"]))
def test_an_empty_policy_is_an_error_before_anything_is_recorded(
    ws: Workspace, content: bytes
) -> None:
    good = ws.policy_path.read_bytes()
    try:
        ws.policy_path.write_bytes(content)
        before = snapshot(ws.root)
        result = run_cli(*COMMANDS[1], workspace=ws.root, user="alice")
        assert_one_line_error(result)
        assert result.code != 0 and "opskit.yaml" in result.stderr, str(result)
        assert_unchanged(before, snapshot(ws.root))
    finally:
        ws.policy_path.write_bytes(good)
