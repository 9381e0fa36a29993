"""The device lab: emulated Cisco IOS switches (fake-switches, patched) and
real Linux hosts (sshd) on loopback ports, with their CMDB entries.

Public API: ``Lab(ws).up(devices=4, linux=1)``, ``.status()``, ``.down()``.
"""

from __future__ import annotations

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
