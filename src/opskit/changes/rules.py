"""The change process's approval rules, as pure functions.

Each takes the change, the policy and (where time matters) the moment, plus
whatever the caller has read for it (the binding as it would run now, the
locks other changes hold), and returns a decision with its reasons. None of
them reads a database or a file, or writes anything: `ChangeService` reads,
decides with these, and records.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from opskit.changes.hints import not_approved_reason
from opskit.changes.model import ChangeRequest, ChangeType, State, binding_hash
from opskit.changes.signing import verify_signature
from opskit.errors import ChangeError
from opskit.policy import (
    ApprovalRule,
    Policy,
    Risk,
    Role,
    StandardChange,
    active_freezes,
    open_window,
    people_with,
)

if TYPE_CHECKING:
    from opskit.runbooks.model import Runbook

# Roles that assess, approve and reject changes.
APPROVER_ROLES = frozenset({Role.CHANGE_MANAGER, Role.CAB, Role.GOVERNANCE})


# -- approvals ---------------------------------------------------------------
def valid_approvals(change: ChangeRequest) -> list[dict[str, Any]]:
    """Approvals that bind to the change as it is now."""
    current = binding_hash(change.binding_document())
    return [a for a in change.approvals if a["kind"] == "approval" and a["binding_hash"] == current]


def valid_approvers(change: ChangeRequest) -> list[str]:
    return sorted({a["approver"] for a in valid_approvals(change)})


def requirement_met(
    change: ChangeRequest, policy: Policy, roles: set[Role], count: int
) -> tuple[bool, list[str]]:
    """Whether `count` distinct people holding one of `roles` (not the
    requester) gave a valid approval, and who did."""
    people = [
        a["approver"]
        for a in valid_approvals(change)
        if a["approver"] != change.requester and policy.roles_of(a["approver"]) & roles
    ]
    distinct = sorted(set(people))
    return len(distinct) >= count, distinct


def public_key(policy: Policy, person: str) -> str | None:
    entry = policy.people.get(person)
    return entry.signing_key if entry else None


def freeze_override_roles(policy: Policy) -> set[Role]:
    """Roles that may approve an emergency change through some freeze."""
    roles: set[Role] = set()
    for freeze in policy.freezes:
        if freeze.emergency_override:
            roles |= set(freeze.emergency_override.roles)
    return roles


def standard_entry(policy: Policy, runbook: Runbook) -> StandardChange | None:
    """The policy's pre-approval of exactly this runbook version and digest."""
    return next(
        (
            s
            for s in policy.standard_changes
            if s.runbook == runbook.name
            and s.version == str(runbook.version)
            and s.digest == runbook.digest
        ),
        None,
    )


def rule_dict(rule: ApprovalRule, policy: Policy, requester: str | None = None) -> dict[str, Any]:
    """The rule as recorded: its roles, count and who may approve (never
    the requester: four-eyes)."""
    return {
        "roles": [str(r) for r in rule.roles],
        "count": rule.count,
        "eligible": [p for p in people_with(policy, rule.roles) if p != requester],
    }


def quorum_problem(required: dict[str, Any], requester: str) -> str | None:
    """Why `required` (from `required_approvals` with this requester) can
    never be met, the requester's own roles not counting (four-eyes); None
    when enough other people hold the roles."""
    count, eligible = int(required.get("count", 0)), list(required.get("eligible", []))
    if count <= len(eligible):
        return None
    roles = " or ".join(required.get("roles", [])) or "no role"
    who = f" ({', '.join(eligible)})" if eligible else ""
    return (
        f"it needs {count} approval(s) by {roles}, but only {len(eligible)} person(s) other "
        f"than the requester {requester} hold that role{who}: the quorum can never be "
        "reached, since a requester cannot approve their own change (four-eyes)"
    )


