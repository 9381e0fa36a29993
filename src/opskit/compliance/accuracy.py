"""Two service figures from the records: CMDB accuracy and compliance rate.

- `cmdb_accuracy(inventory, store, select=None)`: the share of CIs whose
  declared state matches their latest observation (`opskit.inventory.observed`:
  a CI with no drift item), over the CIs that were ever observed (a CI
  never observed cannot be judged and is counted apart).
- `compliance_rates(ledger, cis=None)`: from each CI's latest known result
  per feature (``compliance.result`` events; ``unknown`` results do not
  replace a known state), the compliant share per feature and overall
  (per CI: compliant when none of its features is non-compliant), over
  what was judged (compliant or non-compliant).

Both return plain dictionaries for the reports. A rate is None when
nothing could be judged; ``"0.75"``-style text is never used here: rates
are floats for the reader (the ledger is not written).

Example:
    >>> cmdb_accuracy(inventory, ObservedStore(ws.engine))
    {'observed': 40, 'accurate': 38, 'unobserved': 2, 'accuracy': 0.95, 'drifted': [...]}
    >>> compliance_rates(ledger)
    {'cis': 4, 'judged': 4, 'compliant': 3, 'rate': 0.75,
     'features': {'vlans': {'compliant': 3, 'non-compliant': 1, 'rate': 0.75}, ...}}
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from opskit.compliance.results import State
from opskit.compliance.runs import RESULT_KIND

if TYPE_CHECKING:
    from opskit.inventory import Inventory
    from opskit.inventory.observed import ObservedStore
    from opskit.ledger.core import Ledger


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def cmdb_accuracy(
    inventory: Inventory, store: ObservedStore, select: str | None = None
) -> dict[str, Any]:
    """How many observed CIs match their CMDB record (see the module docstring)."""
    from opskit.inventory.observed import drift_report

    report = drift_report(inventory, store, select)
    drifted = sorted({item.ci for item in report.items})
    observed = len(report.observed)
    return {
        "observed": observed,
        "accurate": observed - len(drifted),
        "unobserved": len(report.unobserved),
        "accuracy": _share(observed - len(drifted), observed),
        "drifted": drifted,
    }


def latest_states(ledger: Ledger, cis: Iterable[str] | None = None) -> dict[str, dict[str, str]]:
    """Per CI, per feature: the latest known (not unknown) state."""
    wanted = None if cis is None else set(cis)
    states: dict[str, dict[str, str]] = {}
    for event in ledger.events(kind=RESULT_KIND):
        if not event.ci or (wanted is not None and event.ci not in wanted):
            continue
        for item in event.payload.get("features") or []:
            if item.get("state") != State.UNKNOWN:
                states.setdefault(event.ci, {})[str(item.get("feature"))] = str(item.get("state"))
    return states


def compliance_rates(ledger: Ledger, cis: Iterable[str] | None = None) -> dict[str, Any]:
    """The compliance rate per feature and overall (see the module docstring)."""
    states = latest_states(ledger, cis)
    features: dict[str, dict[str, Any]] = {}
    judged = compliant = 0
    for per_feature in states.values():
        values = set(per_feature.values())
        if values & {State.COMPLIANT, State.NON_COMPLIANT}:
            judged += 1
            compliant += State.NON_COMPLIANT not in values
        for name, state in per_feature.items():
            entry = features.setdefault(name, {State.COMPLIANT: 0, State.NON_COMPLIANT: 0})
            if state in entry:
                entry[state] += 1
    for entry in features.values():
        entry["rate"] = _share(
            entry[State.COMPLIANT], entry[State.COMPLIANT] + entry[State.NON_COMPLIANT]
        )
    return {
        "cis": len(states),
        "judged": judged,
        "compliant": compliant,
        "rate": _share(compliant, judged),
        "features": {
            name: {str(k): v for k, v in entry.items()} for name, entry in sorted(features.items())
        },
    }


__all__ = ["cmdb_accuracy", "compliance_rates", "latest_states"]
