"""`opskit intended render`: the intended configuration of one CI or a selection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from opskit.workspace import init_workspace


def opskit(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OPSKIT_WORKSPACE": str(ws)}
    return subprocess.run([sys.executable, "-m", "opskit", *args], capture_output=True,
                          text=True, env=env, timeout=120)  # fmt: skip


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    workspace = init_workspace(tmp_path_factory.mktemp("intended") / "ws")
    workspace.close()
    return workspace.root


def test_one_ci_prints_its_configuration(ws: Path) -> None:
    result = opskit(ws, "intended", "render", "core-sw1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[:2] == ["hostname core-sw1", "vlan 1"]


def test_a_selection_prints_each_ci_under_its_template_and_digest(ws: Path) -> None:
    result = opskit(ws, "intended", "render", "--select", "group:core")
    assert result.returncode == 0, result.stderr
    heads = [line for line in result.stdout.splitlines() if line.startswith("! ")]
    assert [h.split(":")[0] for h in heads] == ["! core-sw1", "! core-sw2"]
    assert all("templates/intended/cisco_ios.j2 sha256:" in h for h in heads)
    data = json.loads(opskit(ws, "intended", "render", "-s", "group:core", "--json").stdout)
    assert [d["ci"] for d in data] == ["core-sw1", "core-sw2"]
    assert data[0]["text"].startswith("hostname core-sw1\n")
    assert data[0]["template_digest"] == data[1]["template_digest"]


def test_errors_are_one_line(ws: Path) -> None:
    missing = opskit(ws, "intended", "render", "edge-r1")
    assert missing.returncode == 1 and missing.stdout == ""
    assert missing.stderr.strip().splitlines() == [
        "error: CI edge-r1: intended template templates/intended/juniper_junos.j2 does not"
        " exist (set the CI's or a group's attribute intended_template, or add"
        " templates/intended/juniper_junos.j2)"
    ]
    both = opskit(ws, "intended", "render", "core-sw1", "--select", "group:core")
    assert both.returncode == 2 and len(both.stderr.strip().splitlines()) == 1
    unknown = opskit(ws, "intended", "render", "core-sw9")
    assert unknown.returncode == 1 and "unknown CI 'core-sw9'" in unknown.stderr
