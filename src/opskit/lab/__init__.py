"""The device lab: emulated Cisco IOS switches (fake-switches, patched),
optional Juniper NETCONF devices, and real Linux hosts (sshd) on loopback
ports, with their CMDB entries.

Public API: ``Lab(ws).up(devices=4, linux=1, junos=0)``, ``.status()``, ``.down()``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.lab.manager import (
        LAB_INVENTORY,
        Lab,
        LabDevice,
        LabError,
        LabStatus,
        lab_inventory,
        linux_hosts_available,
    )

__all__ = [
    "LAB_INVENTORY",
    "Lab",
    "LabDevice",
    "LabError",
    "LabStatus",
    "lab_inventory",
    "linux_hosts_available",
]


def __getattr__(name: str) -> Any:
    # Lazy: the emulator process (`python -m opskit.lab.switches`) imports this
    # package and needs none of the manager's dependencies (workspace, database).
    if name in __all__:
        from opskit.lab import manager

        return getattr(manager, name)
    raise AttributeError(f"module 'opskit.lab' has no attribute {name!r}")
