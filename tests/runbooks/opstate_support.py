"""Shared by the state snapshot tests: the guarded runbook and its greedy variant."""

from __future__ import annotations

from opskit.runbooks import RunbookCatalog
from opskit.workspace import Workspace

BOOK = "vlan-interface-guarded"


def greedy_version(ws: Workspace) -> RunbookCatalog:
    """1.0.1: the same change that also creates a second VLAN it does not allow."""
    path = ws.runbooks_dir / BOOK / "1.0.0.yaml"
    text = path.read_text().replace("version: 1.0.0", "version: 1.0.1", 1)
    text = text.replace(
        "      template: vlan-interface/vlan.j2\n",
        "      template: vlan-interface/vlan.j2\n"
        "  - name: and one more VLAN\n    connector: netmiko\n    action: config\n"
        "    params:\n      lines: ['vlan {{ params.vlan_id + 1 }}', ' name extra']\n",
    )
    (ws.runbooks_dir / BOOK / "1.0.1.yaml").write_text(text)
    return RunbookCatalog(ws)