def required_approvals(
    policy: Policy,
    *,
    change_type: ChangeType,
    risk: Risk,
    runbook: Runbook,
    requester: str | None = None,
) -> dict[str, Any]:
    """Which approvals the policy requires, and why (ChangeError: a standard
    change whose runbook the policy does not pre-approve). With `requester`,
    the eligible approvers leave them out (four-eyes: see `quorum_problem`)."""
    rules = policy.approvals
    retrospective = None
    if change_type is ChangeType.STANDARD:
        pre = standard_entry(policy, runbook)
        if pre is None or not runbook.standard:
            raise ChangeError(
                f"runbook {runbook.name}@{runbook.version} ({runbook.digest}) is not a "
                "pre-approved standard change in the policy; file it as normal"
            )
        rule = rules.standard
        reason = f"standard change: {runbook.name}@{runbook.version} is pre-approved by digest"
        if rule is None:
            return {
                "rule": "standard",
                "roles": [],
                "count": 0,
                "eligible": [],
                "reason": reason,
                "retrospective": None,
            }
        reason += f"; the policy still asks {rule.count} of {', '.join(rule.roles)} to say go"
        name = "standard"
    elif change_type is ChangeType.EMERGENCY:
        rule = rules.emergency
        retrospective = rule_dict(rules.emergency.retrospective, policy, requester)
        reason = (
            f"emergency change: {rule.count} emergency approval(s) by "
            f"{', '.join(rule.roles)} now, and a retrospective review by "
            f"{', '.join(rules.emergency.retrospective.roles)} before closing"
        )
        name = "emergency"
    else:
        rule = getattr(rules, risk.value)
        reason = f"{risk} risk: {rule.count} approval(s) by {', '.join(rule.roles)}"
        name = risk.value
    if risk is Risk.HIGH:
        reason += "; high risk: the implementer may not be an approver"
    data = rule_dict(rule, policy, requester)
    return {"rule": name, **data, "reason": reason, "retrospective": retrospective}


# -- the binding -------------------------------------------------------------
@dataclass(frozen=True)
class CurrentBinding:
    """What the change would run now, as the caller read it: the runbook's
    digest, the inventory's digest, and the targets its selection resolves
    to (or why it no longer resolves)."""

    runbook_digest: str
    inventory_digest: str
    targets: list[str]
    selection_problem: str | None = None


def approval_bindings(change: ChangeRequest) -> list[dict[str, Any]]:
    """Binding documents of the approvals that made the change approved."""
    if change.state not in (State.APPROVED, State.SCHEDULED) and change.state is not State.ASSESSED:
        return []
    valid = valid_approvals(change)
    if valid:
        return [a["binding"] for a in valid]
    # Approved with no valid approval: the record itself changed, or a
    # pre-approved standard change (bound at assessment).
    docs = [a["binding"] for a in change.approvals if a["kind"] == "approval"]
    if docs:
        return docs[-1:]
    return [change.binding_document()]


def binding_drift(
    change: ChangeRequest,
    approved: dict[str, Any],
    current: CurrentBinding,
    *,
    predicted: dict[str, Any] | None = None,
) -> list[str]:
    """What differs between `approved` (a binding document) and the change
    as it would run now (`current`, and the `predicted` diffs when given)."""
    drift: list[str] = []
    if current.runbook_digest != approved["runbook"]["digest"]:
        drift.append(
            f"runbook {change.runbook_ref} digest is now {current.runbook_digest[:19]}…, "
            f"approved {approved['runbook']['digest'][:19]}…"
        )
    if current.inventory_digest != approved["inventory_digest"]:
        drift.append("the inventory changed")
    if current.selection_problem is not None:
        drift.append(f"the selection no longer resolves: {current.selection_problem}")
    targets = current.targets
    if sorted(targets) != approved["targets"]:
        added = sorted(set(targets) - set(approved["targets"]))
        removed = sorted(set(approved["targets"]) - set(targets))
        drift.append(f"the targets changed (added {added or '-'}, removed {removed or '-'})")
    if change.parameters != approved["parameters"]:
        drift.append("the parameters changed")
    document = change.binding_document()
    record_differs = (
        document["targets"] != approved["targets"] or document["runbook"] != approved["runbook"]
    )
    if record_differs and not any("targets" in d or "runbook" in d for d in drift):
        drift.append("the change record differs from what was approved")
    if predicted is not None:
        now_diffs = {h: (e or {}).get("hash") for h, e in predicted.items()}
        if now_diffs != approved["predicted_diff"]:
            hosts = sorted(
                h
                for h in set(now_diffs) | set(approved["predicted_diff"])
                if now_diffs.get(h) != approved["predicted_diff"].get(h)
            )
            drift.append(f"the predicted diff changed on {', '.join(hosts[:5])}")
    return drift


