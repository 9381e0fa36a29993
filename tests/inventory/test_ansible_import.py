"""Importing Ansible inventories: every name and variable Ansible accepts comes
back from export as `ansible-inventory --list` (the real binary) saw it, and
errors name the Ansible source file and line."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from opskit.errors import InventoryError
from opskit.inventory import load_inventory
from opskit.inventory.ansible import write_inventory_folder
from opskit.inventory.ansible_import import import_ansible_inventory
from opskit.workspace import Workspace
from tests.ansible_support import assert_same_listing, round_trip

NAMES = """\
all:
  children:
    image-builder:
      hosts:
        příbor:
          ansible_host: 10.0.0.5
        web.example.com:
        "web server":
    image_builder:
      hosts:
        plain:
    empty-parent:
      children:
        image-builder:
        nobody: {}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_names_ansible_accepts_are_mapped_and_given_back(tmp_path: Path) -> None:
    source = write(tmp_path, "hosts.yml", NAMES)
    data = import_ansible_inventory(source)
    inventory = load_inventory(write_inventory_folder(data, tmp_path / "inv"))
    assert inventory.get("pribor").ansible_name == "příbor"
    assert inventory.get("pribor").host == "10.0.0.5"
    assert inventory.get("web_server").ansible_name == "web server"
    assert inventory.get("web.example.com").ansible_name is None  # fits as it is
    # `image_builder` exists already: the mapped name takes the next free one.
    mapped = inventory.groups["image_builder_2"]
    assert mapped.ansible_name == "image-builder"
    assert set(inventory.members("image_builder_2")) >= {inventory.get("pribor")}
    assert mapped.parents == ("empty_parent",)
    assert inventory.groups["nobody"].parents == ("empty_parent",)
    # ... and ansible-inventory sees the very same inventory after export.
    assert_same_listing(source, tmp_path / "round-trip")


def test_empty_groups_and_child_links_survive_export(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "hosts.ini",
        "[kube_control_plane]\n\n[etcd:children]\nkube_control_plane\n\n[kube_node]\n"
        "[k8s_cluster:children]\nkube_control_plane\nkube_node\n[lonely]\n",
    )
    exported, _ = round_trip(source, tmp_path / "work")
    text = exported.read_text()
    assert "lonely" in text and "etcd" in text
    assert_same_listing(source, tmp_path / "again")


def test_a_host_declared_in_a_group_and_its_parent_stays_in_both(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "hosts.yml",
        "all:\n  children:\n    p:\n      hosts:\n        h1:\n"
        "      children:\n        c:\n          hosts:\n            h1:\n            h2:\n",
    )
    assert_same_listing(source, tmp_path / "round-trip")


def test_group_vars_and_host_vars_beside_the_inventory(tmp_path: Path) -> None:
    source = write(tmp_path, "inv/hosts.ini", "[web]\nw1\nw2 colour=red\n")
    write(tmp_path, "inv/group_vars/all.yml", "site: dc1\ncolour: blue\n")
    write(tmp_path, "inv/group_vars/web/main.yml", "ansible_port: 2222\ncolour: green\n")
    write(tmp_path, "inv/host_vars/w1.yml", "ansible_host: 192.0.2.1\nrack: {1: a, 2: b}\n")
    data = import_ansible_inventory(source)
    inventory = load_inventory(write_inventory_folder(data, tmp_path / "opskit"))
    w1, w2 = inventory.get("w1"), inventory.get("w2")
    assert (w1.host, w1.port, w2.port) == ("192.0.2.1", 2222, 2222)
    assert w1.attributes["colour"] == "green" and w2.attributes["colour"] == "red"
    assert w1.attributes["site"] == "dc1"
    assert w1.attributes["rack"] == {1: "a", 2: "b"}  # integer keys stay integers
    assert_same_listing(source, tmp_path / "round-trip")


def test_ssh_host_alias_and_templated_host(tmp_path: Path) -> None:
    source = write(
        tmp_path,
        "hosts.yml",
        "all:\n  vars:\n    base: 10.1.1\n  hosts:\n"
        "    old:\n      ansible_ssh_host: 192.0.2.7\n      ansible_ssh_user: admin\n"
        "    templated:\n      ansible_host: '{{ base }}.9'\n",
    )
    data = import_ansible_inventory(source)
    inventory = load_inventory(write_inventory_folder(data, tmp_path / "opskit"))
    old, templated = inventory.get("old"), inventory.get("templated")
    assert (old.host, old.username) == ("192.0.2.7", "admin")
    # A template is not an address: it stays an Ansible variable.
    assert templated.host is None
    assert templated.connection_options["ansible"]["ansible_host"] == "{{ base }}.9"
    assert_same_listing(source, tmp_path / "round-trip")


