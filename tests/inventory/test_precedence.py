"""Which level of an inventory gives a CI its values: a secret reference is a
leaf that a more specific level replaces; an inventory name is one folder."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from opskit.errors import WorkspaceError
from opskit.inventory import load_inventory, load_workspace_inventory
from opskit.secrets import SecretRef
from opskit.workspace import Workspace


def _write(folder: Path, data: dict[str, object]) -> Path:
    folder.mkdir(parents=True)
    (folder / "hosts.yaml").write_text(yaml.safe_dump(data))
    return folder


def test_a_group_secret_reference_replaces_the_default_one(tmp_path: Path) -> None:
    folder = _write(
        tmp_path / "inv",
        {
            "defaults": {"credentials": {"username": "admin", "password": {"env": "NET_PW"}}},
            "groups": {"core": {"vars": {"credentials": {"password": {"file": "secrets/core"}}}}},
            "cis": [
                {"name": "sw1", "type": "switch", "platform": "cisco_ios", "groups": ["core"]},
                {"name": "sw2", "type": "switch", "platform": "cisco_ios"},
            ],
        },
    )
    inv = load_inventory(folder)
    core = str(folder.resolve() / "secrets/core")
    assert inv.get("sw1").credentials == {"username": "admin", "password": SecretRef(file=core)}
    assert inv.get("sw2").credentials == {"username": "admin", "password": SecretRef(env="NET_PW")}


@pytest.mark.parametrize("name", [".", "..", "lab/..", "/etc", "../inventories/lab"])
def test_a_name_that_is_not_one_inventory_folder_is_refused(
    workspace: Workspace, name: str
) -> None:
    with pytest.raises(WorkspaceError, match="is not an inventory name") as caught:
        load_workspace_inventory(workspace, name)
    assert "\n" not in str(caught.value)
