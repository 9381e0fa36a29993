"""How far a change's approvals are: who approved, how many more are needed
and from which roles (what `approve` reports after each vote)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from opskit.changes.model import ChangeRequest
from opskit.policy import Policy, Role


def approval_progress(
    change: ChangeRequest, policy: Policy, actor: str, valid_approvers: Iterable[str]
) -> dict[str, Any]:
    """After `actor`'s approval: the approvals that count now (valid for the
    current binding, not the requester's, by someone holding a required
    role), how many more are needed, from which roles, and who could give them."""
    required = (change.assessment or {}).get("required") or {}
    roles = [str(r) for r in required.get("roles", [])]
    wanted = {Role(r) for r in roles}
    count = int(required.get("count", 1))
    counted = sorted(
        person
        for person in set(valid_approvers)
        if person != change.requester and policy.roles_of(person) & wanted
    )
    remaining = max(0, count - len(counted))
    eligible = [
        person
        for person in required.get("eligible", [])
        if person not in counted and person != change.requester
    ]
    progress = {
        "approved_by": actor,
        "approver_roles": sorted(str(r) for r in policy.roles_of(actor)),
        "counted": counted,
        "required": count,
        "roles": roles,
        "remaining": remaining,
        "eligible": eligible,
    }
    progress["summary"] = describe(progress)
    return progress


def describe(progress: dict[str, Any]) -> str:
    """One line: "approved by alice (cab); 1 more needed: 1 of role change_manager"."""
    head = f"approved by {progress['approved_by']} ({', '.join(progress['approver_roles'])})"
    if progress["remaining"] == 0:
        return f"{head}; {len(progress['counted'])} of {progress['required']} required: approved"
    roles = " or ".join(progress["roles"]) or "nobody"
    who = f" (eligible: {', '.join(progress['eligible'])})" if progress["eligible"] else ""
    return (
        f"{head}; {progress['remaining']} more needed: {progress['remaining']} of role {roles}{who}"
    )
