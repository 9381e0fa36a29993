"""Service-management KPIs computed from the verified ledger.

`kpi_data(source, period, by="month", targets=None) -> (data, rows)`:
`data["figures"]` holds each figure over the whole period and
`data["trend"]` the same figures per month or week; each figure carries its
value, what it was computed from (numerator and denominator, or the samples
of a time), its target from the policy (`kpi_targets:`) and whether it met
it. A figure with nothing to compute from is `measured: False` and has no
value: "not yet measured", never a made-up number. docs/reports.md defines
every figure.

Example:
    >>> data, rows = kpi_data(source, period)
    >>> data["figures"]["change_success_rate"]
    {'key': 'change_success_rate', 'unit': 'percent', 'measured': True,
     'value': 50.0, 'numerator': 1, 'denominator': 2, 'target': 95.0,
     'direction': 'min', 'met': False}
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from opskit.reports.collect import FAILED_OUTCOMES, ChangeRecord, Source
from opskit.reports.model import Period

# The figures in report order, with their unit and which side of the target is good.
FIGURES: dict[str, tuple[str, str]] = {
    "change_success_rate": ("percent", "min"),
    "changes_caused_failures": ("count", "max"),
    "rollback_rate": ("percent", "max"),
    "emergency_share": ("percent", "max"),
    "approval_lead_time": ("hours", "max"),
    "time_to_implement": ("hours", "max"),
    "compliance_rate": ("percent", "min"),
    "cmdb_accuracy": ("percent", "min"),
}
# A ticket that names an incident (INC-1042, INC0012345: ServiceNow's form).
INCIDENT_TICKET = re.compile(r"^INC[-_]?\d", re.IGNORECASE)
# How far back a later change's incident is traced to an earlier change on the same CI.
INCIDENT_LOOKBACK = timedelta(days=30)
# The compliance states that are a verdict (opskit.compliance.results.State).
JUDGED = frozenset({"compliant", "non-compliant"})


def buckets(period: Period, by: str) -> list[Period]:
    """The calendar months or ISO weeks (Monday 00:00 UTC) that overlap `period`."""
    start = period.since.astimezone(UTC)
    if by == "week":
        first = (start - timedelta(days=start.weekday())).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        step: Callable[[datetime], datetime] = lambda moment: moment + timedelta(days=7)  # noqa: E731
    else:
        first = start.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        step = _next_month
    out = []
    moment = first
    while moment < period.until:
        following = step(moment)
        out.append(Period(max(moment, period.since), min(following, period.until)))
        moment = following
    return out


def _next_month(moment: datetime) -> datetime:
    return moment.replace(year=moment.year + moment.month // 12, month=moment.month % 12 + 1)


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile: the smallest value with at least `share` of
    the values at or below it (p90 of 10 values is the 9th smallest)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def incident_links(records: Iterable[ChangeRecord]) -> list[dict[str, Any]]:
    """Earlier changes a later change ties to an incident: the later change
    names an incident ticket and targets a CI the earlier one changed
    (completed) within `INCIDENT_LOOKBACK` before it was requested."""
    ordered = sorted(records, key=lambda r: r.created)
    links = []
    for later in ordered:
        incidents = [t for t in later.tickets if INCIDENT_TICKET.match(t)]
        if not incidents:
            continue
        for earlier in reversed(ordered):
            if earlier is later or earlier.finished is None or earlier.outcome != "completed":
                continue
            if not later.created - INCIDENT_LOOKBACK <= earlier.finished <= later.created:
                continue
            shared = sorted(set(earlier.targets) & set(later.targets))
            if shared:
                links.append(
                    {
                        "change": earlier.id,
                        "linked_by": later.id,
                        "incidents": incidents,
                        "cis": shared,
                        "at": earlier.finished.isoformat(),
                    }
                )
                break  # the most recent earlier change on those CIs
    return links


def _rate(numerator: int, denominator: int) -> dict[str, Any]:
    value = round(100.0 * numerator / denominator, 1) if denominator else None
    return {"value": value, "numerator": numerator, "denominator": denominator}


def _times(samples: list[float]) -> dict[str, Any]:
    hours = [s / 3600 for s in samples]
    if not hours:
        return {"value": None, "median": None, "p90": None, "samples": 0}
    p90 = round(percentile(hours, 0.9), 6)
    return {
        "value": p90,
        "median": round(statistics.median(hours), 6),
        "p90": p90,
        "samples": len(hours),
    }


def figures_for(
    records: list[ChangeRecord],
    period: Period,
    links: list[dict[str, Any]],
    compliance: list[bool],
    cmdb: tuple[int, int] | None,
) -> dict[str, dict[str, Any]]:
    """Every figure over `period` (before targets are applied)."""
    ran = [r for r in records if period.contains(r.started) and r.outcome]
    created = [r for r in records if period.contains(r.created)]
    failed = [r for r in ran if r.outcome in FAILED_OUTCOMES]
    linked = [link for link in links if period.contains(datetime.fromisoformat(link["at"]))]
    rolled = [r for r in ran if r.rolled_back_hosts or r.outcome in _ROLLED_BACK]
    approved = [r for r in records if period.contains(r.approved) and r.submitted]
    finished = [r for r in records if period.contains(r.finished) and r.started]
    out = {
        "change_success_rate": _rate(sum(1 for r in ran if r.outcome == "completed"), len(ran)),
        "changes_caused_failures": {
            "value": len(failed) + len({link["change"] for link in linked}),
            "failed": [r.id for r in failed],
            "incident_links": linked,
            "denominator": len(ran),
        },
        "rollback_rate": _rate(len(rolled), len(ran)),
        "emergency_share": _rate(sum(1 for r in created if r.type == "emergency"), len(created)),
        "approval_lead_time": _times(
            [(r.approved - r.submitted).total_seconds() for r in approved]  # type: ignore[operator]
        ),
        "time_to_implement": _times([r.duration_s or 0.0 for r in finished]),
        "compliance_rate": _rate(sum(compliance), len(compliance)),
        "cmdb_accuracy": _rate(*cmdb) if cmdb else _rate(0, 0),
    }
    for key, figure in out.items():
        unit, direction = FIGURES[key]
        figure.update(key=key, unit=unit, direction=direction)
        figure["measured"] = figure["value"] is not None
    return out


_ROLLED_BACK = frozenset({"rolled_back", "partially_rolled_back"})


def mark(figure: dict[str, Any], target: float | None) -> dict[str, Any]:
    """`figure` with its target and whether it met it (None: no target or no value)."""
    figure["target"] = target
    if target is None or figure["value"] is None:
        figure["met"] = None
    elif figure["direction"] == "min":
        figure["met"] = figure["value"] >= target
    else:
        figure["met"] = figure["value"] <= target
    return figure


@dataclass(frozen=True)
class FeatureVerdict:
    """A CI's feature as a compliance run judged it, and the record that says so."""

    compliant: bool
    reason: str
    seq: int
    at: datetime


