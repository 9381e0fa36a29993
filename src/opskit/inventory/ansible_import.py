"""Importing an Ansible inventory as opskit inventory data, verified.

Ansible's own code reads the inventory (`ansible_source`). Every level (the
`all` group, each group, each host) is mapped to opskit fields; names that
do not fit the CMDB are mapped and kept as `ansible_name`. Then the import
proves itself: the result is loaded, exported again, and each host's
exported variables are compared with the effective variables Ansible gives
it. Where opskit's precedence or deep merge of mappings would give another
value, the host's value is written on the host (and a mapping variable
defined at several levels is written on every host instead of its groups).
Whatever still differs is reported, never silently changed.

Errors name the Ansible source file and line (group_vars/ and host_vars/
files included), never a temporary file.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from opskit.errors import InventoryError
from opskit.inventory.ansible_names import ALIASES, UNSET, group_names, host_names
from opskit.inventory.ansible_source import AnsibleSource, read_source

# A derived variable (export computes it from the platform) that the source
# does not set: written as null in connection_options.ansible, export omits it.
_FIELD_OF = {"ansible_host": "host", "ansible_port": "port", "ansible_user": "username"}
MAX_ROUNDS = 3


def import_ansible_inventory(
    path: str | Path, *, warnings: list[str] | None = None
) -> dict[str, Any]:
    """Reads an Ansible inventory (YAML or INI, with group_vars/ and host_vars/
    beside it) through Ansible's own parser and returns opskit inventory data
    ({defaults, groups, cis}). Messages about what could not be imported
    (secret values, differences that cannot be represented) go to `warnings`."""
    path = Path(path)
    if not path.exists():
        raise InventoryError(f"{path}: no such Ansible inventory")
    notes = warnings if warnings is not None else []
    plan = _Plan(read_source(path))
    differences = plan.differences(plan.data())
    for _ in range(MAX_ROUNDS):
        if not differences or not plan.adjust(differences):
            break
        differences = plan.differences(plan.data())
    data = plan.data(notes)  # once more, collecting the notes of the final mapping
    for host, keys in differences.items():
        shown = ", ".join(sorted(keys))
        notes.append(f"host {host}: {shown} cannot be represented exactly in the CMDB")
    return data


class _Plan:
    """The Ansible variables per level, adjusted until opskit's export of the
    mapped data gives every host Ansible's effective variables."""

    def __init__(self, source: AnsibleSource) -> None:
        self.source = source
        self.host_name = host_names(source.hosts)
        self.group_name = group_names(source.groups)
        self.all_vars: dict[str, Any] = dict(source.all_vars)
        if not _anywhere(source, "ansible_connection"):
            self.all_vars["ansible_connection"] = UNSET
        self.group_vars = {name: dict(g.vars) for name, g in source.groups.items()}
        self.host_vars = {name: dict(h.vars) for name, h in source.hosts.items()}

    # -- the opskit data --
    def data(self, notes: list[str] | None = None) -> dict[str, Any]:
        from opskit.inventory.ansible import SERVER_PLATFORMS, map_vars

        sink: list[str] = [] if notes is None else notes
        defaults = map_vars(self.all_vars, "group all", sink, for_host=False)
        groups: dict[str, Any] = {}
        for name, group in self.source.groups.items():
            entry: dict[str, Any] = {}
            if self.group_name[name] != name:
                entry["ansible_name"] = name
            parents = sorted(self.group_name[p] for p in group.parents if p in self.group_name)
            if parents:
                entry["groups"] = parents
            mapped = map_vars(self.group_vars[name], f"group {name}", sink, for_host=False)
            if mapped:
                entry["vars"] = mapped
            groups[self.group_name[name]] = entry
        direct: dict[str, list[str]] = {}
        for name, group in self.source.groups.items():
            for member in group.hosts:
                direct.setdefault(member, []).append(self.group_name[name])
        cis = []
        for name in self.source.hosts:
            ci: dict[str, Any] = {"name": self.host_name[name]}
            if self.host_name[name] != name:
                ci["ansible_name"] = name
            ci.update(map_vars(self.host_vars[name], f"host {name}", sink, for_host=True))
            if name in direct:
                ci["groups"] = direct[name]
            cis.append(ci)
        for ci in cis:
            platform = _inherited(ci, groups, defaults, "platform")
            ci.setdefault("platform", platform or "linux")
            if _inherited(ci, groups, defaults, "type") is None:
                is_server = isinstance(ci["platform"], str) and ci["platform"] in SERVER_PLATFORMS
                ci.setdefault("type", "server" if is_server else "other")
        data: dict[str, Any] = {}
        if defaults:
            data["defaults"] = defaults
        if groups:
            data["groups"] = groups
        data["cis"] = cis
        return data

    # -- the proof --
    def differences(self, data: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Per Ansible host name, the variables whose exported value is not
        Ansible's effective value (UNSET: exported but not set in Ansible)."""
        from opskit.inventory.ansible import SECRET_VARS, to_ansible_inventory

        inventory = self.load(data)
        exported = to_ansible_inventory(
            inventory.select(None, include_decommissioned=True),
            groups=inventory.groups,
            ansible_names=True,
        )["all"]["hosts"]
        out: dict[str, dict[str, Any]] = {}
        for name, host in self.source.hosts.items():
            expected = canonical_vars(host.effective)
            got = exported.get(name, {})
            diff: dict[str, Any] = {}
            for key in expected.keys() | got.keys():
                if key in SECRET_VARS:
                    continue  # never imported, reported instead
                if key not in expected:
                    if not key.startswith("opskit_"):  # opskit's own bookkeeping
                        diff[key] = UNSET
                elif key not in got or not same(got[key], expected[key]):
                    diff[key] = expected[key]
            if diff:
                out[name] = diff
        return out

    def adjust(self, differences: dict[str, dict[str, Any]]) -> bool:
        """Writes each differing value on its host; a mapping defined at several
        levels moves to the hosts. False when nothing could be changed."""
        changed = False
        for host, diff in differences.items():
            own = self.host_vars[host]
            for key, value in diff.items():
                if isinstance(value, Mapping):
                    changed |= self._flatten(key)
                    continue
                if key in own and (own[key] is value or same(own[key], value)):
                    continue  # already written here: nothing more can be done
                own[key] = value
                changed = True
        return changed

    def _flatten(self, key: str) -> bool:
        changed = key in self.all_vars or any(key in v for v in self.group_vars.values())
        self.all_vars.pop(key, None)
        for variables in self.group_vars.values():
            variables.pop(key, None)
        for name, host in self.source.hosts.items():
            effective = canonical_vars(host.effective)
            if key in effective and not same(self.host_vars[name].get(key), effective[key]):
                self.host_vars[name][key] = effective[key]
                changed = True
        return changed

    def load(self, data: dict[str, Any]) -> Any:
        """The data loaded by opskit's loader; its errors name the Ansible source."""
        from opskit.inventory.ansible import write_files
        from opskit.inventory.loader import load_inventory

        with tempfile.TemporaryDirectory(prefix="opskit-import-") as folder:
            write_files(data, Path(folder))
            try:
                return load_inventory(Path(folder))
            except InventoryError as exc:
                raise self.source_error(exc, data) from None

    def _variables(self, level: tuple[str, str | None]) -> Mapping[str, Any]:
        kind, name = level
        if kind == "host" and name in self.host_vars:
            return self.host_vars[name]
        if kind == "group" and name in self.group_vars:
            return self.group_vars[name]
        return self.all_vars

    def _written_as(self, level: tuple[str, str | None], keys: list[str]) -> str | None:
        """The first of `keys` the level sets, as the source spells it
        (ansible_ssh_port for ansible_port); else the first of `keys`."""
        variables = self._variables(level)
        for key in keys:
            if key in variables:
                return key
            alias = next((a for a, n in ALIASES.items() if n == key and a in variables), None)
            if alias is not None:
                return alias
        return keys[0] if keys else None

    def source_error(self, exc: InventoryError, data: dict[str, Any]) -> InventoryError:
        """The loader's error about the mapped data, told about the Ansible source."""
        from opskit.inventory.ansible import bare_message

        message = bare_message(exc)
        field = exc.field or ""
        level: tuple[str, str | None] = ("all", None)
        rest = field.removeprefix("defaults").lstrip(".")
        if field.startswith("cis["):
            index = int(field[4 : field.index("]")])
            ci = data["cis"][index]
            level = ("host", ci.get("ansible_name", ci["name"]))
            rest = field[field.index("]") + 1 :].lstrip(".")
        elif field.startswith("groups."):
            name = field.split(".")[1]
            level = ("group", data["groups"].get(name, {}).get("ansible_name", name))
            rest = field.split(".vars.", 1)[1] if ".vars." in field else ""
        key = self._written_as(level, _source_keys(rest))
        where = self.source.where(level, key)
        subject = f"{level[0]} {level[1]}" if level[1] else "group all"
        about = f" {key}" if key else ""
        return InventoryError(f"{subject}{about}: {message}", file=where.file, line=where.line)


def _source_keys(rest: str) -> list[str]:
    """The Ansible variables that may be behind an opskit field path (best effort)."""
    if not rest:
        return []
    head, _, tail = rest.partition(".")
    head = head.split("[", 1)[0]
    if head in ("attributes",) and tail:
        return [tail.split(".", 1)[0].split("[", 1)[0]]
    if head == "connection_options" and tail.startswith("ansible."):
        return [tail.split(".")[1]]
    reverse = {"host": "ansible_host", "port": "ansible_port", "platform": "ansible_network_os"}
    if head == "credentials" and tail.startswith("username"):
        return ["ansible_user"]
    # opskit_platform (carried as written, and winning) or ansible_network_os (mapped).
    return [f"opskit_{head}", reverse[head]] if head in reverse else [f"opskit_{head}"]


def _anywhere(source: AnsibleSource, key: str) -> bool:
    return (
        key in source.all_vars
        or any(key in g.vars for g in source.groups.values())
        or any(key in h.vars for h in source.hosts.values())
    )


def _inherited(
    ci: dict[str, Any], groups: dict[str, Any], defaults: dict[str, Any], field: str
) -> Any:
    if field in ci:
        return ci[field]
    pending = list(ci.get("groups", ()))
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen or name not in groups:
            continue
        seen.add(name)
        value = groups[name].get("vars", {}).get(field)
        if value is not None:
            return value
        pending.extend(groups[name].get("groups", ()))
    return defaults.get(field)


def canonical_vars(variables: Mapping[str, Any]) -> dict[str, Any]:
    """Variables with the old spellings under the names export writes."""
    out = dict(variables)
    for alias, name in ALIASES.items():
        if alias in out and name not in out:
            out[name] = out.pop(alias)
    return out


def same(a: Any, b: Any) -> bool:
    """Equal values of equal types (1, 1.0 and True differ; so do 1 and "1" as keys)."""
    return typed(a) == typed(b)


def typed(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return ("int", int(value))
    if isinstance(value, float):
        return ("float", "nan" if math.isnan(value) else float(value))
    if isinstance(value, str):
        return str(value)
    if isinstance(value, Mapping):
        return ("map", frozenset((typed(k), typed(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return ("list", tuple(typed(v) for v in value))
    return ("other", repr(value))
