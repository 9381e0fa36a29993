"""Drift between a workspace inventory and the source of truth.

`drift_against_source(ws, "nautobot", url=..., token_ref=..., inventory="nb")`
reads the source (same mapping as a sync, same one-line refusals), and
compares, CI by CI, the fields the source sets with the inventory's merged
values (defaults and groups applied). It returns a `SyncPlan` read as:
``added`` = in the source but not in the inventory, ``removed`` = in the
inventory but not in the source, ``changed`` = ``{name: [FieldChange(field,
inventory value, source value)]}``. Relationships are not compared.

Example: ``SyncPlan(added=[], removed=["lab-sw9"],
changed={"core-sw1": [FieldChange("attributes.serial", "FOC1", "FOC2")]})``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from opskit.inventory.sources.plan import SyncPlan, plan_sync
from opskit.inventory.sources.records import MappingTables, to_inventory_data
from opskit.inventory.sources.sync import fetcher, source_url
from opskit.secrets import SecretRef
from opskit.workspace import Workspace

COMPARED = ("type", "platform", "host", "site", "owner", "department", "lifecycle")
# Bookkeeping of the sync itself, not a property of the device.
NOT_COMPARED_ATTRIBUTES = ("source_id", "source_kind")


def drift_against_source(
    ws: Workspace,
    source: str,
    *,
    url: str,
    token_ref: SecretRef,
    inventory: str | None = None,
    select: str | None = None,
    filters: Mapping[str, list[str]] | None = None,
) -> SyncPlan:
    from opskit.inventory import load_workspace_inventory

    base = source_url(source, url)
    inv = load_workspace_inventory(ws, inventory)
    tables = MappingTables.load(ws.root / "sot" / f"{source}.yaml")
    token = token_ref.resolve(base_dir=ws.root)
    snapshot = fetcher(source)(base, token, filters, relationships=tables.relationships)
    data, _notes = to_inventory_data(snapshot.objects, tables)
    wanted = {ci.name for ci in inv.select(select, include_decommissioned=True)}
    theirs = [_compared(ci) for ci in data["cis"] if select is None or ci["name"] in wanted]
    ours = [_compared(_ci_fields(ci)) for ci in inv.select(select, include_decommissioned=True)]
    return plan_sync(ours, theirs)


def _ci_fields(ci: Any) -> dict[str, Any]:
    fields = {key: getattr(ci, key) for key in ("name", *COMPARED)}
    fields = {k: (str(v) if v is not None else None) for k, v in fields.items()}
    fields["attributes"] = dict(ci.attributes)
    return fields


def _compared(ci: Mapping[str, Any]) -> dict[str, Any]:
    out = {key: ci.get(key) for key in ("name", *COMPARED)}
    attributes = ci.get("attributes") or {}
    out["attributes"] = {k: v for k, v in attributes.items() if k not in NOT_COMPARED_ATTRIBUTES}
    return out
