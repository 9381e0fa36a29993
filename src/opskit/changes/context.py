"""`EngineContext`: what every part of the change engine works with for one
workspace (the workspace, its policy, the clock, the journal that writes,
the store that reads and keeps the working index, the runbook catalog, the
runner of per-host jobs), and
the few reads of the inventory the engine makes.

`ChangeService` builds one; the rollout, rollback and recovery receive it,
so none of them needs the service.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opskit.changes.changestore import ChangeStore
from opskit.changes.journal import Journal
from opskit.changes.runners import RunnerFactory, thread_runner
from opskit.inventory.core import Inventory
from opskit.inventory.loader import load_workspace_inventory

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from opskit.ledger.core import Ledger
    from opskit.policy import Policy
    from opskit.runbooks.loader import RunbookCatalog
    from opskit.workspace import Workspace


class EngineContext:
    """The change engine's shared parts for one workspace."""

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Callable[[], datetime],
        journal: Journal,
        store: ChangeStore,
        runner: RunnerFactory = thread_runner,
    ) -> None:
        self.ws = ws
        self.clock = clock
        self.journal = journal
        self.store = store
        # Runs a rollout's per-host jobs (see `opskit.changes.runners`).
        self.runner = runner
        self._catalog: RunbookCatalog | None = None

    @property
    def engine(self) -> Engine:
        """The workspace's database (the change tables and, on one database, the ledger)."""
        return self.ws.engine

    @property
    def policy(self) -> Policy:
        """The workspace's policy (`opskit.yaml`), read once by the workspace."""
        return self.ws.policy

    @property
    def ledger(self) -> Ledger:
        """The ledger the journal writes to (opened on first use)."""
        return self.journal.ledger

    @property
    def catalog(self) -> RunbookCatalog:
        """The workspace's runbooks, read once (`forget_catalog` reads them again)."""
        if self._catalog is None:
            # The runbook machinery (Jinja2, jsonschema) only when a change needs it.
            from opskit.runbooks.loader import RunbookCatalog

            self._catalog = RunbookCatalog(self.ws)
        return self._catalog

    def forget_catalog(self) -> None:
        """The runbook files are read again on next use (as a new process would)."""
        self._catalog = None

    def inventory(self, name: str | None = None) -> Inventory:
        """Inventory `name` (default: the policy's)."""
        return load_workspace_inventory(self.ws, name)


def select_names(inventory: Inventory, expression: str) -> list[str]:
    """The names of the CIs `expression` selects, sorted."""
    return sorted(ci.name for ci in inventory.select(expression))


def impact_of(inventory: Inventory, names: Iterable[str]) -> dict[str, Any]:
    """Targets, their dependants through CMDB relationships, owners to inform."""
    report = inventory.impact(sorted(names)).to_dict()
    return {
        "targets": report["targets"],
        "dependants": report["impacted"],
        "owners": report["owners"],
        "highest_criticality": report["highest_criticality"],
    }