def feature_results(source: Source, period: Period) -> dict[tuple[str, str], FeatureVerdict]:
    """The latest known state of each (CI, feature) in `period`, from the
    ledger's `compliance.result` events (one per CI and run, its per-feature
    results under ``features``: `opskit.compliance.runs.result_payload`),
    kept when it is a verdict. As in `opskit.compliance.accuracy`, an
    ``unknown`` result (device unreachable) does not replace a known state,
    but a later ``not-applicable`` does: the feature no longer counts."""
    latest: dict[tuple[str, str], tuple[str, FeatureVerdict]] = {}
    for event in source.events():
        if event.kind != "compliance.result" or not period.contains(event.at):
            continue
        ci = event.ci or str(event.payload.get("ci") or "")
        for feature in event.payload.get("features") or []:
            state = str(feature.get("state") or "unknown")
            if state != "unknown":
                verdict = FeatureVerdict(
                    state == "compliant", _reason(feature), event.seq, event.at
                )
                latest[(ci, str(feature.get("feature") or ""))] = (state, verdict)
    return {key: verdict for key, (state, verdict) in latest.items() if state in JUDGED}


def _reason(feature: dict[str, Any]) -> str:
    missing, extra = feature.get("missing") or [], feature.get("extra") or []
    if feature.get("reason"):
        return str(feature["reason"])
    parts = [f"{len(missing)} missing"] if missing else []
    parts += [f"{len(extra)} extra"] if extra else []
    return ", ".join(parts)


