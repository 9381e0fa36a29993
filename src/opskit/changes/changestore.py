"""`ChangeStore`: reading and keeping the change engine's working index
(the tables of `opskit.changes.store`) outside the ledger's transactions.

It reads changes (`get`, `list`), takes and releases the CI locks and group
slots, and keeps the runner's bookkeeping (runner, heartbeat, per-host
states, summary). What must commit with a ledger event goes through the
`opskit.changes.journal.Journal` instead.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, bindparam, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from opskit.changes import store
from opskit.changes.model import (
    FINISHED_STATES,
    ChangeRequest,
    ChangeType,
    State,
    aware,
    utcnow,
)
from opskit.changes.records import jsonable, redact_obj
from opskit.errors import ChangeError, ChangeRefused
from opskit.hoststate import HostState

if TYPE_CHECKING:
    from datetime import datetime

    from opskit.workspace import Workspace

# The outcomes a runbook version's history counts.
_OUTCOMES = frozenset({State.COMPLETED, State.FAILED, State.ROLLED_BACK})
# How long a host waits for a free slot in a capped group before it fails.
SLOT_WAIT_SECONDS = 600.0
# (ci, status, detail) of one host, for `set_hosts`.
HostUpdate = tuple[str, str, Mapping[str, Any] | None]


class ChangeStore:
    """The working index of one workspace's changes. Thread-safe."""

    def __init__(self, ws: Workspace, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.ws = ws
        self.clock = clock

    @property
    def engine(self) -> Engine:
        return self.ws.engine

    # -- reading -------------------------------------------------------------
    def get(self, change_id: str) -> ChangeRequest:
        """The change with its approvals and per-host states (ChangeError: no such change)."""
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(store.changes).where(store.changes.c.id == change_id))
                .mappings()
                .first()
            )
            if row is None:
                raise ChangeError(f"no change {change_id!r}")
            approval_rows = (
                conn.execute(
                    select(store.approvals)
                    .where(store.approvals.c.change_id == change_id)
                    .order_by(store.approvals.c.id)
                )
                .mappings()
                .all()
            )
            host_rows = (
                conn.execute(select(store.hosts).where(store.hosts.c.change_id == change_id))
                .mappings()
                .all()
            )
        return from_row(row, approval_rows, host_rows)

    def list(
        self, state: str | None = None, *, include_cancelled: bool = False
    ) -> list[ChangeRequest]:
        """Changes, oldest first; cancelled ones only when asked for (by
        `include_cancelled`, or `state="cancelled"`)."""
        query = select(store.changes).order_by(store.changes.c.number)
        if not (state or include_cancelled):
            query = query.where(store.changes.c.state != State.CANCELLED.value)
        if state:
            try:
                query = query.where(store.changes.c.state == State(state).value)
            except ValueError:
                raise ChangeError(
                    f"unknown state {state!r}; use one of {', '.join(s.value for s in State)}"
                ) from None
        with self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [from_row(row, [], []) for row in rows]

    def runbook_history(self, name: str, version: str) -> dict[str, int]:
        """Outcomes of past changes with this runbook version (state -> count)."""
        finished = [s.value for s in FINISHED_STATES] + [State.CLOSED.value]
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(store.changes.c.state, store.changes.c.summary).where(
                    store.changes.c.runbook_name == name,
                    store.changes.c.runbook_version == version,
                    store.changes.c.state.in_(finished),
                )
            ).all()
        history: dict[str, int] = {}
        for state, summary in rows:
            outcome = (summary or {}).get("outcome") if state == State.CLOSED.value else state
            if outcome in _OUTCOMES:
                history[outcome] = history.get(outcome, 0) + 1
        return history

    # -- locks -----------------------------------------------------------------
    def locks_held_by_others(self, change: ChangeRequest) -> dict[str, str]:
        """The change's CIs locked by other changes: ci -> change id."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(store.locks.c.ci, store.locks.c.change_id).where(
                    store.locks.c.ci.in_(change.targets), store.locks.c.change_id != change.id
                )
            ).all()
        return {ci: holder for ci, holder in rows}

    def lock_holders(self) -> list[str]:
        """Ids of the changes holding any CI lock, sorted."""
        with self.engine.connect() as conn:
            return sorted(set(conn.execute(select(store.locks.c.change_id)).scalars()))

    def acquire_locks(self, change: ChangeRequest) -> None:
        """All of the change's CIs, atomically, or none (ChangeRefused names the holder)."""
        now = self.clock()
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    insert(store.locks),
                    [
                        {"ci": ci, "change_id": change.id, "acquired_at": now}
                        for ci in change.targets
                    ],
                )
        except IntegrityError:
            held = self.locks_held_by_others(change)
            detail = ", ".join(f"{ci} ({holder})" for ci, holder in sorted(held.items())[:10])
            raise ChangeRefused(
                f"{change.id}: apply refused: CIs held by other changes: {detail or 'a lock race'}"
            ) from None

    def release_locks(self, change_id: str) -> int:
        """The change's CI locks and group slots; returns how many locks it held."""
        with self.engine.begin() as conn:
            released = conn.execute(
                delete(store.locks).where(store.locks.c.change_id == change_id)
            ).rowcount
            conn.execute(
                delete(store.group_slots).where(store.group_slots.c.change_id == change_id)
            )
        return released

    # -- group slots -------------------------------------------------------------
    # One row per changing CI in a capped group; the unique (group, slot)
    # constraint enforces the cap across processes.
    def group_slot_holders(self, group: str, *, besides: str) -> list[tuple[str, str]]:
        """(ci, change id) of the CIs changing in `group` for changes other than `besides`."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(store.group_slots.c.ci, store.group_slots.c.change_id).where(
                    store.group_slots.c.group_name == group,
                    store.group_slots.c.change_id != besides,
                )
            ).all()
        return [(ci, change_id) for ci, change_id in rows]

    def acquire_slots(
        self, change_id: str, ci: str, groups: Iterable[str], caps: Mapping[str, int]
    ) -> None:
        """A slot for `ci` in each of `groups` (at most `caps[group]` CIs
        change in a group at once), waiting up to SLOT_WAIT_SECONDS for one."""
        deadline = time.monotonic() + SLOT_WAIT_SECONDS
        for group in groups:
            while True:
                with self.engine.connect() as conn:
                    taken = set(
                        conn.execute(
                            select(store.group_slots.c.slot).where(
                                store.group_slots.c.group_name == group
                            )
                        ).scalars()
                    )
                free = [s for s in range(caps[group]) if s not in taken]
                if free:
                    try:
                        with self.engine.begin() as conn:
                            conn.execute(
                                insert(store.group_slots).values(
                                    group_name=group,
                                    slot=free[0],
                                    ci=ci,
                                    change_id=change_id,
                                    acquired_at=self.clock(),
                                )
                            )
                        break
                    except IntegrityError:
                        pass  # another process took that slot first: look again
                if time.monotonic() > deadline:
                    raise ChangeError(
                        f"{ci}: group {group} stayed at its cap for {SLOT_WAIT_SECONDS:.0f} s"
                    )
                time.sleep(0.2)

    def release_slots(self, change_id: str, ci: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                delete(store.group_slots).where(
                    store.group_slots.c.change_id == change_id, store.group_slots.c.ci == ci
                )
            )

    # -- runner bookkeeping (kept by the rollout) --------------------------------------
    def set_runner(self, change_id: str, *, alive: bool) -> None:
        """This process as the change's runner (`alive`), or no runner."""
        values: dict[str, Any] = (
            {
                "runner_host": socket.gethostname(),
                "runner_pid": os.getpid(),
                "heartbeat_at": self.clock(),
            }
            if alive
            else {"runner_pid": None, "heartbeat_at": None}
        )
        with self.engine.begin() as conn:
            conn.execute(
                update(store.changes).where(store.changes.c.id == change_id).values(**values)
            )

    def heartbeat(self, change_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(store.changes)
                .where(store.changes.c.id == change_id, store.changes.c.runner_pid == os.getpid())
                .values(heartbeat_at=self.clock())
            )

    def set_host(
        self,
        change_id: str,
        ci: str,
        status: str,
        *,
        batch: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> None:
        self.set_hosts(change_id, [(ci, status, detail)], batch=batch)

    def set_hosts(
        self,
        change_id: str,
        updates: Iterable[HostUpdate],
        *,
        batch: int | None = None,
        connection: Connection | None = None,
    ) -> None:
        """Several hosts' (ci, status, detail) in one transaction (one commit
        for the hosts a rollout finished meanwhile), or in `connection`'s."""
        if connection is None:
            with self.engine.begin() as conn:
                self.set_hosts(change_id, updates, batch=batch, connection=conn)
            return
        now = self.clock()
        rows: list[dict[str, Any]] = []
        for ci, status, detail in updates:
            values: dict[str, Any] = {"status": status, "updated_at": now}
            if batch is not None:
                values["batch"] = batch
            if detail is not None:
                values["detail"] = redact_obj(jsonable(dict(detail)))
            rows.append({"b_change": change_id, "b_ci": ci, **values})
        # One statement per set of columns, executed for many rows.
        by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for row in rows:
            by_columns.setdefault(tuple(sorted(row)), []).append(row)
        missing: list[dict[str, Any]] = []
        for columns, group in by_columns.items():
            statement = (
                update(store.hosts)
                .where(
                    store.hosts.c.change_id == bindparam("b_change"),
                    store.hosts.c.ci == bindparam("b_ci"),
                )
                .values({c: bindparam(c) for c in columns if not c.startswith("b_")})
            )
            if connection.execute(statement, group).rowcount == len(group):
                continue
            # Some host has no row yet (init_hosts was not called): find which.
            known = set(
                connection.execute(
                    select(store.hosts.c.ci).where(store.hosts.c.change_id == change_id)
                ).scalars()
            )
            missing += [row for row in group if row["b_ci"] not in known]
        for row in missing:
            values = {k: v for k, v in row.items() if not k.startswith("b_")}
            connection.execute(
                insert(store.hosts).values(change_id=change_id, ci=row["b_ci"], **values)
            )

    def init_hosts(self, change_id: str, plan: list[list[str]]) -> None:
        """Every target `pending`, with its batch, in one transaction."""
        now = self.clock()
        rows = [
            {
                "change_id": change_id,
                "ci": ci,
                "status": HostState.PENDING.value,
                "batch": batch,
                "updated_at": now,
            }
            for batch, names in enumerate(plan)
            for ci in names
        ]
        with self.engine.begin() as conn:
            conn.execute(delete(store.hosts).where(store.hosts.c.change_id == change_id))
            conn.execute(insert(store.hosts), rows)

    def set_summary(self, change_id: str, summary: Mapping[str, Any]) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(store.changes)
                .where(store.changes.c.id == change_id)
                .values(summary=redact_obj(dict(summary)), updated_at=self.clock())
            )


def from_row(
    row: Mapping[str, Any],
    approval_rows: Iterable[Mapping[str, Any]],
    host_rows: Iterable[Mapping[str, Any]],
) -> ChangeRequest:
    """A `ChangeRequest` from its row in `changes`, its approvals and hosts."""
    data = dict(row)
    for key in ("window_start", "window_end", "heartbeat_at", "created_at", "updated_at"):
        data[key] = aware(data.get(key))
    data["type"] = ChangeType(data["type"])
    data["state"] = State(data["state"])
    change = ChangeRequest(**data)
    change.approvals = [
        {
            **dict(a),
            "created_at": aware(a["created_at"]).isoformat() if a["created_at"] else None,
        }
        for a in approval_rows
    ]
    change.hosts = {
        h["ci"]: {
            "status": h["status"],
            "batch": h["batch"],
            "detail": h["detail"] or {},
        }
        for h in host_rows
    }
    return change
