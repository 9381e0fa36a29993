"""`ChangeService`: the change process as a Python API.

request (create, submit) → assessment (risk, impact, required approvals,
predicted diff) → approval (roles, four-eyes, quorum, signatures, binding) →
schedule → apply (see `opskit.changes.rollout`) → close with a review.

Every transition is a ledger event with the actor; the tables in
`opskit.changes.store` are the working index of the current state.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, update

from opskit.changes import approving, assessment, intake, preflight, rules
from opskit.changes import store as tables
from opskit.changes.cancel import cancel
from opskit.changes.changestore import ChangeStore, from_row
from opskit.changes.context import EngineContext
from opskit.changes.journal import Journal
from opskit.changes.model import (
    CREATED_FIELDS,
    ChangeRequest,
    ChangeType,
    State,
    aware,
    utcnow,
)
from opskit.changes.records import jsonable, redact_obj
from opskit.changes.recovery import recover
from opskit.changes.rollback import rollback_change
from opskit.changes.rollout import ProgressCallback, Rollout
from opskit.changes.rules import APPROVER_ROLES
from opskit.changes.runners import RunnerFactory, thread_runner
from opskit.changes.summary import ChangeSummary, DryRunSummary, RecoveryReport
from opskit.errors import ChangeError
from opskit.policy import (
    Risk,
    Role,
)
from opskit.workspace import Workspace

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger
    from opskit.runbooks.model import Runbook


class ChangeService:
    """The change process for one workspace. Thread-safe for reads; one
    instance per process is the normal use."""

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Callable[[], datetime] = utcnow,
        ledger: Ledger | None = None,
        journal: Journal | None = None,
        store: ChangeStore | None = None,
        runner: RunnerFactory = thread_runner,
    ) -> None:
        """`journal`: where events and their working-table updates are
        written (default: a `Journal` on `ws`'s ledger; a test passes one
        that injects a fault); `store`: the working index (default: a
        `ChangeStore` on `ws`); `runner`: makes the executor that runs a
        rollout's per-host jobs (default: a thread pool). What the engine
        shares (ledger, policy, database, catalog, clock, journal, store) is
        read from `context`, e.g. `svc.context.ledger.verify().ok`."""
        self.ws = ws
        self.context = EngineContext(
            ws,
            clock=clock,
            journal=journal if journal is not None else Journal(ws, clock=clock, ledger=ledger),
            store=store if store is not None else ChangeStore(ws, clock=clock),
            runner=runner,
        )

    # -- reading -------------------------------------------------------------
    def get(self, change_id: str) -> ChangeRequest:
        """The change with its approvals and per-host states (`ChangeStore.get`)."""
        return self.context.store.get(change_id)

    def list(
        self, state: str | None = None, *, include_cancelled: bool = False
    ) -> list[ChangeRequest]:
        """Changes, oldest first; cancelled ones only when asked for (by
        `include_cancelled`, or `state="cancelled"`)."""
        return self.context.store.list(state, include_cancelled=include_cancelled)

    # -- state ---------------------------------------------------------------
    def _transition(
        self,
        change: ChangeRequest,
        target: State,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        reload: bool = True,
        rows: Iterable[Any] = (),
    ) -> ChangeRequest:
        """`Journal.transition`, returning the change read back, or with
        `reload=False` (and no `values`) the given one in its new state:
        re-reading a finished rollout's hundreds of host rows costs more
        than the transition."""
        moved = self.context.journal.transition(
            change, target, actor=actor, payload=payload, values=values, rows=rows
        )
        if reload or values:
            return self.get(change.id)
        return moved

    # -- request ---------------------------------------------------------------
    def create(
        self,
        *,
        runbook: str,
        select_expr: str,
        requester: str,
        title: str,
        params: Mapping[str, Any] | None = None,
        type: str | ChangeType = ChangeType.NORMAL,
        description: str = "",
        window_start: datetime | None = None,
        window_end: datetime | None = None,
        tickets: Iterable[str] = (),
        inventory: str | None = None,
    ) -> ChangeRequest:
        """Creates a change in `draft`: runbook pinned by digest, parameters
        validated, targets resolved against the inventory (with its digest)."""
        self.context.journal.require_role(requester, [Role.REQUESTER], "create", None)
        try:
            change_type = ChangeType(type)
        except ValueError:
            raise ChangeError(
                f"unknown change type {type!r}; use standard, normal or emergency"
            ) from None
        if not title.strip():
            raise ChangeError("a change needs a title")
        book = self.context.catalog.get(runbook)
        allowed = [str(t) for t in (book.change_types or [])]
        if allowed and change_type.value not in allowed:
            raise ChangeError(
                f"runbook {book.name}@{book.version} allows change types "
                f"{', '.join(allowed)}, not {change_type}"
            )
        parameters = book.validate_params(dict(params or {}))
        intake.check_parameters_recordable(book, parameters, redact_obj(jsonable(parameters)))
        inv_name = inventory or self.context.policy.inventory
        inv = self.context.inventory(inv_name)
        targets = assessment.resolve_targets(inv, select_expr, book)
        window_start, window_end = aware(window_start), aware(window_end)
        now = self.context.clock()
        problem = intake.window_problem(window_start, window_end, now)
        if problem:
            raise ChangeError(problem)
        plan = {"implementation": book.implementation_plan(), "rollback": book.rollback_plan()}
        row = {
            "title": title.strip(),
            "description": description,
            "type": change_type.value,
            "state": State.DRAFT.value,
            "requester": requester,
            "runbook_name": book.name,
            "runbook_version": str(book.version),
            "runbook_digest": book.digest,
            "selection": select_expr,
            "inventory": inv_name,
            "inventory_digest": inv.digest,
            "targets": targets,
            "parameters": parameters,
            "window_start": window_start,
            "window_end": window_end,
            "tickets": list(tickets),
            "plan": plan,
            "created_at": now,
            "updated_at": now,
        }
        chosen = intake.version_note(runbook, book)

        def created_payload(change_id: str, number: int) -> dict[str, Any]:
            created = from_row({"id": change_id, "number": number, **row}, [], [])
            fields = {k: v for k, v in created.to_dict().items() if k in CREATED_FIELDS}
            extra = {"runbook_chosen": chosen} if chosen else {}
            return {"to": State.DRAFT.value, **fields, **extra}

        # Everything the ledger will be asked to store is checked before a
        # number is taken: a refused create leaves no gap in the numbers.
        intake.check_recordable(redact_obj(jsonable(created_payload("CHG-000000", 0))))
        with self.context.engine.begin() as conn:
            number = conn.execute(
                insert(tables.change_numbers).values(change_id=None)
            ).inserted_primary_key[0]
            change_id = f"CHG-{number:06d}"
            conn.execute(
                update(tables.change_numbers)
                .where(tables.change_numbers.c.number == number)
                .values(change_id=change_id)
            )
        # The change's row and its created event in one transaction (a crash
        # between the two transactions leaves a gap in the numbers, never a
        # change without its event).
        self.context.journal.record(
            "change.created",
            actor=requester,
            change_id=change_id,
            payload=created_payload(change_id, number),
            guard=self.context.journal.guard(
                (insert(tables.changes).values(id=change_id, number=number, **row), None)
            ),
        )
        return self.get(change_id)

    def submit(self, change_id: str, actor: str) -> ChangeRequest:
        change = self.get(change_id)
        if actor != change.requester:
            self.context.journal.require_role(actor, [Role.REQUESTER], "submit", change_id)
        return self._transition(change, State.SUBMITTED, actor=actor)

    # -- assessment --------------------------------------------------------------
    def assess(self, change_id: str, actor: str, *, predict: bool = True) -> ChangeRequest:
        """Computes impact, risk, required approvals and (where connectors can)
        the predicted diff per host; refreshes the binding to the current
        runbook, targets and inventory. Approvals given for an older binding
        no longer count (see `opskit.changes.assessment`)."""
        return assessment.assess(self.context, change_id, actor, predict=predict)

    def required_approvals(
        self, *, change_type: ChangeType, risk: Risk, runbook: Runbook
    ) -> dict[str, Any]:
        """Which approvals the policy requires, and why (`rules.required_approvals`)."""
        return rules.required_approvals(
            self.context.policy, change_type=change_type, risk=risk, runbook=runbook
        )

    # -- approval ------------------------------------------------------------------
    def approve(
        self,
        change_id: str,
        actor: str,
        *,
        comment: str | None = None,
        signature: str | None = None,
    ) -> ChangeRequest:
        """One approval. When the policy's requirement is met, the change is
        `approved`. For an emergency change past its start, this is the
        retrospective review (see `opskit.changes.approving`)."""
        return approving.approve(self.context, change_id, actor, comment, signature)

    def reject(self, change_id: str, actor: str, reason: str) -> ChangeRequest:
        """Rejects an assessed change, with the reason."""
        return approving.reject(self.context, change_id, actor, reason)

    def review_retrospective(
        self, change_id: str, actor: str, *, comment: str | None = None
    ) -> ChangeRequest:
        """The CAB's retrospective review an emergency change needs before closing."""
        return approving.review_retrospective(self.context, change_id, actor, comment)

    # -- schedule ----------------------------------------------------------------------
    def schedule(
        self,
        change_id: str,
        actor: str,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> ChangeRequest:
        """Schedules an approved change in a window (`preflight.schedule`)."""
        return preflight.schedule(self.context, change_id, actor, start=start, end=end)

    # -- apply preconditions -------------------------------------------------------
    def apply_blockers(self, change: ChangeRequest, actor: str) -> list[str]:
        """Every reason the change may not be applied now by `actor` (empty:
        go); see `rules.apply_blockers`."""
        return preflight.apply_blockers(self.context, change, actor)

    def binding_drift(
        self, change: ChangeRequest, *, predicted: dict[str, Any] | None = None
    ) -> list[str]:
        """What differs between the change as approved and as it would run now."""
        return preflight.binding_drift(self.context, change, predicted=predicted)

    # -- applying (in opskit.changes.rollout) --------------------------------------
    def apply(
        self,
        change_id: str,
        actor: str,
        *,
        dry_run: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ChangeSummary | DryRunSummary:
        """Applies the change (see `opskit.changes.rollout`): its summary
        (`opskit.changes.summary.ChangeSummary`); a dry run's predictions."""
        return Rollout(self.context, change_id, actor, progress=progress).run(dry_run=dry_run)

    def rollback(
        self, change_id: str, actor: str, *, progress: ProgressCallback | None = None
    ) -> ChangeSummary:
        """Rolls a finished change back (see `opskit.changes.rollback`): its summary."""
        return rollback_change(Rollout(self.context, change_id, actor, progress=progress))

    def recover(
        self,
        actor: str,
        *,
        rollback: bool = False,
        stale_after: float = 30.0,
        change_id: str | None = None,
    ) -> list[RecoveryReport]:
        """Recovers changes whose runner is gone (see `opskit.changes.recovery`)."""
        return recover(
            self.context, actor, rollback=rollback, stale_after=stale_after, change_id=change_id
        )

    def cancel(self, change_id: str, actor: str, *, reason: str) -> ChangeRequest:
        """Withdraws a change that has not started (see `opskit.changes.cancel`)."""
        return cancel(self.context, change_id, actor, reason)

    # -- close ---------------------------------------------------------------------------
    def close(
        self,
        change_id: str,
        actor: str,
        *,
        review: str,
        outcome: str | None = None,
        cause: str | None = None,
        follow_ups: Iterable[str] = (),
    ) -> ChangeRequest:
        """Records the post-implementation review and closes the change."""
        change = self.get(change_id)
        if not review.strip():
            raise ChangeError("closing needs a review text")
        allowed = APPROVER_ROLES | {Role.IMPLEMENTER}
        if actor != change.requester:
            self.context.journal.require_role(actor, allowed, "close", change_id)
        self.context.journal.check_state(change, State.CLOSED, actor)
        if (
            change.type is ChangeType.EMERGENCY
            and change.state is not State.REJECTED
            and not (change.retrospective or {}).get("complete")
        ):
            rule = self.context.policy.approvals.emergency.retrospective
            self.context.journal.refuse(
                change_id,
                actor,
                "close",
                f"an emergency change needs its retrospective review by {rule.count} of "
                f"{', '.join(rule.roles)} first (opskit change approve {change_id})",
            )
        final = outcome or change.state.value
        # The review may judge a completed change a failure (it ran, but missed
        # its aim); it may not report a better outcome than the ledger shows.
        possible = [change.state.value] + (["failed"] if change.state is State.COMPLETED else [])
        if final not in possible:
            raise ChangeError(
                f"{change_id}: outcome {final!r} does not fit a {change.state} change; "
                f"use {' or '.join(possible)}"
            )
        if final in ("failed", "rolled_back", "partially_rolled_back") and not cause:
            cause = (change.summary or {}).get("cause")
        review_doc = {
            "review": review,
            "outcome": final,
            "cause": cause,
            "follow_ups": list(follow_ups),
            "by": actor,
            "at": self.context.clock().isoformat(),
        }
        summary = {**(change.summary or {}), "outcome": final}
        return self._transition(
            change,
            State.CLOSED,
            actor=actor,
            payload={"review": review_doc},
            values={"review": review_doc, "summary": summary},
        )
