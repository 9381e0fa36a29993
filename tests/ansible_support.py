"""What the real `ansible-inventory --list` says about an inventory, normalised
for comparing an original Ansible inventory with opskit's import -> export."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from opskit.inventory import load_inventory
from opskit.inventory.ansible import SECRET_VARS, to_ansible_inventory, write_inventory_folder
from opskit.inventory.ansible_import import import_ansible_inventory

ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"
ENV = {
    **os.environ,
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
    "ANSIBLE_DEPRECATION_WARNINGS": "0",
}


# Old spellings Ansible still reads; export writes the current names.
ALIASES = {
    "ansible_ssh_host": "ansible_host",
    "ansible_ssh_port": "ansible_port",
    "ansible_ssh_user": "ansible_user",
}


def canonical_vars(variables: dict[str, Any]) -> dict[str, Any]:
    out = dict(variables)
    for alias, name in ALIASES.items():
        if alias in out and name not in out:
            out[name] = out.pop(alias)
    return out


def typed(value: Any) -> Any:
    """A comparable form that tells 1, 1.0, True and "1" apart (keys too)."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return (type(value).__name__, repr(value))
    if isinstance(value, dict):
        return ("map", sorted(((repr(typed(k)), typed(v)) for k, v in value.items()), key=repr))
    if isinstance(value, list | tuple):
        return ("list", [typed(v) for v in value])
    return ("other", repr(value))


def ansible_inventory(path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list", *extra],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
        check=False,
    )


def listing(path: Path) -> dict[str, Any] | None:
    """Groups (direct hosts, children; empty groups too) and every host's
    effective variables with their types, or None when Ansible refuses it."""
    as_json = ansible_inventory(path)
    if as_json.returncode != 0:
        return None
    data = json.loads(as_json.stdout)
    groups: dict[str, dict[str, list[str]]] = {}
    for name, entry in data.items():
        if name == "_meta":
            continue
        groups.setdefault(name, {"hosts": [], "children": []})
        groups[name]["hosts"] = sorted(entry.get("hosts", []))
        groups[name]["children"] = sorted(entry.get("children", []))
        for child in entry.get("children", []):
            groups.setdefault(child, {"hosts": [], "children": []})
    # A group declared both under `all` and under another group is, for
    # Ansible as for the CMDB, a group with a parent: every group is in `all`.
    nested = {child for name, g in groups.items() if name != "all" for child in g["children"]}
    if "all" in groups:
        groups["all"]["children"] = [c for c in groups["all"]["children"] if c not in nested]
    hostvars: dict[str, Any] = {host: {} for g in groups.values() for host in g["hosts"]}
    hostvars.update(data["_meta"]["hostvars"])
    if any(isinstance(v, dict) for h in hostvars.values() for v in h.values()):
        # JSON turns mapping keys into text ({1: a} -> {"1": a}); YAML keeps them.
        as_yaml = ansible_inventory(path, "--yaml")
        assert as_yaml.returncode == 0, as_yaml.stderr
        _collect_hostvars(yaml.safe_load(as_yaml.stdout) or {}, hostvars)
    return {"groups": groups, "hostvars": hostvars}


def _collect_hostvars(tree: dict[str, Any], out: dict[str, Any]) -> None:
    for entry in tree.values():
        entry = entry or {}
        for host, variables in (entry.get("hosts") or {}).items():
            if variables:
                out[str(host)] = variables
            else:
                out.setdefault(str(host), {})
        _collect_hostvars(entry.get("children") or {}, out)


def comparable(result: dict[str, Any], *, original: bool) -> dict[str, Any]:
    """Variables as the CMDB promises them back: secret values are never
    imported (reported instead), old spellings (ansible_ssh_host) come back
    under their current names, and export adds opskit's own `opskit_*`
    bookkeeping; types are kept (1, "1", True and 1.0 differ)."""
    hostvars = {}
    for host, variables in result["hostvars"].items():
        if original:
            variables = canonical_vars({k: v for k, v in variables.items() if k not in SECRET_VARS})
        hostvars[host] = variables
    return {"groups": result["groups"], "hostvars": hostvars}


def drop_bookkeeping(exported: dict[str, Any], original: dict[str, Any]) -> dict[str, Any]:
    hostvars = {}
    for host, variables in exported["hostvars"].items():
        known = original["hostvars"].get(host, {})
        hostvars[host] = {
            k: v for k, v in variables.items() if not k.startswith("opskit_") or k in known
        }
    return {"groups": exported["groups"], "hostvars": hostvars}


def round_trip(source: Path, work: Path) -> tuple[Path, list[str]]:
    """Import `source` into an opskit folder, export it to `work/export.yaml`."""
    notes: list[str] = []
    data = import_ansible_inventory(source, warnings=notes)
    folder = write_inventory_folder(data, work / "imported")
    inventory = load_inventory(folder)
    cis = inventory.select(None, include_decommissioned=True)
    exported = to_ansible_inventory(cis, groups=inventory.groups, ansible_names=True)
    out = work / "export.yaml"
    out.write_text(yaml.safe_dump(exported, allow_unicode=True), encoding="utf-8")
    return out, notes


def assert_same_listing(source: Path, work: Path) -> list[str]:
    """import -> export gives ansible-inventory the same groups, hosts and
    effective variables as the original. Returns the import's notes."""
    before = listing(source)
    assert before is not None, f"ansible-inventory refuses {source}"
    exported, notes = round_trip(source, work)
    after = listing(exported)
    assert after is not None, f"ansible-inventory refuses the export of {source}"
    expected = comparable(before, original=True)
    got = drop_bookkeeping(comparable(after, original=False), expected)
    assert got["groups"] == expected["groups"]
    assert set(got["hostvars"]) == set(expected["hostvars"])
    for host in expected["hostvars"]:
        assert typed(got["hostvars"][host]) == typed(expected["hostvars"][host]), host
    return notes
