"""Remediation is a change: the lines of the latest compliance results,
pushed through the change process.

`remediation_plans(ledger, inventory, select, features)` reads, per selected
CI and feature, the latest recorded result that is not ``unknown``; every
``non-compliant`` feature with remediation lines contributes them, in
feature order: the lines to push are exactly the recorded remediation, the
lines that must then be present are the feature's ``missing`` lines and
those that must be gone its ``extra`` ones (the change's verification).
`remediate(svc, ...)` creates the change (`opskit.backups.linechange`,
runbook ``config-lines``): a normal change by default, assessed (its
predicted diff is what these lines do to the device now, and the approval
binds to it: if the device drifts before apply, apply is refused until the
change is assessed again), approved as the policy's rule for its risk
requires (the author may not approve their own remediation: four-eyes),
applied with a pre-change snapshot, verified, rolled back with proof when
the verification fails, and evaluated again afterwards
(`opskit.compliance.after`).

A feature whose non-compliance no line can fix (a regular expression that
names no line to send, a structured check) is listed in ``unfixable`` and
left out.

Example:
    >>> plans, unfixable = remediation_plans(ledger, inventory, "name:lab-sw01", ["vlans"])
    >>> plans[0].lines
    ['vlan 10', '  name users', '  exit']
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from opskit.backups.linechange import (
    HIGH_RISK_RUNBOOK,
    RUNBOOK,
    HostLines,
    create_line_change,
)
from opskit.compliance.history import result_events
from opskit.compliance.results import State
from opskit.errors import ChangeError

if TYPE_CHECKING:
    from opskit.changes import ChangeRequest, ChangeService
    from opskit.inventory import Inventory
    from opskit.ledger.core import Ledger


@dataclass
class RemediationPlan:
    """Per host the lines to push, and what could not be fixed (and why)."""

    hosts: list[HostLines] = field(default_factory=list)
    features: dict[str, list[str]] = field(default_factory=dict)  # ci -> features fixed
    results: dict[str, list[int]] = field(default_factory=dict)  # ci -> result seqs used
    unfixable: list[str] = field(default_factory=list)

    def purpose(self) -> dict[str, Any]:
        return {"remediation": {"features": self.features, "results": self.results}}


def latest_feature_results(ledger: Ledger, ci: str) -> dict[str, tuple[dict[str, Any], int]]:
    """Per feature of `ci`: its latest recorded result that is not unknown,
    with the result's ledger seq."""
    latest: dict[str, tuple[dict[str, Any], int]] = {}
    for event in result_events(ledger, ci):
        for item in event.payload.get("features") or []:
            if item.get("state") != State.UNKNOWN:
                latest[str(item.get("feature"))] = (item, event.seq)
    return latest


def remediation_plans(
    ledger: Ledger, inventory: Inventory, select: str, features: Sequence[str] = ()
) -> RemediationPlan:
    """What a remediation of the selected CIs pushes (see the module docstring)."""
    plan = RemediationPlan()
    cis = inventory.select(select)
    if not cis:
        raise ChangeError(f"selection {select!r} matches no CI")
    for ci in cis:
        latest = latest_feature_results(ledger, ci.name)
        if not latest:
            plan.unfixable.append(f"{ci.name}: no compliance result (opskit compliance run)")
            continue
        host = HostLines(ci.name, [])
        for name, (item, seq) in latest.items():
            if features and name not in features:
                continue
            if item.get("state") != State.NON_COMPLIANT:
                continue
            if not item.get("remediation"):
                why = item.get("reason") or "no line to send"
                plan.unfixable.append(f"{ci.name} {name}: {why}")
                continue
            host.lines += item["remediation"]
            host.present += item.get("missing") or []
            host.absent += item.get("extra") or []
            plan.features.setdefault(ci.name, []).append(name)
            plan.results.setdefault(ci.name, []).append(seq)
        if host.lines:
            plan.results[ci.name] = sorted(set(plan.results[ci.name]))
            plan.hosts.append(host)
    return plan


def remediate(
    svc: ChangeService,
    *,
    select: str,
    requester: str,
    title: str,
    features: Sequence[str] = (),
    inventory: str | None = None,
    change_type: str | None = None,
    tickets: Sequence[str] = (),
) -> tuple[ChangeRequest, RemediationPlan]:
    """Creates (draft) the remediation change; ChangeError when nothing
    selected is non-compliant with lines to fix it. The change type is
    `change_type`, else the policy's ``compliance.remediation_type``; a
    remediation touching one of the policy's
    ``compliance.high_risk_features`` uses the high-risk runbook."""
    from opskit.inventory import load_workspace_inventory

    inv = load_workspace_inventory(svc.ws, inventory or svc.context.policy.inventory)
    plan = remediation_plans(svc.context.ledger, inv, select, features)
    if not plan.hosts:
        detail = "; ".join(plan.unfixable[:5])
        raise ChangeError(
            "nothing to remediate: no selected CI has a non-compliant feature with "
            f"remediation lines{f' ({detail})' if detail else ''}"
        )
    touched = sorted({f for names in plan.features.values() for f in names})
    settings = svc.context.policy.compliance
    high = sorted(set(touched) & set(settings.high_risk_features))
    change = create_line_change(
        svc,
        requester=requester,
        title=title,
        plans=plan.hosts,
        inventory=inventory,
        description=(
            f"Compliance remediation of feature(s) {', '.join(touched)} on "
            f"{len(plan.hosts)} CI(s): the lines are the recorded remediation of the latest "
            "compliance results (ledger records in the parameters' purpose)."
        ),
        purpose={**plan.purpose(), "high_risk_features": high},
        change_type=change_type or settings.remediation_type,
        tickets=tickets,
        runbook=HIGH_RISK_RUNBOOK if high else RUNBOOK,
    )
    return change, plan


__all__ = ["RemediationPlan", "latest_feature_results", "remediate", "remediation_plans"]
