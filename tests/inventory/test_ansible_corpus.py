"""Real public Ansible inventories (tests/data/ansible-inventories, see its
README): every one that `ansible-inventory --list` accepts imports, and
import -> export gives ansible-inventory the same groups (empty ones too),
children, hosts and effective variables; the ones Ansible refuses get a
one-line error naming the file."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from opskit.errors import InventoryError
from opskit.inventory.ansible_import import import_ansible_inventory
from tests.ansible_support import assert_same_listing, listing

CORPUS = Path(__file__).resolve().parents[1] / "data" / "ansible-inventories"
VARS_FOLDERS = ("group_vars", "host_vars")
# Inventories that Ansible itself refuses, and why (the test checks that it does).
REFUSED_BY_ANSIBLE = {
    "ansible/inventory_yaml/test_int_hostname.yml": "a host named by an integer (1234)",
}
# Features out of opskit's scope: none so far. Name each with the reason.
OUT_OF_SCOPE: dict[str, str] = {}


def inventories() -> list[str]:
    found = []
    for path in sorted(CORPUS.rglob("*")):
        relative = path.relative_to(CORPUS)
        in_vars_folder = any(part in VARS_FOLDERS for part in relative.parts)
        if path.is_file() and path.suffix != ".md" and not in_vars_folder:
            found.append(relative.as_posix())
    return found


def test_the_corpus_is_there() -> None:
    names = inventories()
    assert len(names) >= 33
    assert any(n.startswith("kubespray/") for n in names)
    assert set(REFUSED_BY_ANSIBLE) <= set(names)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in inventories() if n not in REFUSED_BY_ANSIBLE])
def test_import_export_gives_ansible_the_same_inventory(name: str, tmp_path: Path) -> None:
    if name in OUT_OF_SCOPE:
        pytest.skip(OUT_OF_SCOPE[name])
    notes = assert_same_listing(CORPUS / name, tmp_path)
    assert notes == []


@pytest.mark.parametrize("name", sorted(REFUSED_BY_ANSIBLE))
def test_inventories_ansible_refuses_get_one_line_naming_the_file(name: str) -> None:
    source = CORPUS / name
    assert listing(source) is None, "Ansible accepts it now: move it to the accepted ones"
    with pytest.raises(InventoryError) as caught:
        import_ansible_inventory(source)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(str(source.resolve())) or message.startswith(str(source))


@pytest.mark.slow
def test_kubespray_sample_with_its_example_nodes(tmp_path: Path) -> None:
    """The kubespray sample as its users fill it in: the example nodes it
    ships commented out, with all of its group_vars/ (mostly templates)."""
    folder = tmp_path / "mycluster"
    shutil.copytree(CORPUS / "kubespray" / "sample", folder)
    inventory = folder / "inventory.ini"
    text = re.sub(r"^# (node\d .*?)\s*#.*$", r"\1", inventory.read_text(), flags=re.M)
    text += "\n[k8s_cluster:children]\nkube_control_plane\nkube_node\n"
    inventory.write_text(text)
    before = listing(inventory)
    assert before is not None and len(before["hostvars"]) == 6
    assert "kube_proxy_mode" in before["hostvars"]["node1"]  # from group_vars/k8s_cluster
    notes = assert_same_listing(inventory, tmp_path / "work")
    assert notes == []
