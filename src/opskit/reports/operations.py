"""The operations reports: the backup log, compliance and the inspection.

- `backups_data(source, max_age_hours=24)`: per CI of the default inventory
  (and every CI the ledger has a backup of) the latest backup: a change's
  pre-change snapshot (`host.backup`), the config-backup runbook's, or a
  `backup.taken` event; its age, and which CIs have none or an old one.
- `compliance_data(source, period)`: the latest judged state per CI and
  feature in the period, the compliance rate per feature and overall (per
  CI: compliant when none of its features is non-compliant, as
  `opskit compliance run` counts it); "not yet measured" when the ledger
  holds none.
- `inspection_data(source, seq=None)`: the latest (or the given) recorded
  `inspection.run`, exceptions first, per host and check.

Example:
    >>> data, rows = backups_data(source)
    >>> rows[0]
    {'ci': 'lab-sw03', 'status': 'missing', 'at': None, 'age_hours': None, ...}
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from opskit.reports.collect import Source
from opskit.reports.kpi import ci_verdicts, feature_results
from opskit.reports.model import Period, ReportError

BACKUP_KINDS = frozenset({"host.backup", "backup.taken"})
STATUS_ORDER = {"missing": 0, "stale": 1, "ok": 2}


def _inventory_cis(source: Source) -> list[str]:
    from opskit.errors import OpskitError
    from opskit.inventory import load_workspace_inventory

    try:
        return [ci.name for ci in load_workspace_inventory(source.ws).select(None)]
    except OpskitError:
        return []  # no usable inventory: report what the ledger knows


def backups_data(
    source: Source, *, max_age_hours: float = 24.0, now: datetime | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The backup log (see the module docstring); missing and stale first."""
    now = now or datetime.now(UTC)
    latest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for event in source.events():
        if event.kind in BACKUP_KINDS and event.ci and not event.payload.get("dry_run"):
            latest[event.ci] = event
            counts[event.ci] = counts.get(event.ci, 0) + 1
    rows = []
    for ci in sorted(set(_inventory_cis(source)) | set(latest)):
        event = latest.get(ci)
        if event is None:
            rows.append(_backup_row(ci, "missing"))
            continue
        age = (now - event.at).total_seconds() / 3600
        snapshot = event.payload.get("snapshot") or {}
        rows.append(
            _backup_row(
                ci,
                "stale" if age > max_age_hours else "ok",
                at=event.at.isoformat(timespec="seconds"),
                age_hours=round(age, 1),
                hash=snapshot.get("hash") or event.payload.get("hash"),
                change_id=event.change_id,
                runbook=event.payload.get("runbook"),
                seq=event.seq,
                backups=counts[ci],
            )
        )
    rows.sort(key=lambda row: (STATUS_ORDER[row["status"]], row["ci"]))
    summary = {status: sum(1 for r in rows if r["status"] == status) for status in STATUS_ORDER}
    return {"max_age_hours": max_age_hours, "summary": summary, "cis": len(rows)}, rows


def _backup_row(ci: str, status: str, **fields: Any) -> dict[str, Any]:
    row = {
        "ci": ci,
        "status": status,
        "at": None,
        "age_hours": None,
        "hash": None,
        "change_id": None,
        "runbook": None,
        "seq": None,
        "backups": 0,
    }
    row.update(fields)
    return row


def compliance_data(source: Source, period: Period) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Compliance from the ledger's `compliance.result` events (module docstring)."""
    results = feature_results(source, period)
    cis = ci_verdicts(results)
    rows = [
        {
            "ci": ci,
            "feature": feature,
            "compliant": verdict.compliant,
            "at": verdict.at.isoformat(timespec="seconds"),
            "detail": verdict.reason,
            "seq": verdict.seq,
        }
        for (ci, feature), verdict in sorted(results.items())
    ]
    rows.sort(key=lambda row: (row["compliant"], row["ci"], row["feature"]))
    features: dict[str, list[int]] = {}
    for row in rows:
        tally = features.setdefault(row["feature"], [0, 0])
        tally[0] += row["compliant"]
        tally[1] += 1
    data = {
        "measured": bool(rows),
        # Per CI, as `opskit compliance run` counts it: compliant when none of
        # its features is non-compliant.
        "rate": round(100.0 * sum(cis.values()) / len(cis), 1) if cis else None,
        "cis": len(cis),
        "compliant_cis": sum(cis.values()),
        "features": [
            {"feature": name, "compliant": ok, "total": total, "rate": round(100.0 * ok / total, 1)}
            for name, (ok, total) in sorted(features.items())
        ],
    }
    return data, rows


def inspection_data(
    source: Source, *, seq: int | None = None
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The recorded inspection run `seq` (default: the latest), exceptions first."""
    runs = [e for e in source.events() if e.kind == INSPECTION_KIND]
    if seq is not None:
        runs = [e for e in runs if e.seq == seq]
        if not runs:
            raise ReportError(f"--seq {seq}: no inspection run recorded at that seq")
    if not runs:
        return {"measured": False, "run": None, "summary": {}, "hosts": []}, []
    event = runs[-1]
    report = event.payload.get("report") or {}
    rows = []
    for host in report.get("hosts") or []:
        if host.get("error"):
            rows.append(_finding_row(host, "(not inspected)", "failed", host["error"]))
        for finding in host.get("findings") or []:
            rows.append(
                _finding_row(
                    host, finding.get("check"), finding.get("status"), finding.get("detail")
                )
            )
    order = {"failed": 0, "exception": 1, "unavailable": 2, "ok": 3}
    rows.sort(key=lambda row: order.get(str(row["status"]), 4))
    data = {
        "measured": True,
        "run": {
            "seq": event.seq,
            "at": event.at_text,
            "actor": event.actor,
            "runbook": event.payload.get("runbook"),
            "selection": event.payload.get("selection"),
            "parameters": event.payload.get("parameters") or {},
        },
        "summary": report.get("summary") or {},
        "hosts": report.get("hosts") or [],
    }
    return data, rows


INSPECTION_KIND = "inspection.run"


def _finding_row(host: dict[str, Any], check: Any, status: Any, detail: Any) -> dict[str, Any]:
    return {
        "ci": host.get("ci"),
        "platform": host.get("platform"),
        "check": check,
        "status": status,
        "detail": detail or "",
    }
