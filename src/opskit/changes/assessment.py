"""Assessing a change: the targets its selection resolves to, its impact
through the CMDB, the predicted diff per host, its risk, and the approvals
the policy requires for it. A pre-approved standard change is approved by
the policy at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opskit.changes import rules
from opskit.changes.context import EngineContext, impact_of, select_names
from opskit.changes.model import ChangeRequest, State, binding_hash
from opskit.changes.prediction import predict_diffs
from opskit.changes.risk import assess_risk
from opskit.changes.rules import APPROVER_ROLES
from opskit.changes.runners import runner_queue_problems
from opskit.connectors import get_connector
from opskit.errors import ChangeError
from opskit.inventory.core import Inventory
from opskit.policy import Risk

if TYPE_CHECKING:
    from opskit.runbooks.model import Runbook

# Capabilities whose absence on a target makes a change riskier.
DESIRABLE_CAPABILITIES = ("native_rollback", "dry_run_diff")


def assess(
    ctx: EngineContext, change_id: str, actor: str, *, predict: bool = True
) -> ChangeRequest:
    """Moves the change to `assessed` with its impact, risk, required
    approvals and predicted diff, bound to the runbook, targets and inventory
    as they are now; then to `approved` when the policy requires no approval."""
    change = ctx.store.get(change_id)
    ctx.journal.check_state(change, State.ASSESSED, actor)
    if actor != change.requester:
        ctx.journal.require_role(actor, APPROVER_ROLES, "assess", change_id)
    book = ctx.catalog.get(change.runbook_ref)
    inv = ctx.inventory(change.inventory)
    targets = resolve_targets(inv, change.selection, book)
    parameters = book.validate_params(change.parameters)
    # Before anything else: a change that cannot render is never assessed.
    from opskit.runbooks.rendercheck import render_check, render_refusal

    problems = render_check(book, [inv.get(n) for n in targets], parameters)
    if problems:
        ctx.journal.refuse(change.id, actor, "assess", render_refusal(problems))
    unplaced = runner_queue_problems(ctx.runner, [inv.get(n) for n in targets])
    if unplaced:  # a distributed runner's queue mapping misses a CI
        ctx.journal.refuse(change.id, actor, "assess", "; ".join(unplaced))
    impact = impact_of(inv, targets)
    predicted = predict_diffs(book, [inv.get(n) for n in targets], parameters) if predict else {}
    risk = risk_of(ctx, book, inv, targets, impact)
    required = rules.required_approvals(
        ctx.policy,
        change_type=change.type,
        risk=Risk(risk["level"]),
        runbook=book,
        requester=change.requester,
    )
    problem = rules.quorum_problem(required, change.requester)
    if problem:
        ctx.journal.refuse(change.id, actor, "assess", problem)
    values = {
        "runbook_digest": book.digest,
        "targets": targets,
        "inventory_digest": inv.digest,
        "parameters": parameters,
        "impact": impact,
        "predicted_diff": predicted,
        "risk": risk,
        "assessment": {
            "required": required,
            "assessed_by": actor,
            "at": ctx.clock().isoformat(),
        },
    }
    ctx.journal.transition(
        change,
        State.ASSESSED,
        actor=actor,
        payload={
            "risk": risk,
            "impact": impact,
            "required_approvals": required,
            "runbook_digest": book.digest,
            "targets": targets,
            "inventory_digest": values["inventory_digest"],
            "predicted_diff": predicted,
        },
        values=values,
    )
    changed = ctx.store.get(change_id)
    if required["count"] == 0:
        # A pre-approved standard change: approved by the policy itself.
        ctx.journal.transition(
            changed,
            State.APPROVED,
            actor=actor,
            payload={
                "by": "policy",
                "reason": required["reason"],
                "binding_hash": binding_hash(changed.binding_document()),
            },
        )
        changed = ctx.store.get(change_id)
    return changed


def resolve_targets(inv: Inventory, select_expr: str, book: Runbook) -> list[str]:
    """The CIs `select_expr` selects (ChangeError: none, or some on a
    platform the runbook does not support)."""
    names = select_names(inv, select_expr)
    if not names:
        raise ChangeError(f"selection {select_expr!r} matches no CI")
    platforms = _runbook_platforms(book)
    if platforms:
        unsupported = [n for n in names if inv.get(n).platform not in platforms]
        if unsupported:
            raise ChangeError(
                f"runbook {book.name}@{book.version} supports {', '.join(sorted(platforms))}; "
                f"not {', '.join(unsupported[:5])}"
            )
    return names


def risk_of(
    ctx: EngineContext,
    book: Runbook,
    inv: Inventory,
    targets: list[str],
    impact: dict[str, Any],
) -> dict[str, Any]:
    """The change's risk score (see `opskit.changes.risk`), as recorded."""
    criticality = {n: str(inv.get(n).criticality) for n in targets}
    missing: dict[str, list[str]] = {}
    connectors = {str(name) for name in book.connectors()}
    for name in targets:
        ci = inv.get(name)
        have: set[str] = set()
        for connector in connectors:
            have |= connector_capabilities(connector, ci.platform)
        needed = [c for c in DESIRABLE_CAPABILITIES if c not in have]
        if needed and book.rollback == "auto":
            missing[name] = needed
    score = assess_risk(
        target_criticality=criticality,
        dependants=len(impact["dependants"]),
        runbook_risk=str(book.risk),
        missing_capabilities=missing,
        history=ctx.store.runbook_history(book.name, str(book.version)),
    )
    return score.to_dict()


def connector_capabilities(connector_name: str, platform: str) -> frozenset[str]:
    """What `connector_name` can do on `platform` (none for a connector that
    cannot be loaded: the risk assessment counts its capabilities as missing)."""
    try:
        cls = get_connector(connector_name)
    except Exception:
        return frozenset()
    return frozenset(str(c) for c in cls.capabilities_for(platform))


def _runbook_platforms(book: Runbook) -> set[str]:
    return {str(p) for p in book.targets.platforms}
