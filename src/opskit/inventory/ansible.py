"""Ansible interoperability: export CIs as an Ansible inventory, import one.

Export produces the YAML inventory structure (`all.hosts` with every host's
variables, `all.children` with one entry per group) that ansible-runner is
given. It never contains a secret value: a plain username becomes
`ansible_user`, secret references are kept as references (`opskit_credentials`)
and the Ansible connector adds the resolved secrets itself at run time.

Import reads YAML or INI through Ansible's own parser (DataLoader +
InventoryManager), maps Ansible's variables back to CI fields and writes an
opskit inventory folder. Secret values found in the Ansible inventory
(`ansible_password`, ...) are not imported: each one is reported so that it
can be replaced by a secret reference.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from opskit.errors import InventoryError
from opskit.inventory.model import CI, Group
from opskit.yamlfile import dump_yaml

# netmiko device_type -> ansible_network_os
NETWORK_OS = {
    "cisco_ios": "cisco.ios.ios",
    "cisco_xe": "cisco.ios.ios",
    "cisco_nxos": "cisco.nxos.nxos",
    "cisco_xr": "cisco.iosxr.iosxr",
    "cisco_asa": "cisco.asa.asa",
    "arista_eos": "arista.eos.eos",
    "juniper_junos": "junipernetworks.junos.junos",
    "juniper": "junipernetworks.junos.junos",
    "vyos": "vyos.vyos.vyos",
}
_PLATFORM_OF_OS: dict[str, str] = {}
for _platform, _os in NETWORK_OS.items():
    _PLATFORM_OF_OS.setdefault(_os, _platform)
    _PLATFORM_OF_OS.setdefault(_os.rsplit(".", 1)[-1], _platform)  # short names: ios, eos
SERVER_PLATFORMS = frozenset({"linux", "generic"})

# CI fields carried as opskit_<field> variables so that a round trip keeps them.
CARRIED_FIELDS = ("type", "platform", "owner", "department", "site", "lifecycle", "criticality")
SECRET_VARS = frozenset(
    {
        "ansible_password",
        "ansible_ssh_pass",
        "ansible_ssh_password",
        "ansible_become_password",
        "ansible_become_pass",
        "ansible_ssh_private_key_passphrase",
        "ansible_httpapi_pass",
        "ansible_httpapi_password",
        "ansible_net_auth_pass",
        "ansible_enable_pass",
    }
)
_INTERNAL_VARS = frozenset({"inventory_file", "inventory_dir"})


# -- export ------------------------------------------------------------------------
def host_vars(ci: CI, *, base_dir: Path | None = None) -> dict[str, Any]:
    """The Ansible variables of one CI (never a secret value)."""
    data = ci.to_data(base_dir=base_dir)
    out: dict[str, Any] = {}
    if ci.host:
        out["ansible_host"] = ci.host
    if ci.port:
        out["ansible_port"] = ci.port
    if ci.username:
        out["ansible_user"] = ci.username
    network_os = NETWORK_OS.get(ci.platform)
    if network_os:
        out["ansible_network_os"] = network_os
    out["ansible_connection"] = _derived_connection(ci.platform)
    out.update(ci.connection_options.get("ansible") or {})
    for name in CARRIED_FIELDS:
        if data.get(name) is not None:
            out[f"opskit_{name}"] = data[name]
    if ci.description:
        out["opskit_description"] = ci.description
    if ci.relationships:
        out["opskit_relationships"] = data["relationships"]
    refs = {k: v for k, v in data["credentials"].items() if k != "username" or not ci.username}
    if refs:
        out["opskit_credentials"] = refs  # references only, e.g. {password: {env: VAR}}
    other_options = {k: v for k, v in ci.connection_options.items() if k != "ansible"}
    if other_options:
        out["opskit_connection_options"] = other_options
    for key, value in ci.attributes.items():
        out.setdefault(key, value)
    return out


def to_ansible_inventory(
    cis: Iterable[CI],
    *,
    groups: Mapping[str, Group] | None = None,
    base_dir: Path | None = None,
) -> dict[str, Any]:
    """An Ansible YAML inventory for `cis`: every host with its variables under
    `all.hosts`, every group under `all.children` listing its member hosts
    (direct or inherited: a CI's `groups` holds both) and, when `groups` is
    given, its child groups."""
    cis = list(cis)
    hosts: dict[str, Any] = {}
    members: dict[str, dict[str, None]] = {}
    for ci in cis:
        hosts[ci.name] = host_vars(ci, base_dir=base_dir)
        for group in ci.groups:
            members.setdefault(group, {})[ci.name] = None
    children: dict[str, Any] = {group: {"hosts": members[group]} for group in sorted(members)}
    for group in (groups or {}).values():
        for parent in group.parents:
            if parent in children and group.name in children:
                children[parent].setdefault("children", {})[group.name] = {}
    return {"all": {"hosts": hosts, "children": children}}


def _derived_connection(platform: str | None) -> str:
    return "ansible.netcommon.network_cli" if platform in NETWORK_OS else "ssh"


# -- import ------------------------------------------------------------------------
def _plain(value: Any) -> Any:
    """Ansible's tagged values (2.19 data tagging) as plain Python data."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return str(value)


def _map_vars(
    raw: Mapping[str, Any], where: str, warnings: list[str], *, for_host: bool
) -> dict[str, Any]:
    """Ansible variables -> opskit fields (CI or group vars)."""
    out: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    ansible_options: dict[str, Any] = {}
    network_os: str | None = None
    connection: Any = None
    for raw_key, raw_value in raw.items():
        key, value = str(raw_key), _plain(raw_value)
        if key in _INTERNAL_VARS:
            continue
        if key in SECRET_VARS:
            warnings.append(
                f"{where}: {key} holds a secret value and was not imported; "
                "declare it as a credentials secret reference"
            )
        elif key == "ansible_host" and for_host:
            out["host"] = str(value)
        elif key == "ansible_port":
            out["port"] = int(value)
        elif key == "ansible_user":
            out.setdefault("credentials", {})["username"] = str(value)
        elif key == "ansible_network_os":
            network_os = str(value)
        elif key == "ansible_connection" and for_host:
            connection = value
        elif key.startswith("ansible_"):
            ansible_options[key] = value
        elif key.startswith("opskit_"):
            name = key.removeprefix("opskit_")
            if name in CARRIED_FIELDS:
                out[name] = value
            elif name == "description" and for_host:
                out["description"] = value
            elif name == "relationships" and for_host:
                out["relationships"] = value
            elif name == "credentials" and isinstance(value, dict):
                out.setdefault("credentials", {}).update(value)
            elif name == "connection_options" and isinstance(value, dict):
                out.setdefault("connection_options", {}).update(value)
            else:
                attributes[key] = value
        else:
            attributes[key] = value
    if network_os and "platform" not in out:
        platform = _PLATFORM_OF_OS.get(network_os) or _PLATFORM_OF_OS.get(
            network_os.rsplit(".", 1)[-1]
        )
        if platform is None:
            warnings.append(f"{where}: unknown ansible_network_os {network_os!r}")
        else:
            out["platform"] = platform
    if connection is not None and connection != _derived_connection(out.get("platform")):
        # Export derives the connection from the platform; keep only a different one.
        ansible_options["ansible_connection"] = connection
    if ansible_options:
        out.setdefault("connection_options", {})["ansible"] = ansible_options
    if attributes:
        out["attributes"] = attributes
    return out


def import_ansible_inventory(
    path: str | Path, *, warnings: list[str] | None = None
) -> dict[str, Any]:
    """Reads an Ansible inventory (YAML or INI) through Ansible's own parser and
    returns opskit inventory data ({defaults, groups, cis}). Messages about what
    could not be imported (secret values) are appended to `warnings`."""
    path = Path(path)
    if not path.exists():
        raise InventoryError(f"{path}: no such Ansible inventory")
    notes = warnings if warnings is not None else []
    manager = _ansible_manager(path)
    groups: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    for raw_name, group in sorted(manager.groups.items()):
        name = str(raw_name)
        if name == "ungrouped":
            continue
        mapped = _map_vars(group.get_vars(), f"group {name}", notes, for_host=False)
        if name == "all":
            defaults = mapped
            continue
        entry: dict[str, Any] = {}
        parents = sorted(
            str(p.name) for p in group.parent_groups if p.name not in ("all", "ungrouped")
        )
        if parents:
            entry["groups"] = parents
        if mapped:
            entry["vars"] = mapped
        groups[name] = entry
    direct_groups: dict[str, list[str]] = {}
    for name, group in manager.groups.items():
        if name not in ("all", "ungrouped"):
            for member in group.hosts:
                direct_groups.setdefault(str(member.name), []).append(str(name))
    cis = []
    for host in manager.get_hosts():
        ci: dict[str, Any] = {"name": str(host.name)}
        mapped = _map_vars(host.vars, f"host {host.name}", notes, for_host=True)
        direct = direct_groups.get(host.name)
        if direct:
            mapped["groups"] = direct
        ci.update(mapped)
        cis.append(ci)
    # A host's platform and type may come from its groups; fill what is missing
    # only when the host's own data says nothing about it.
    for ci in cis:
        ci.setdefault("platform", _inherited(ci, groups, defaults, "platform") or "linux")
        if _inherited(ci, groups, defaults, "type") is None:
            ci.setdefault("type", "server" if ci["platform"] in SERVER_PLATFORMS else "other")
    data: dict[str, Any] = {}
    if defaults:
        data["defaults"] = defaults
    if groups:
        data["groups"] = groups
    data["cis"] = cis
    return data


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


def _ansible_manager(path: Path) -> Any:
    try:
        from ansible.inventory.manager import InventoryManager
        from ansible.parsing.dataloader import DataLoader
    except ImportError as exc:  # pragma: no cover - ansible is a dependency
        raise InventoryError(f"Ansible is not installed: {exc}") from None
    import contextlib
    import io
    import warnings as python_warnings

    from ansible import constants

    # Fail instead of warning when no inventory plugin can parse the source.
    constants.INVENTORY_UNPARSED_IS_FAILED = True  # type: ignore[attr-defined]
    chatter = io.StringIO()  # Ansible prints its parse warnings; the error says it all
    with (
        python_warnings.catch_warnings(),
        contextlib.redirect_stderr(chatter),
        contextlib.redirect_stdout(chatter),
    ):
        python_warnings.simplefilter("ignore")
        try:
            return InventoryManager(loader=DataLoader(), sources=[str(path)])
        except Exception as exc:  # Ansible raises its own AnsibleError types
            message = str(exc)
            if "<<< caused by >>>" in message:
                message = message.split("<<< caused by >>>", 1)[1].strip().splitlines()[0]
            causes = re.findall(r"Failed to parse inventory: (.+)", chatter.getvalue())
            if causes:
                message = f"{message} ({causes[0].strip()})"
            raise InventoryError(f"Ansible cannot parse it: {message}", file=path) from None


def write_inventory_folder(data: Mapping[str, Any], folder: Path, *, force: bool = False) -> Path:
    """Writes `data` as an opskit inventory folder and validates it by loading it;
    nothing is left behind when it is invalid. Returns the folder."""
    from opskit.inventory.loader import load_inventory

    folder = Path(folder)
    if folder.exists() and not force:
        raise InventoryError(f"{folder}: already exists")
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        header = "# Imported from an Ansible inventory by `opskit inventory import`.\n"
        if data.get("defaults") or data.get("groups"):
            common = {k: data[k] for k in ("defaults", "groups") if data.get(k)}
            (staging / "groups.yaml").write_text(header + dump_yaml(common), encoding="utf-8")
        (staging / "cis.yaml").write_text(
            header + dump_yaml({"cis": list(data.get("cis", []))}), encoding="utf-8"
        )
        load_inventory(staging)
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return folder
