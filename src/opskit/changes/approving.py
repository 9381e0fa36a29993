"""Approving a change: approvals (roles, four-eyes, quorum, signatures, each
bound to the change's binding document), rejections and the retrospective
review of an emergency change. Each approval row is written with its ledger
event, in one transaction (`Journal.guard`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlalchemy import Insert, insert, update

from opskit.changes import rules
from opskit.changes import store as tables
from opskit.changes.approvals import approval_progress
from opskit.changes.context import EngineContext
from opskit.changes.model import FINISHED_STATES, ChangeRequest, ChangeType, State, binding_hash
from opskit.changes.rules import APPROVER_ROLES
from opskit.changes.signing import verify_signature
from opskit.errors import ChangeError
from opskit.policy import Role


def approve(
    ctx: EngineContext,
    change_id: str,
    actor: str,
    comment: str | None = None,
    signature: str | None = None,
) -> ChangeRequest:
    """One approval. When the policy's requirement is met, the change is
    `approved`. For an emergency change past its start, this is the
    retrospective review."""
    change = ctx.store.get(change_id)
    if change.type is ChangeType.EMERGENCY and (
        change.state in FINISHED_STATES or change.state in (State.IN_PROGRESS, State.VERIFYING)
    ):
        return review_retrospective(ctx, change_id, actor, comment)
    if change.state is not State.ASSESSED:
        reason = f"only an assessed change can be approved (it is {change.state})"
        ctx.journal.refuse(change_id, actor, "approve", reason)
    required = (change.assessment or {}).get("required") or {}
    rule_roles = {Role(r) for r in required.get("roles", [])}
    if actor == change.requester:
        ctx.journal.refuse(
            change_id, actor, "approve", f"{actor} requested this change (four-eyes)"
        )
    roles = ctx.policy.roles_of(actor)
    override_roles = rules.freeze_override_roles(ctx.policy)
    if not (roles & rule_roles) and not (
        change.type is ChangeType.EMERGENCY and roles & override_roles
    ):
        wanted = " or ".join(sorted(str(r) for r in rule_roles)) or "nobody"
        ctx.journal.refuse(
            change_id,
            actor,
            "approve",
            f"{actor} is not a {wanted} ({required.get('reason', '')})",
        )
    if any(
        a["approver"] == actor
        and a["kind"] == "approval"
        and a["binding_hash"] == binding_hash(change.binding_document())
        for a in change.approvals
    ):
        # A second vote by the same person would fake a quorum: a refusal.
        ctx.journal.refuse(change_id, actor, "approve", f"{actor} has already approved it")
    document = change.binding_document()
    digest = binding_hash(document)
    if ctx.policy.require_signed_approvals or signature:
        _check_signature(ctx, change_id, actor, document, signature)
    ctx.journal.record(
        "change.approval",
        actor=actor,
        change_id=change_id,
        payload={
            "approver": actor,
            "roles": sorted(str(r) for r in roles),
            "binding": document,
            "binding_hash": digest,
            "signature": signature,
            "public_key": rules.public_key(ctx.policy, actor),
            "comment": comment,
        },
        # The approval row counts towards the quorum: written with its event.
        guard=ctx.journal.guard(
            (
                approval_row(
                    ctx, change, "approval", actor, comment, document=document, signature=signature
                ),
                None,
            )
        ),
    )
    change = ctx.store.get(change_id)
    progress = approval_progress(change, ctx.policy, actor, rules.valid_approvers(change))
    if progress["remaining"] == 0:
        ctx.journal.transition(
            change,
            State.APPROVED,
            actor=actor,
            payload={"approvers": rules.valid_approvers(change), "binding_hash": digest},
        )
        change = ctx.store.get(change_id)
    return dataclasses.replace(change, approval_progress=progress)


def approval_row(
    ctx: EngineContext,
    change: ChangeRequest,
    kind: str,
    actor: str,
    comment: str | None,
    *,
    document: dict[str, Any] | None = None,
    signature: str | None = None,
) -> Insert:
    """The INSERT of one approval, rejection or retrospective review, bound
    to the change's binding document as it is now."""
    document = document if document is not None else change.binding_document()
    return insert(tables.approvals).values(
        change_id=change.id,
        kind=kind,
        approver=actor,
        roles=sorted(str(r) for r in ctx.policy.roles_of(actor)),
        binding_hash=binding_hash(document),
        binding=document,
        signature=signature,
        comment=comment,
        created_at=ctx.clock(),
    )


def _check_signature(
    ctx: EngineContext, change_id: str, actor: str, document: dict[str, Any], signature: str | None
) -> None:
    key = rules.public_key(ctx.policy, actor)
    if not signature:
        ctx.journal.refuse(
            change_id,
            actor,
            "approve",
            "the policy requires signed approvals; pass a signature (opskit change sign)",
        )
    if not key:
        ctx.journal.refuse(change_id, actor, "approve", f"{actor} has no signing_key in the policy")
    if not verify_signature(key, document, signature or ""):
        ctx.journal.refuse(
            change_id,
            actor,
            "approve",
            f"the signature does not verify with {actor}'s key over this change's binding document",
        )


def reject(ctx: EngineContext, change_id: str, actor: str, reason: str) -> ChangeRequest:
    """Rejects an assessed change, with the reason (an approver's role)."""
    change = ctx.store.get(change_id)
    if not reason.strip():
        raise ChangeError("a rejection needs a reason")
    ctx.journal.require_role(actor, APPROVER_ROLES, "reject", change_id)
    ctx.journal.transition(
        change,
        State.REJECTED,
        actor=actor,
        payload={"reason": reason},
        rows=[approval_row(ctx, change, "rejection", actor, reason)],
    )
    return ctx.store.get(change_id)


def review_retrospective(
    ctx: EngineContext, change_id: str, actor: str, comment: str | None = None
) -> ChangeRequest:
    """The CAB's retrospective review an emergency change needs before closing."""
    change = ctx.store.get(change_id)
    if change.type is not ChangeType.EMERGENCY:
        raise ChangeError(f"{change_id}: only emergency changes have a retrospective review")
    rule = ctx.policy.approvals.emergency.retrospective
    if actor == change.requester:
        ctx.journal.refuse(
            change_id,
            actor,
            "retrospective review",
            f"{actor} requested this change (four-eyes)",
        )
    ctx.journal.require_role(actor, rule.roles, "retrospective review", change_id)
    reviewers = set((change.retrospective or {}).get("reviewers", [])) | {actor}
    retrospective = {
        "reviewers": sorted(reviewers),
        "required": rule.count,
        "complete": len(reviewers) >= rule.count,
        "comments": [
            *(change.retrospective or {}).get("comments", []),
            {"by": actor, "comment": comment},
        ],
    }
    ctx.journal.record(
        "change.retrospective_reviewed",
        actor=actor,
        change_id=change_id,
        payload={
            "comment": comment,
            **{k: retrospective[k] for k in ("reviewers", "required", "complete")},
        },
        guard=ctx.journal.guard(
            (approval_row(ctx, change, "retrospective", actor, comment), None),
            (
                update(tables.changes)
                .where(tables.changes.c.id == change_id)
                .values(retrospective=retrospective, updated_at=ctx.clock()),
                None,
            ),
        ),
    )
    return ctx.store.get(change_id)