def ci_verdicts(results: dict[tuple[str, str], FeatureVerdict]) -> dict[str, bool]:
    """Per CI with a judged feature: compliant when none of its features is
    non-compliant (the CI-level rate of `FleetCompliance.rate()`)."""
    verdicts: dict[str, bool] = {}
    for (ci, _feature), verdict in results.items():
        verdicts[ci] = verdicts.get(ci, True) and verdict.compliant
    return verdicts


def compliance_results(source: Source, period: Period) -> list[bool]:
    """One bool per CI judged in `period`: compliant on its latest verdicts."""
    return list(ci_verdicts(feature_results(source, period)).values())


def cmdb_accuracy(source: Source) -> tuple[int, int] | None:
    """(CIs whose declared state matches the latest observation, CIs observed)
    now; None when no CI of the default inventory was ever observed."""
    from opskit.errors import OpskitError
    from opskit.inventory import load_workspace_inventory
    from opskit.inventory.observed import ObservedStore, drift_report

    try:
        inventory = load_workspace_inventory(source.ws)
        report = drift_report(inventory, ObservedStore(source.ws.engine))
    except OpskitError:
        return None
    if not report.observed:
        return None
    drifting = {item.ci for item in report.items}
    return sum(1 for ci in report.observed if ci not in drifting), len(report.observed)


def kpi_data(
    source: Source,
    period: Period,
    *,
    by: str = "month",
    targets: dict[str, float | None] | None = None,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The KPI report of `period`, with its trend per month or week."""
    targets = targets or {}
    records = list(source.changes().values())
    links = incident_links(records)
    cmdb = cmdb_accuracy(source)
    whole = figures_for(records, period, links, compliance_results(source, period), cmdb)
    for key, figure in whole.items():
        mark(figure, targets.get(key))
    trend = []
    for bucket in buckets(period, by):
        figures = figures_for(records, bucket, links, compliance_results(source, bucket), None)
        figures.pop("cmdb_accuracy")  # a snapshot of now, not a series
        for key, figure in figures.items():
            mark(figure, targets.get(key))
        trend.append({**bucket.to_dict(), "figures": figures})
    rows = [_row("period", period, whole)] + [
        _row(by, Period.from_dict(entry), entry["figures"]) for entry in trend
    ]
    data = {
        "by": by,
        "figures": whole,
        "trend": trend,
        "per_week": outcomes_per_week(records, period),
        "changes": sum(1 for r in records if period.contains(r.created)),
    }
    return data, rows


def _row(scope: str, period: Period, figures: dict[str, Any]) -> dict[str, Any]:
    row: dict[str, Any] = {"scope": scope, **period.to_dict()}
    for key, figure in figures.items():
        row[key] = figure["value"]
        row[f"{key}_target"] = figure.get("target")
        row[f"{key}_met"] = figure.get("met")
        if figure["unit"] == "hours":
            row[f"{key}_median"] = figure["median"]
    return row


def outcomes_per_week(records: list[ChangeRecord], period: Period) -> list[dict[str, Any]]:
    """Per ISO week of `period`: changes requested, by outcome (for the chart)."""
    weeks = []
    for week in buckets(period, "week"):
        counts = {"completed": 0, "failed": 0, "rolled_back": 0, "not_run": 0}
        for record in records:
            if week.contains(record.created):
                outcome = record.outcome or "not_run"
                key = "rolled_back" if outcome in _ROLLED_BACK else outcome
                counts[key] = counts.get(key, 0) + 1
        weeks.append({**week.to_dict(), "counts": counts})
    return weeks
