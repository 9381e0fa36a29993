"""Ansible interoperability: export CIs as an Ansible inventory, import one.

Export produces the YAML inventory structure (`all.hosts` with every host's
variables, `all.children` with one entry per group) that ansible-runner is
given. It never contains a secret value: a plain username becomes
`ansible_user`, secret references are kept as references (`opskit_credentials`)
and the Ansible connector adds the resolved secrets itself at run time.

Import reads an inventory through Ansible's own code (`ansible_source`,
group_vars/ and host_vars/ included), maps each level's variables to CI
fields here (`map_vars`), checks the result against Ansible's effective
variables (`ansible_import`) and writes an opskit inventory folder. Secret
values found in the Ansible inventory (`ansible_password`, ...) are not
imported: each one is reported so that it can be replaced by a secret
reference.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from opskit.errors import InventoryError
from opskit.inventory.model import CI, Group

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


# Variables export derives from the platform when the CI's Ansible options do
# not set them; null in the options means "not set" (an imported inventory
# that sets no connection gets none back).
DERIVED_VARS = ("ansible_connection", "ansible_network_os")


# -- export ------------------------------------------------------------------------
def host_vars(ci: CI, *, base_dir: Path | None = None) -> dict[str, Any]:
    """The Ansible variables of one CI (never a secret value)."""
    data = ci.to_data(base_dir=base_dir)
    out: dict[str, Any] = {"ansible_connection": _derived_connection(ci.platform)}
    network_os = NETWORK_OS.get(ci.platform)
    if network_os:
        out["ansible_network_os"] = network_os
    out.update(ci.connection_options.get("ansible") or {})  # options win over derived
    for name in DERIVED_VARS:
        if name in out and out[name] is None:
            del out[name]
    # The CI's own fields win over options inherited from its groups.
    if ci.host:
        out["ansible_host"] = ci.host
    if ci.port:
        out["ansible_port"] = ci.port
    if ci.username:
        out["ansible_user"] = ci.username
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
    ansible_names: bool = True,
) -> dict[str, Any]:
    """An Ansible YAML inventory for `cis`: every host with its variables under
    `all.hosts`; every group (of `groups` when given, empty ones included,
    else of the CIs) nested under its parents as in the CMDB, listing the
    hosts that are its direct members.

    Hosts and groups imported from Ansible under a name the CMDB could not
    take get that name back (`ansible_name`); `ansible_names=False` keeps the
    CMDB names (the Ansible connector matches its results by them)."""
    cis = list(cis)
    # Without the hierarchy every group a CI is in is listed as direct.
    hierarchy = groups is not None
    groups = dict(groups or {})
    for ci in cis:
        for name in ci.groups:
            groups.setdefault(name, Group(name=name))
    host_name = {ci.name: (ci.ansible_name if ansible_names else None) or ci.name for ci in cis}
    group_name = {
        name: (group.ansible_name if ansible_names else None) or name
        for name, group in groups.items()
    }
    hosts = {host_name[ci.name]: host_vars(ci, base_dir=base_dir) for ci in cis}
    members: dict[str, dict[str, None]] = {}
    for ci in cis:
        for group in _direct_groups(ci, groups) if hierarchy else ci.groups:
            members.setdefault(group, {})[host_name[ci.name]] = None
    children: dict[str, list[str]] = {}
    for group in groups.values():
        for parent in group.parents:
            if parent in groups:
                children.setdefault(parent, []).append(group.name)
    defined: set[str] = set()

    def entry(name: str) -> dict[str, Any]:
        if name in defined:
            return {}
        defined.add(name)
        out: dict[str, Any] = {}
        if members.get(name):
            out["hosts"] = members[name]
        if children.get(name):
            out["children"] = {group_name[c]: entry(c) for c in sorted(children[name])}
        return out

    top = sorted(name for name, group in groups.items() if not _known(group.parents, groups))
    nested = {group_name[name]: entry(name) for name in top}
    return {"all": {"hosts": hosts, "children": nested}}


def _known(parents: Iterable[str], groups: Mapping[str, Group]) -> bool:
    return any(parent in groups for parent in parents)


def _direct_groups(ci: CI, groups: Mapping[str, Group]) -> list[str]:
    """The groups a CI is declared in (Ansible lists a group's direct hosts;
    a CI's `groups` holds the inherited ones too). For a CI built in code,
    its groups that are not an ancestor of another of its groups."""
    if ci.declared_groups:
        return list(dict.fromkeys(ci.declared_groups))
    ancestors: set[str] = set()
    for name in ci.groups:
        pending = list(groups[name].parents) if name in groups else []
        while pending:
            parent = pending.pop()
            if parent not in ancestors:
                ancestors.add(parent)
                pending.extend(groups[parent].parents if parent in groups else ())
    return [name for name in ci.groups if name not in ancestors]


def _derived_connection(platform: Any) -> str:
    # A platform that is not text (opskit_platform: []) is the loader's to refuse.
    is_network = isinstance(platform, str) and platform in NETWORK_OS
    return "ansible.netcommon.network_cli" if is_network else "ssh"


# -- import (opskit.inventory.ansible_import builds on these) ------------------------
def _plain(value: Any) -> Any:
    """Ansible's tagged values (2.19 data tagging) as plain Python data; keys
    keep their type (`{1: a}` stays an integer key)."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(v) for v in value]
    return str(value)


def _scalar_text(value: Any) -> Any:
    """A scalar as its text (`ansible_host: 10` is the address "10"); a list
    or mapping stays as it is, for the loader to refuse naming its line."""
    return value if isinstance(value, list | dict) else str(value)


def _templated(value: Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def map_vars(
    raw: Mapping[str, Any], where: str, warnings: list[str], *, for_host: bool
) -> dict[str, Any]:
    """Ansible variables of one level -> opskit fields (CI or group vars).

    `ansible_host` (or `ansible_ssh_host`), `ansible_port` and `ansible_user`
    become the CI's host, port and username unless they are templates, which
    stay Ansible variables; `ansible_network_os` gives the platform and is
    kept as written when export would spell it differently."""
    from opskit.inventory.ansible_names import ALIASES, UNSET

    out: dict[str, Any] = {}
    attributes: dict[str, Any] = {}
    ansible_options: dict[str, Any] = {}
    network_os: str | None = None
    variables = dict(raw)
    for alias, name in ALIASES.items():  # the old spelling, when the new one is absent
        if alias in variables and name not in variables:
            variables[name] = variables.pop(alias)
    for raw_key, raw_value in variables.items():
        key = str(raw_key)
        if raw_value is UNSET:
            ansible_options[key] = None
            continue
        value = _plain(raw_value)
        if key in _INTERNAL_VARS:
            continue
        if key in SECRET_VARS:
            warnings.append(
                f"{where}: {key} holds a secret value and was not imported; "
                "declare it as a credentials secret reference"
            )
        elif _templated(value) or (key == "ansible_host" and not for_host):
            ansible_options[key] = value
        elif key == "ansible_host":
            out["host"] = _scalar_text(value)
        elif key == "ansible_port":
            out["port"] = value
        elif key == "ansible_user":
            out.setdefault("credentials", {})["username"] = _scalar_text(value)
        elif key == "ansible_network_os":
            network_os = str(value)
        elif key.startswith("ansible_"):
            ansible_options[key] = value
        elif key.startswith("opskit_"):
            _map_carried(key, value, out, attributes, for_host=for_host)
        else:
            attributes[key] = value
    if network_os is not None:
        platform = (
            out.get("platform")
            or _PLATFORM_OF_OS.get(network_os)
            or _PLATFORM_OF_OS.get(network_os.rsplit(".", 1)[-1])
        )
        if platform is None:
            warnings.append(f"{where}: unknown ansible_network_os {network_os!r}")
        else:
            out["platform"] = platform
        if not isinstance(platform, str) or NETWORK_OS.get(platform) != network_os:
            ansible_options["ansible_network_os"] = network_os  # kept as written
    connection = ansible_options.get("ansible_connection")
    if (
        for_host
        and connection is not None
        and connection == _derived_connection(out.get("platform"))
    ):
        del ansible_options["ansible_connection"]  # export derives the very same
    if ansible_options:
        out.setdefault("connection_options", {})["ansible"] = ansible_options
    if attributes:
        out["attributes"] = attributes
    return out


def _map_carried(
    key: str, value: Any, out: dict[str, Any], attributes: dict[str, Any], *, for_host: bool
) -> None:
    name = key.removeprefix("opskit_")
    if name in CARRIED_FIELDS or (name in ("description", "relationships") and for_host):
        out[name] = value
    elif name == "credentials" and isinstance(value, dict):
        out.setdefault("credentials", {}).update(value)
    elif name == "connection_options" and isinstance(value, dict):
        out.setdefault("connection_options", {}).update(value)
    else:
        attributes[key] = value


def write_files(data: Mapping[str, Any], folder: Path) -> None:
    """`data` as the files of an inventory folder (groups.yaml, cis.yaml)."""
    header = "# Imported from an Ansible inventory by `opskit inventory import`.\n"
    if data.get("defaults") or data.get("groups"):
        common = {k: data[k] for k in ("defaults", "groups") if data.get(k)}
        (folder / "groups.yaml").write_text(header + _dump(common), encoding="utf-8")
    (folder / "cis.yaml").write_text(
        header + _dump({"cis": list(data.get("cis", []))}), encoding="utf-8"
    )


class _Dumper(yaml.SafeDumper):
    """PyYAML writes `_0`, `1e3` or `0o7` unquoted (text in YAML 1.1) but the
    inventory loader (YAML 1.2, yaml-rs) reads them as numbers: quote them."""


_NUMBER_LIKE = re.compile(r"[-+._0-9][-+._0-9a-fA-FoxX]*\Z")


def _represent_text(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = None
    if _NUMBER_LIKE.match(text) and not isinstance(_yaml_rs_scalar(text), str):
        style = "'"
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


def _yaml_rs_scalar(text: str) -> Any:
    import yaml_rs

    try:
        return yaml_rs.loads(f"v: {text}", parse_datetime=False)["v"]
    except (yaml_rs.YAMLDecodeError, KeyError, TypeError):
        return text


_Dumper.add_representer(str, _represent_text)


def _dump(data: Any) -> str:
    return yaml.dump(
        data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def write_inventory_folder(data: Mapping[str, Any], folder: Path, *, force: bool = False) -> Path:
    """Writes `data` as an opskit inventory folder and validates it by loading it;
    nothing is left behind when it is invalid. Returns the folder."""
    folder = Path(folder)
    if folder.exists() and not force:
        raise InventoryError(f"{folder}: already exists")
    install_folder(folder, lambda staging: write_files(data, staging))
    return folder


def install_folder(folder: Path, write: Callable[[Path], None]) -> None:
    """Has `write` fill a staging folder beside `folder`, loads it with the
    inventory loader (all its checks), then swaps it in for `folder`; nothing
    is left behind on failure. An invalid result raises InventoryError naming
    the file that would have been written, not the staging copy."""
    from opskit.inventory.loader import load_inventory

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        write(staging)
        try:
            load_inventory(staging)
        except InventoryError as exc:
            file = exc.file.replace(str(staging), str(folder), 1) if exc.file else None
            raise InventoryError(
                bare_message(exc), file=file, line=exc.line, field=exc.field
            ) from None
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def bare_message(exc: InventoryError) -> str:
    """The message of an error without its "file:line [field]: " prefix."""
    text = str(exc)
    where = exc.file + (f":{exc.line}" if exc.line else "") if exc.file else ""
    if exc.field:
        where = f"{where} [{exc.field}]" if where else f"[{exc.field}]"
    return text.removeprefix(f"{where}: ") if where else text
