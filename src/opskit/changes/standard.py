"""A pre-approved standard change in one step: `opskit change run --standard`.

`run_standard(service, runbook=, select_expr=, actor=, title=, params=)`
does what a person would do one verb at a time, through the same service
calls, so the ledger holds the same records in the same order:
``change.created``, ``change.submitted``, ``change.assessed``,
``change.approved`` (by the policy: the runbook's digest is pre-approved),
then the rollout's records. It returns the change (as created) and the
rollout's `ChangeSummary`.

Before anything is created it checks that the change can run unattended:
the runbook version is declared ``standard: true``, the policy's
``standard_changes`` pre-approves exactly its digest, and the policy asks
no approver to say go for standard changes (``approvals.standard``). If
not, the refusal is recorded (``change.refused``, action ``run --standard``)
and raised as `ChangeRefused`; no change is created.

Example::

    >>> change, summary = run_standard(
    ...     service, runbook="vlan@1.0.0", select_expr="site:lab",
    ...     actor="ci-bot", title="VLAN 42", params={"vlan_id": 42})
    >>> change.id, summary.state.value
    ('CHG-000031', 'completed')
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

from opskit.changes import rules
from opskit.changes.model import ChangeType, State

if TYPE_CHECKING:
    from opskit.changes.model import ChangeRequest
    from opskit.changes.service import ChangeService
    from opskit.changes.summary import ChangeSummary

ACTION = "run --standard"


def unattended_problem(service: ChangeService, runbook: str) -> str | None:
    """Why `runbook` cannot run as an unattended standard change (None: it can)."""
    book = service.context.catalog.get(runbook)
    policy = service.context.policy
    if not book.standard:
        return f"runbook {book.ref} is not declared a standard change (standard: true)"
    if rules.standard_entry(policy, book) is None:
        return (
            f"runbook {book.ref} ({book.digest}) is not a pre-approved standard change "
            "in the policy (standard_changes)"
        )
    if policy.approvals.standard is not None:
        return (
            f"the policy asks {policy.approvals.standard.count} approval(s) for standard "
            "changes: create it, then `opskit change wait` for them"
        )
    return None


def run_standard(
    service: ChangeService,
    *,
    runbook: str,
    select_expr: str,
    actor: str,
    title: str,
    params: Mapping[str, Any] | None = None,
    description: str = "",
    tickets: tuple[str, ...] = (),
    inventory: str | None = None,
) -> tuple[ChangeRequest, ChangeSummary]:
    """Creates, submits, assesses and applies a pre-approved standard change
    (see the module); `ChangeRefused` before anything is created otherwise."""
    problem = unattended_problem(service, runbook)
    if problem:
        service.context.journal.refuse(None, actor, ACTION, problem)
    change = service.create(
        runbook=runbook,
        select_expr=select_expr,
        requester=actor,
        title=title,
        params=params,
        type=ChangeType.STANDARD,
        description=description,
        tickets=tickets,
        inventory=inventory,
    )
    service.submit(change.id, actor)
    assessed = service.assess(change.id, actor)
    if assessed.state is not State.APPROVED:  # the policy changed under us
        service.context.journal.refuse(
            change.id, actor, ACTION, f"the assessment left it {assessed.state}, not approved"
        )
    summary = service.apply(change.id, actor)
    return change, cast("ChangeSummary", summary)  # not a dry run: a ChangeSummary
