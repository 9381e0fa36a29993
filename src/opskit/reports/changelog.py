"""The change log of a period (`report changes`): one row per change
requested in the period, filterable by CI, owner, site (an inventory
selection) and runbook.

Example:
    >>> data, rows = changelog_data(source, period, select="site:dc1")
    >>> rows[0]
    {'id': 'CHG-000001', 'title': 'VLAN 301', 'type': 'normal', 'risk': 'low (12)',
     'requester': 'alice', 'approvers': 'bob', 'window': '', 'state': 'closed',
     'outcome': 'completed', 'hosts_ok': 1, 'hosts_failed': 0, 'hosts_rolled_back': 0,
     'duration_s': 0.6, 'created': '2026-12-06T02:37:41.544874+00:00'}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opskit.hoststate import HostState
from opskit.reports.collect import ChangeRecord, Source
from opskit.reports.i18n import NO_VALUE
from opskit.reports.model import Period

ROLLED_BACK_STATUSES = frozenset({HostState.ROLLED_BACK})
FAILED_STATUSES = frozenset({HostState.FAILED, HostState.ROLLBACK_FAILED, HostState.NOT_RESTORED})


def selected_cis(source: Source, select: str | None) -> set[str] | None:
    """The CI names an inventory selection names (None: no filter)."""
    if not select:
        return None
    from opskit.inventory import load_workspace_inventory

    inventory = load_workspace_inventory(source.ws)
    return {ci.name for ci in inventory.select(select, include_decommissioned=True)}


def in_scope(
    records: Iterable[ChangeRecord],
    period: Period,
    cis: set[str] | None = None,
    runbook: str | None = None,
) -> list[ChangeRecord]:
    """The changes requested in `period` that touch `cis` and use `runbook`
    (a name, or NAME@VERSION)."""
    chosen = []
    for record in records:
        if not period.contains(record.created):
            continue
        if cis is not None and not cis & set(record.targets):
            continue
        if runbook and runbook not in (record.runbook, record.runbook.partition("@")[0]):
            continue
        chosen.append(record)
    return chosen


def change_row(record: ChangeRecord) -> dict[str, Any]:
    statuses = list(record.hosts.values())
    risk = record.risk
    window = (record.column("window_start"), record.column("window_end"))
    return {
        "id": record.id,
        "title": record.title,
        "type": record.type,
        "risk": f"{risk.get('level')} ({risk.get('score')})" if risk else "",
        "requester": str(record.column("requester", "")),
        "approvers": ", ".join(record.approvers),
        "window": f" {NO_VALUE} ".join(str(w) for w in window) if any(window) else "",
        "state": record.state,
        "outcome": record.outcome or "",
        "hosts_ok": statuses.count(HostState.OK),
        "hosts_failed": sum(1 for s in statuses if s in FAILED_STATUSES),
        "hosts_rolled_back": sum(1 for s in statuses if s in ROLLED_BACK_STATUSES),
        "duration_s": record.duration_s,
        "runbook": record.runbook,
        "tickets": ", ".join(record.tickets),
        "created": record.created.isoformat(),
    }


def changelog_data(
    source: Source, period: Period, *, select: str | None = None, runbook: str | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The change log of `period` (see the module docstring)."""
    records = in_scope(source.changes().values(), period, selected_cis(source, select), runbook)
    rows = [change_row(r) for r in records]
    by_outcome: dict[str, int] = {}
    for row in rows:
        key = row["outcome"] or "not_run"
        by_outcome[key] = by_outcome.get(key, 0) + 1
    data = {
        "filters": {"select": select, "runbook": runbook},
        "count": len(rows),
        "by_outcome": by_outcome,
    }
    return data, rows
