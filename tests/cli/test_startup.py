"""The CLI starts fast because it imports heavy libraries only in the
commands that use them. Each check runs a fresh interpreter and looks at
`sys.modules`; no timing is asserted (docs/performance.md has measurements)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from opskit.workspace import Workspace

# Device drivers and automation engines: only a command that talks to devices needs them.
DRIVERS = {"netmiko", "napalm", "paramiko", "ansible_runner", "fabric", "textfsm"}
# The database, the runbook and configuration machinery: `opskit --help` needs none.
ENGINES = {"sqlalchemy", "hier_config", "jinja2", "jsonschema", "pydantic", "cryptography"}

PROBE = """
import json, runpy, sys
sys.argv = ["opskit", *sys.argv[1:]]
try:
    if len(sys.argv) > 1:
        runpy.run_module("opskit", run_name="__main__")
    else:
        import opskit.cli
except SystemExit as exc:
    code = exc.code
else:
    code = 0
print(json.dumps({"code": code, "modules": sorted(m.split(".")[0] for m in sys.modules)}))
"""


def loaded_by(*args: str) -> tuple[int, set[str], str]:
    """Runs `opskit ARGS` (no args: `import opskit.cli`) in a fresh interpreter;
    the exit code, the top-level modules it imported, and its stdout."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**env, "COLUMNS": "200"},
    )
    *output, last = result.stdout.strip().splitlines()
    report = json.loads(last)
    return report["code"], set(report["modules"]), "\n".join(output)


def test_importing_the_cli_imports_no_driver_and_no_engine() -> None:
    code, modules, _ = loaded_by()
    assert code == 0
    assert modules & (DRIVERS | ENGINES) == set()


def test_help_lists_every_command_group_without_importing_them() -> None:
    code, modules, output = loaded_by("--help")
    assert code == 0
    for group in ("init", "inventory", "lab", "audit", "runbook", "change"):
        assert f" {group} " in output, group
    assert modules & (DRIVERS | ENGINES) == set()


def test_audit_verify_imports_no_driver_and_no_runbook_machinery(tmp_path: Path) -> None:
    from opskit.workspace import init_workspace

    ws = init_workspace(tmp_path / "ws")
    ws.close()
    code, modules, output = loaded_by("--workspace", str(ws.root), "audit", "verify")
    assert code in (0, None) and "ledger OK" in output
    assert modules & (DRIVERS | {"hier_config", "jinja2"}) == set()


def test_runbook_list_imports_no_driver(workspace: Workspace) -> None:
    code, modules, output = loaded_by("--workspace", str(workspace.root), "runbook", "list")
    assert code in (0, None) and "vlan-interface" in output
    assert modules & DRIVERS == set()


def test_each_connector_declares_its_own_actions_in_the_one_registry() -> None:
    """Runbook validation reads the registry without importing a connector;
    each class's ``actions`` is the registry's entry, and no connector action
    is named like a built-in one (the executor would never reach it)."""
    from opskit.connectors import actions, get_connector
    from opskit.connectors.actions import BUILTIN, CONNECTOR_ACTIONS
    from opskit.connectors.registry import BUILTIN_CONNECTORS

    assert set(CONNECTOR_ACTIONS) == set(BUILTIN_CONNECTORS)
    for name in BUILTIN_CONNECTORS:
        assert get_connector(name).actions is CONNECTOR_ACTIONS[name], name
        assert not set(CONNECTOR_ACTIONS[name]) & set(BUILTIN), name
        assert actions(name) == set(BUILTIN) | set(CONNECTOR_ACTIONS[name]), name
