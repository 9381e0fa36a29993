"""Ansible interoperability: export, and import through Ansible's own parser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opskit.errors import InventoryError
from opskit.inventory import load_inventory
from opskit.inventory.ansible import to_ansible_inventory, write_inventory_folder
from opskit.inventory.ansible_import import import_ansible_inventory
from opskit.secrets import REDACTOR, SecretRef

EXAMPLE = Path(__file__).resolve().parents[2] / "inventories" / "example"
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


@pytest.fixture(scope="module")
def example():  # type: ignore[no-untyped-def]
    return load_inventory(EXAMPLE)


def export(inventory) -> dict:  # type: ignore[no-untyped-def]
    cis = inventory.select(None, include_decommissioned=True)
    return to_ansible_inventory(cis, groups=inventory.groups, base_dir=inventory.path.resolve())


def test_export_maps_connection_variables(example, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("NET_PASSWORD", "n3t-passw0rd")
    SecretRef(env="NET_PASSWORD").resolve()  # as a connector would, registering the value
    data = export(example)
    hosts = data["all"]["hosts"]
    core = hosts["core-sw1"]
    assert core["ansible_host"] == "10.0.1.1"
    assert core["ansible_network_os"] == "cisco.ios.ios"
    assert core["ansible_connection"] == "ansible.netcommon.network_cli"
    assert core["ansible_user"] == "opsadmin"
    assert core["model"] == "C9500-24Y4C"  # attributes become variables
    assert hosts["access-sw3"]["ansible_network_os"] == "arista.eos.eos"
    assert hosts["edge-r1"]["ansible_network_os"] == "junipernetworks.junos.junos"
    server = hosts["app-srv1"]
    assert server["ansible_connection"] == "ssh" and "ansible_network_os" not in server
    assert server["ansible_python_interpreter"] == "/usr/bin/python3"  # connection_options
    assert server["ansible_port"] == 22
    # Groups nest as in the CMDB; each lists its direct members only.
    network = data["all"]["children"]["network"]
    assert "hosts" not in network
    assert set(network["children"]["core"]["hosts"]) == {"core-sw1", "core-sw2"}
    assert set(network["children"]["security"]["hosts"]) == {"fw1"}
    text = yaml.safe_dump(data)
    assert not REDACTOR.find(text)
    assert "ansible_password" not in text and "ansible_become_password" not in text
    assert {"password": {"env": "NET_PASSWORD"}}.items() <= core["opskit_credentials"].items()


def test_export_is_read_by_ansible_inventory(example, tmp_path: Path) -> None:
    """The real `ansible-inventory --list` accepts the export unchanged."""
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(export(example)))
    env = {**os.environ, "ANSIBLE_INVENTORY_ENABLED": "yaml", "ANSIBLE_NOCOLOR": "1"}
    result = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), "--list"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    )
    listed = json.loads(result.stdout)
    assert set(listed["_meta"]["hostvars"]) == set(example.cis)
    assert sorted(listed["core"]["hosts"]) == ["core-sw1", "core-sw2"]
    assert "core" in listed["network"]["children"]


def comparable(inventory) -> dict:  # type: ignore[no-untyped-def]
    out = {}
    for ci in inventory:
        data = ci.to_data(base_dir=inventory.path.resolve())
        data["groups"] = sorted(data["groups"])
        out[ci.name] = data
    return out


@pytest.mark.slow
def test_round_trip_keeps_hosts_groups_and_vars(example, tmp_path: Path) -> None:
    path = tmp_path / "hosts.yaml"
    path.write_text(yaml.safe_dump(export(example)))
    notes: list[str] = []
    data = import_ansible_inventory(path, warnings=notes)
    assert notes == []
    folder = write_inventory_folder(data, tmp_path / "inventories" / "imported")
    imported = load_inventory(folder)
    assert comparable(imported) == comparable(example)
    for name, group in example.groups.items():
        assert imported.groups[name].parents == group.parents


INI = """\
[core]
sw1 ansible_host=10.0.0.1 ansible_network_os=cisco.ios.ios model=C9300 ansible_password=Sup3rSecret

[access]
sw2 ansible_host=10.0.0.2 ansible_network_os=arista.eos.eos
web1 ansible_host=10.0.1.5 ansible_port=2222 ansible_user=deploy

[network:children]
core
access

[network:vars]
ansible_connection=ansible.netcommon.network_cli
site=dc1

[all:vars]
opskit_owner=netops
"""


def test_ini_import_through_ansible_parser(tmp_path: Path) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text(INI)
    notes: list[str] = []
    data = import_ansible_inventory(path, warnings=notes)
    assert len(notes) == 1 and "sw1: ansible_password" in notes[0]
    assert "Sup3rSecret" not in json.dumps(data) and "Sup3rSecret" not in notes[0]
    inventory = load_inventory(write_inventory_folder(data, tmp_path / "inv"))
    sw1, sw2, web1 = (inventory.get(n) for n in ("sw1", "sw2", "web1"))
    assert (sw1.platform, sw1.host, sw1.attributes["model"]) == ("cisco_ios", "10.0.0.1", "C9300")
    assert sw2.platform == "arista_eos"
    assert (web1.port, web1.username, web1.platform, str(web1.type)) == (
        2222,
        "deploy",
        "linux",
        "server",
    )
    assert set(sw1.groups) == {"core", "network"}
    assert inventory.groups["core"].parents == ("network",)
    assert sw1.owner == "netops"  # all:vars opskit_owner -> defaults
    assert sw2.attributes["site"] == "dc1"  # a plain group variable -> attributes
    assert sw2.connection_options["ansible"]["ansible_connection"].endswith("network_cli")


def test_import_errors(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="no such Ansible inventory"):
        import_ansible_inventory(tmp_path / "missing.ini")
    bad = tmp_path / "bad.ini"
    bad.write_text("[x\nfoo bar = = \n")
    with pytest.raises(InventoryError, match="Ansible cannot parse it"):
        import_ansible_inventory(bad)
    # An import that would produce an invalid inventory leaves nothing behind.
    data = {"cis": [{"name": "a", "type": "switch", "platform": "linux", "port": "ssh"}]}
    with pytest.raises(InventoryError, match=r"\[cis\[0\]\.port\]"):
        write_inventory_folder(data, tmp_path / "inventories" / "broken")
    assert list((tmp_path / "inventories").iterdir()) == []
