"""`opskit inventory` through a real subprocess: exit codes, --json, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opskit.inventory import load_workspace_inventory
from opskit.inventory.observed import ObservedStore
from opskit.workspace import Workspace

# Every command is a real `python -m opskit` process: about a second each.
pytestmark = pytest.mark.slow


def opskit(
    ws: Workspace, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "inventory", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert result.returncode == code, result
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_validate_list_show_json(workspace: Workspace) -> None:
    result = opskit(workspace, "validate", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["digest"] == load_workspace_inventory(workspace).digest
    assert summary["cis"] == 16 and summary["valid"] is True

    result = opskit(workspace, "list", "--select", "group:core or type:database", "--json")
    assert result.returncode == 0, result.stderr
    assert [row["name"] for row in json.loads(result.stdout)] == ["core-sw1", "core-sw2", "pg-main"]

    result = opskit(workspace, "show", "pg-main", "--json", env={"PG_PASSWORD": "pg-s3cret-pw"})
    shown = json.loads(result.stdout)
    assert shown["credentials"] == {"username": "postgres", "password": "env:PG_PASSWORD"}
    assert shown["dependents"] == [{"name": "billing", "kind": "depends_on"}]
    assert shown["observed"] == {} and shown["last_change"] is None
    assert "pg-s3cret-pw" not in result.stdout


def test_table_output_and_impact(workspace: Workspace) -> None:
    result = opskit(workspace, "list")
    assert result.returncode == 0 and "core-sw1" in result.stdout
    assert "legacy-r0" not in result.stdout
    result = opskit(workspace, "impact", "db-srv1", "--json")
    report = json.loads(result.stdout)
    assert [i["name"] for i in report["impacted"]] == ["pg-main", "billing"]
    assert report["owners"] == ["appteam", "dba", "platform"]


def test_graph_tree_dot_and_json(workspace: Workspace) -> None:
    dot = opskit(workspace, "graph", "--dot")
    assert dot.stdout.startswith("digraph inventory {")
    assert '"pg-main" -> "db-srv1" [label="runs_on"];' in dot.stdout
    tree = opskit(workspace, "graph")
    assert tree.returncode == 0
    # Foundations first, dependents below them.
    assert tree.stdout.index("edge-r1") < tree.stdout.index("fw1") < tree.stdout.index("pg-main")


def test_bad_input_is_one_line_with_exit_codes(workspace: Workspace) -> None:
    bad = workspace.inventories_dir / "broken"
    bad.mkdir()
    (bad / "cis.yaml").write_text(
        "cis:\n  - name: a\n    type: switch\n    platform: linux\n    colour: red\n"
    )
    line = assert_one_line_error(opskit(workspace, "validate", "broken"))
    assert "cis.yaml:5 [cis[0].colour]" in line and "unknown field 'colour'" in line

    line = assert_one_line_error(opskit(workspace, "list", "--select", "group:core and ("))
    assert "expression ends too early at column 17" in line
    line = assert_one_line_error(opskit(workspace, "show", "core-sw9"))
    assert "unknown CI 'core-sw9'" in line
    # Usage errors: exit 2.
    assert opskit(workspace, "list", "--bogus").returncode == 2
    assert opskit(workspace, "graph", "--dot", "--json").returncode == 2


def test_export_then_import(workspace: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "hosts.json"
    result = opskit(workspace, "export", "--format", "json", "--out", str(out))
    assert result.returncode == 0, result.stderr
    exported = json.loads(out.read_text())
    assert "legacy-r0" not in exported["all"]["hosts"]
    yaml_text = opskit(workspace, "export", "--select", "group:core").stdout
    assert set(yaml.safe_load(yaml_text)["all"]["hosts"]) == {"core-sw1", "core-sw2"}

    result = opskit(workspace, "import", str(out), "--name", "copy")
    assert result.returncode == 0, result.stderr
    listed = json.loads(opskit(workspace, "list", "-i", "copy", "--json").stdout)
    assert len(listed) == 15
    line = assert_one_line_error(opskit(workspace, "import", str(out), "--name", "copy"))
    assert "already exists" in line


def test_drift_exit_code(workspace: Workspace) -> None:
    result = opskit(workspace, "drift")
    assert result.returncode == 0 and "no observation recorded" in result.stdout
    store = ObservedStore(workspace.engine)
    store.record_facts("fw1", {"model": "ASA5525-X", "os_version": "9.18"}, "napalm")
    store.record_change("fw1", "CHG-7", "failed", None)
    result = opskit(workspace, "drift", "--json")
    assert result.returncode == 1
    items = json.loads(result.stdout)
    assert {"ci": "fw1", "field": "attributes.os_version", "kind": "differs"}.items() <= items[
        [i["field"] for i in items].index("attributes.os_version")
    ].items()
    shown = json.loads(opskit(workspace, "show", "fw1", "--json").stdout)
    assert shown["observed"]["os_version"]["value"] == "9.18"
    assert shown["last_change"]["change_id"] == "CHG-7"