def test_mappings_merged_across_levels_keep_ansible_semantics(tmp_path: Path) -> None:
    """Ansible replaces a mapping variable set at several levels; opskit's
    attributes merge deeply, so the import writes such a variable on the hosts."""
    source = write(
        tmp_path,
        "hosts.yml",
        "all:\n  children:\n    a:\n      vars: {opts: {x: 1, y: 2}, level: a}\n"
        "      hosts:\n        h1: {opts: {z: 3}}\n        h2:\n"
        "    b:\n      vars: {level: b}\n      hosts:\n        h2:\n",
    )
    notes = assert_same_listing(source, tmp_path / "round-trip")
    assert notes == []


@pytest.mark.parametrize(
    ("text", "file", "line", "words"),
    [
        ("all:\n  hosts:\n    h1:\n      x: .nan\n", "hosts.yml", 4, "NaN and infinities"),
        ("all:\n  hosts:\n    h1:\n      x: [1, -.inf]\n", "hosts.yml", 4, "x[1]"),
        ("[g]\nh1 ansible_port=ssh\n", "hosts.ini", 2, "ansible_port"),
        ("all:\n  hosts:\n    h1:\n      opskit_type: toaster\n", "hosts.yml", 4, "toaster"),
        ("all:\n  hosts:\n    h1:\n      ansible_ssh_port: 0\n", "hosts.yml", 4, "ssh_port"),
        ("[all:vars]\nopskit_type=toaster\n[g]\nh1\n", "hosts.ini", 2, "group all opskit_type"),
    ],
)
def test_errors_name_the_source_file_and_line(
    tmp_path: Path, text: str, file: str, line: int, words: str
) -> None:
    source = write(tmp_path, file, text)
    with pytest.raises(InventoryError) as caught:
        import_ansible_inventory(source)
    message = str(caught.value)
    assert "\n" not in message
    assert re.match(rf"^{re.escape(str(source))}:{line}\b", message), message
    assert words in message
    assert "opskit-import-" not in message and "/." not in message  # no temporary file


def test_error_in_group_vars_names_that_file(tmp_path: Path) -> None:
    source = write(tmp_path, "inv/hosts.ini", "[web]\nw1\n")
    bad = write(tmp_path, "inv/group_vars/web.yml", "a: 1\nansible_port: 99999\n")
    with pytest.raises(InventoryError) as caught:
        import_ansible_inventory(source)
    assert str(caught.value).startswith(f"{bad}:2"), str(caught.value)


def test_write_inventory_folder_errors_name_the_target_not_a_staging_copy(
    tmp_path: Path,
) -> None:
    data = {"cis": [{"name": "a", "type": "switch", "platform": "linux", "port": "ssh"}]}
    target = tmp_path / "inventories" / "broken"
    with pytest.raises(InventoryError) as caught:
        write_inventory_folder(data, target)
    assert str(caught.value).startswith(f"{target / 'cis.yaml'}:"), str(caught.value)
    assert not target.exists()


def opskit(workspace: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opskit", "--workspace", str(workspace.root), "inventory", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.mark.slow
def test_cli_import_then_export_gives_the_ansible_names_back(
    workspace: Workspace, tmp_path: Path
) -> None:
    source = write(tmp_path, "hosts.yml", NAMES)
    imported = opskit(workspace, "import", str(source), "--name", "from-ansible")
    assert imported.returncode == 0, imported.stderr
    exported = opskit(workspace, "export", "--inventory", "from-ansible")
    assert exported.returncode == 0, exported.stderr
    data = yaml.safe_load(exported.stdout)
    assert {"příbor", "web server", "plain"} <= set(data["all"]["hosts"])
    parent = data["all"]["children"]["empty-parent"]["children"]
    assert set(parent["image-builder"]["hosts"]) == {"příbor", "web server", "web.example.com"}
    assert parent["nobody"] == {}
    broken = write(tmp_path, "broken.ini", "[web]\nw1 ansible_port=ssh\n")
    refused = opskit(workspace, "import", str(broken), "--name", "broken")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        f"error: {broken}:2: host w1 ansible_port: must be an integer (got text 'ssh')"
    ]
    assert not (workspace.inventories_dir / "broken").exists()
