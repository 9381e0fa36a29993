"""The few places where the change engine meets the other subsystems
(inventory, runbooks, ledger, connectors), kept in one module so the rest of
the engine reads as the change process only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.inventory.model import CI
    from opskit.workspace import Workspace


def load_inventory(ws: Workspace, name: str | None = None) -> Any:
    from opskit.inventory import load_workspace_inventory

    return load_workspace_inventory(ws, name)


def ci_name(item: Any) -> str:
    return item if isinstance(item, str) else item.name


def select_names(inventory: Any, expression: str) -> list[str]:
    return sorted(ci_name(ci) for ci in inventory.select(expression))


def get_ci(inventory: Any, name: str) -> CI:
    return inventory.get(name)


def impact_of(inventory: Any, names: Iterable[str]) -> dict[str, Any]:
    """Targets, their dependants through CMDB relationships, owners to inform."""
    report = inventory.impact(sorted(names)).to_dict()
    return {
        "targets": report["targets"],
        "dependants": report["impacted"],
        "owners": report["owners"],
        "highest_criticality": report["highest_criticality"],
    }


def inventory_digest(inventory: Any) -> str:
    digest = inventory.digest
    return digest() if callable(digest) else digest


def runbook_catalog(ws: Workspace) -> Any:
    try:
        from opskit.runbooks import RunbookCatalog
    except ImportError:
        from opskit.runbooks.loader import RunbookCatalog

    return RunbookCatalog(ws)


def open_ledger(ws: Workspace) -> Any:
    from opskit.ledger import Ledger

    # A broken policy is refused before anything can be recorded under it.
    ws.policy  # noqa: B018
    return Ledger.open(ws)


def connector_capabilities(connector_name: str, platform: str) -> frozenset[str]:
    from opskit.connectors import get_connector

    try:
        cls = get_connector(connector_name)
    except Exception:
        return frozenset()
    return frozenset(str(c) for c in cls.capabilities_for(platform))


def observed_store(ws: Workspace) -> Any:
    from opskit.inventory.observed import ObservedStore

    return ObservedStore(ws.engine)