def stale_reason(drift: list[str]) -> str:
    """The refusal for a change whose binding drifted."""
    return (
        "what was approved has changed since ("
        + "; ".join(drift)
        + "): assess and approve it again"
    )


# -- apply -------------------------------------------------------------------
def apply_blockers(
    change: ChangeRequest,
    policy: Policy,
    now: datetime,
    *,
    actor: str,
    drift: list[str],
    held: dict[str, str],
) -> list[str]:
    """Every reason the change may not be applied at `now` by `actor` (empty:
    go). `drift`: `binding_drift`'s findings; `held`: the change's CIs locked
    by other changes (ci -> change id)."""
    if change.state not in (State.APPROVED, State.SCHEDULED):
        return [not_approved_reason(change, now)]
    reasons: list[str] = []
    if Role.IMPLEMENTER not in policy.roles_of(actor):
        reasons.append(f"{actor} is not an implementer in the policy")
    if drift:
        # The binding: what was approved must be what would run now.
        reasons.append(stale_reason(drift))
    else:
        reasons += _approval_blockers(change, policy, actor)
    reasons += _time_blockers(change, policy, now)
    if held:
        reasons.append(
            "CIs held by other changes: "
            + ", ".join(f"{ci} ({holder})" for ci, holder in sorted(held.items())[:10])
        )
    return reasons


def _approval_blockers(change: ChangeRequest, policy: Policy, actor: str) -> list[str]:
    required = (change.assessment or {}).get("required") or {}
    if required.get("count", 0) <= 0:
        return []
    reasons: list[str] = []
    rule_roles = {Role(r) for r in required["roles"]}
    met, approvers = requirement_met(change, policy, rule_roles, int(required["count"]))
    if not met:
        reasons.append(
            f"it needs {required['count']} approval(s) by {', '.join(required['roles'])}; "
            f"valid approvals: {', '.join(approvers) or 'none'}"
        )
    risk = (change.risk or {}).get("level")
    if risk == Risk.HIGH.value and actor in valid_approvers(change):
        reasons.append(
            f"{actor} approved this high-risk change and may not implement it (four-eyes)"
        )
    if policy.require_signed_approvals:
        for approval in valid_approvals(change):
            key = public_key(policy, approval["approver"])
            if not (
                key
                and approval["signature"]
                and verify_signature(key, approval["binding"], approval["signature"])
            ):
                reasons.append(f"the approval by {approval['approver']} has no valid signature")
    return reasons


def _time_blockers(change: ChangeRequest, policy: Policy, now: datetime) -> list[str]:
    """The change's own window, the policy's change windows and its freezes."""
    reasons: list[str] = []
    if change.window_start and now < change.window_start:
        reasons.append(
            f"its window opens at {change.window_start.isoformat()} "
            f"(now {now.isoformat(timespec='seconds')})"
        )
    if change.window_end and now >= change.window_end:
        reasons.append(
            f"its window closed at {change.window_end.isoformat()} "
            f"(now {now.isoformat(timespec='seconds')})"
        )
    if (
        change.type is not ChangeType.EMERGENCY
        and policy.windows
        and open_window(policy, now) is None
    ):
        names = ", ".join(w.name for w in policy.windows)
        reasons.append(f"outside every change window of the policy ({names})")
    for freeze in active_freezes(policy, now):
        if change.type is ChangeType.EMERGENCY and freeze.emergency_override:
            override = freeze.emergency_override
            ok, who = requirement_met(change, policy, set(override.roles), override.count)
            if ok:
                continue
            reasons.append(
                f"freeze {freeze.name} is in force; an emergency override needs "
                f"{override.count} approval(s) by {', '.join(override.roles)} "
                f"(have: {', '.join(who) or 'none'})"
            )
        else:
            why = f" ({freeze.reason})" if freeze.reason else ""
            reasons.append(f"freeze {freeze.name} is in force until {freeze.end.isoformat()}{why}")
    return reasons
