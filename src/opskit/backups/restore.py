"""Restoring a CI's configuration from a backup is a change request.

`restore_change(svc, ci, ref, requester=...)` reads the backup REF names
(`opskit.backups.history.resolve`), fetches the device's running
configuration (read-only) and creates a normal change (`linechange`) whose
lines are hier_config's remediation from the running configuration to the
backup's. It is assessed, approved, applied and verified like any change;
nothing is pushed here.

Example:
    >>> change = restore_change(svc, "lab-sw01", "latest~1", requester="alice")
    >>> change.state, change.runbook_ref
    ('draft', 'config-lines@1.0.0')
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from opskit.backups.history import backup_history, config_of, resolve
from opskit.backups.linechange import create_line_change, plan_towards
from opskit.backups.take import config_connector
from opskit.errors import ChangeError

if TYPE_CHECKING:
    from opskit.changes import ChangeRequest, ChangeService


def live_config(svc: ChangeService, ci_name: str, inventory: str | None) -> tuple[str, str]:
    """(platform, running configuration) of a CI, fetched read-only."""
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory import load_workspace_inventory

    ci = load_workspace_inventory(svc.ws, inventory or svc.context.policy.inventory).get(ci_name)
    connector = config_connector(ci.platform)
    if connector is None:
        raise ChangeError(f"{ci_name}: no connector fetches {ci.platform} configurations")
    with ConnectionPool(1) as pool, pool.session(ci, connector) as conn:
        return ci.platform, conn.get_config("running")


def restore_change(
    svc: ChangeService,
    ci: str,
    ref: str,
    *,
    requester: str,
    title: str | None = None,
    inventory: str | None = None,
    tickets: tuple[str, ...] = (),
) -> ChangeRequest:
    """A draft change restoring `ci` to the backup `ref` names (ChangeError:
    the device already holds that configuration)."""
    backup = resolve(backup_history(svc.context.ledger, ci), ref, ci=ci)
    target = config_of(svc.context.ledger, backup)
    platform, current = live_config(svc, ci, inventory)
    plan = plan_towards(ci, current, target, backup.platform or platform)
    if not plan.lines:
        raise ChangeError(f"{ci}: the running configuration already equals backup {backup.label}")
    return create_line_change(
        svc,
        requester=requester,
        title=title or f"Restore {ci} to backup #{backup.seq} of {backup.at[:19]}Z",
        plans=[plan],
        inventory=inventory,
        description=(
            f"Restores the configuration of {ci} recorded in ledger record #{backup.seq} "
            f"({backup.origin}, {backup.hash})."
        ),
        purpose={"restore": {"ci": ci, "seq": backup.seq, "hash": backup.hash}},
        tickets=tickets,
    )


__all__ = ["live_config", "restore_change"]
