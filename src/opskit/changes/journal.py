"""The change engine's journal: a ledger event and the working tables'
update, in one transaction.

Every write the change process makes goes through a `Journal`: an event
recorded on its own (`record`, `record_later`), an event whose transaction
also runs SQL on the change tables (`record(..., guard=...)`, built by
`guard` and `state_update`), a state transition (`transition`), and a
refusal (`refuse`, `require_role`, `check_state`), which is recorded before
it is raised. During a rollout, events from many threads share commits
(`group_commit`).

The journal is the seam for fault injection: a test passes a subclass whose
`guard` or `state_update` misbehaves (`ChangeService(ws, journal=...)`)
instead of patching the service.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from sqlalchemy import select, update

from opskit.changes import store
from opskit.changes.model import (
    ACTION_FOR_STATE,
    EVENT_FOR_STATE,
    ChangeRequest,
    State,
    aware,
    transition_problem,
    utcnow,
)
from opskit.changes.records import dbapi_statement, jsonable, redact_obj
from opskit.errors import ChangeError, ChangeRefused, OpskitError

if TYPE_CHECKING:
    from datetime import datetime

    from opskit.ledger.core import Batch, Ledger
    from opskit.ledger.groupcommit import GroupWriter
    from opskit.ledger.model import Event
    from opskit.policy import Role
    from opskit.workspace import Workspace

# Runs in an event's own transaction before the event is added (see `Journal.record`).
Guard = Callable[["Batch"], None]
# One step of a guard: an SQLAlchemy statement, and the refusal raised when
# it does not affect exactly one row (None: any row count is fine).
GuardStep = tuple[Any, str | None]


class Journal:
    """Writes the change process's events, with their working-table updates,
    for one workspace. Thread-safe: rollout threads share one journal."""

    def __init__(
        self,
        ws: Workspace,
        *,
        clock: Callable[[], datetime] = utcnow,
        ledger: Ledger | None = None,
    ) -> None:
        self.ws = ws
        self.clock = clock
        self._ledger = ledger
        # Rollout threads share one ledger handle; appends go one at a time.
        self._lock = threading.RLock()
        self._group_writer: GroupWriter | None = None

    @property
    def ledger(self) -> Ledger:
        if self._ledger is None:
            from opskit.ledger import Ledger

            # A broken policy is refused before anything can be recorded under it.
            self.ws.policy  # noqa: B018
            self._ledger = Ledger.open(self.ws)
        return self._ledger

    @property
    def group_writer(self) -> GroupWriter | None:
        """The writer that shares commits while `group_commit` is open, else None."""
        return self._group_writer

    # -- events ----------------------------------------------------------------
    def record(
        self,
        kind: str,
        *,
        actor: str,
        change_id: str | None,
        payload: Mapping[str, Any],
        ci: str | None = None,
        blobs: Mapping[str, Any] | None = None,
        prepared: bool = False,
        guard: Guard | None = None,
    ) -> Event:
        """Appends one event to the ledger (redacted: no secret ever reaches it).

        `prepared`: the payload and blobs are already redacted and in the
        ledger's JSON subset (`opskit.ledger.values.record_ready`, what the
        executor hands its recorder), so they are not walked a second time.
        The ledger refuses any event or blob that still holds a secret.

        `guard(batch)` runs in the event's own database transaction, before
        the event is added (`batch.cursor` is that transaction's DB-API
        cursor): what it writes commits with the event or not at all, and
        when it raises, nothing is written. A state transition is recorded
        this way (`transition`)."""
        kwargs = self._event(actor, change_id, payload, ci, blobs, prepared=prepared)
        guard = _linked(guard, change_id, kwargs["payload"])
        writer = self._group_writer
        if writer is not None:
            return writer.append(kind, guard=guard, **kwargs)
        with self._lock:
            if guard is None:
                return self.ledger.append(kind, **kwargs)
            with self.ledger.batch() as batch:
                guard(batch)
                return batch.append(kind, **kwargs)

    def record_later(
        self,
        kind: str,
        *,
        actor: str,
        change_id: str | None,
        payload: Mapping[str, Any],
        ci: str | None = None,
        blobs: Mapping[str, Any] | None = None,
        prepared: bool = False,
    ) -> Callable[[], Event]:
        """Like `record`, without waiting: the event is queued behind those
        queued before it (one thread's events keep their order) and the
        returned call waits until it is durable, returning the event or
        raising the append's error. Outside `group_commit` it is appended at
        once."""
        kwargs = self._event(actor, change_id, payload, ci, blobs, prepared=prepared)
        guard = _linked(None, change_id, kwargs["payload"])
        writer = self._group_writer
        if writer is not None:
            return writer.submit(kind, guard=guard, **kwargs)
        try:
            with self._lock, self.ledger.batch() as batch:
                if guard is not None:
                    guard(batch)
                event = batch.append(kind, **kwargs)
        except OpskitError as exc:
            error = exc

            def fail() -> Event:
                raise error

            return fail
        return lambda: event

    @staticmethod
    def _event(
        actor: str,
        change_id: str | None,
        payload: Mapping[str, Any],
        ci: str | None,
        blobs: Mapping[str, Any] | None,
        *,
        prepared: bool,
    ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "actor": actor,
            "payload": dict(payload) if prepared else redact_obj(jsonable(dict(payload))),
        }
        if change_id is not None:
            kwargs["change_id"] = change_id
        if ci is not None:
            kwargs["ci"] = ci
        if blobs:
            kwargs["blobs"] = dict(blobs)
        return kwargs

    @contextmanager
    def group_commit(self) -> Iterator[None]:
        """While a rollout runs: events recorded from many threads share commits."""
        from opskit.ledger.groupcommit import GroupWriter

        self._group_writer = GroupWriter(self.ledger)
        try:
            yield
        finally:
            writer, self._group_writer = self._group_writer, None
            writer.close()

    def checkpoint(self, actor: str) -> None:
        """A signed checkpoint of the ledger's head (after a rollout)."""
        with self._lock:
            self.ledger.checkpoint(actor)

    # -- refusals --------------------------------------------------------------
    def refuse(self, change_id: str | None, actor: str, action: str, reason: str) -> NoReturn:
        """Records the refusal in the ledger (`change.refused`), then raises it."""
        self.record(
            "change.refused",
            actor=actor,
            change_id=change_id,
            payload={"action": action, "reason": reason},
        )
        prefix = f"{change_id}: " if change_id else ""
        raise ChangeRefused(f"{prefix}{action} refused: {reason}")

    def require_role(
        self, actor: str, roles: Iterable[Role], action: str, change_id: str | None
    ) -> None:
        """A refusal (`refuse`) unless `actor` holds one of `roles` in the policy."""
        wanted = set(roles)
        if not (self.ws.policy.roles_of(actor) & wanted):
            names = " or ".join(sorted(str(r) for r in wanted))
            self.refuse(change_id, actor, action, f"{actor} is not a {names} in the policy")

    def check_state(
        self, change: ChangeRequest, target: State, actor: str, reason: str | None = None
    ) -> None:
        """A move the state table does not allow is a refusal like any other:
        recorded (`change.refused`), then raised; `reason` words it for the action."""
        problem = transition_problem(change.state, target)
        if problem is not None:
            action = ACTION_FOR_STATE.get(target, str(target))
            self.refuse(change.id, actor, action, reason or problem)

    # -- transitions -----------------------------------------------------------
    def transition(
        self,
        change: ChangeRequest,
        target: State,
        *,
        actor: str,
        payload: Mapping[str, Any] | None = None,
        values: Mapping[str, Any] | None = None,
        rows: Iterable[Any] = (),
    ) -> ChangeRequest:
        """Moves `change` to `target`, recorded in the ledger, with `values`
        (more columns of its row) and `rows` (more statements, an approval
        row) written in the event's transaction. Returns the given change in
        its new state (not read back: `values` are not applied to it)."""
        self.check_state(change, target, actor)
        # Read first only for the clearer message; the guard below decides.
        with self.ws.engine.connect() as conn:
            stored = conn.execute(
                select(store.changes.c.state).where(store.changes.c.id == change.id)
            ).scalar_one()
        if stored != change.state.value:
            raise ChangeError(f"{change.id}: is now {stored} (changed meanwhile); try again")
        now = self.clock()
        # The event and the state change commit in one transaction: a crash
        # leaves both or neither, and of two actors racing for the same
        # transition only the one whose update applies is recorded.
        self.record(
            EVENT_FOR_STATE[target],
            actor=actor,
            change_id=change.id,
            payload={"from": str(change.state), "to": str(target), **(payload or {})},
            guard=self.state_update(
                change, {"state": target.value, "updated_at": now, **(values or {})}, rows
            ),
        )
        return dataclasses.replace(change, state=target, updated_at=aware(now))

    def state_update(
        self, change: ChangeRequest, columns: Mapping[str, Any], rows: Iterable[Any] = ()
    ) -> Guard:
        """A guard (`record`) that moves the change's row from its current
        state, with `columns` (and writes `rows`), in the event's
        transaction; it raises when the row is no longer in that state."""
        statement = (
            update(store.changes)
            .where(store.changes.c.id == change.id, store.changes.c.state == change.state.value)
            .values(**columns)
        )
        return self.guard(
            (statement, f"{change.id}: changed by someone else meanwhile; try again"),
            *((row, None) for row in rows),
        )

    def guard(self, *steps: GuardStep) -> Guard:
        """A guard (`record`) that runs SQLAlchemy statements in the event's
        transaction, so that the working tables and the ledger change
        together or not at all. Each step is (statement, refusal): with a
        refusal, a statement that does not affect exactly one row raises
        ChangeError(refusal), and nothing is written."""
        dialect = self.ws.engine.dialect
        compiled = [(*dbapi_statement(statement, dialect), refusal) for statement, refusal in steps]
        url = self.ws.engine.url

        def guard(batch: Batch) -> None:
            if batch.ledger.engine.url != url:  # pragma: no cover - misuse
                raise ChangeError("the ledger and the change tables must share one database")
            for sql, params, refusal in compiled:
                batch.cursor.execute(sql, params)
                if refusal is not None and batch.cursor.rowcount != 1:
                    raise ChangeError(refusal)

        return guard


def _linked(guard: Guard | None, change_id: str | None, payload: dict[str, Any]) -> Guard | None:
    """`guard`, then the change link (`opskit.ledger.changelink`) written into
    `payload` in the event's own transaction: every event of a change commits
    to the change's earlier events (ledger format 2)."""
    if change_id is None:
        return guard

    def link(batch: Batch) -> None:
        from opskit.ledger.changelink import LINK_FIELD, next_link

        if guard is not None:
            guard(batch)
        payload[LINK_FIELD] = next_link(batch, change_id)

    link.read_only = guard is None  # type: ignore[attr-defined]  # see ledger.groupcommit
    return link
