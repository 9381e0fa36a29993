"""Inventories synced from a source of truth (Nautobot; NetBox would fit the
same layer). `records` maps source-neutral objects to CIs, `plan` compares,
`sync` writes all or nothing, `nautobot` reads Nautobot's REST API.

    >>> from opskit.inventory.sources import sync_inventory
"""

from opskit.inventory.sources.plan import FieldChange, SyncPlan, plan_sync
from opskit.inventory.sources.records import MappingTables, SourceObject, SyncError
from opskit.inventory.sources.sync import SyncResult, sync_inventory

__all__ = [
    "FieldChange",
    "MappingTables",
    "SourceObject",
    "SyncError",
    "SyncPlan",
    "SyncResult",
    "plan_sync",
    "sync_inventory",
]
