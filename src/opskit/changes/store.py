"""The change engine's working index: changes, approvals, per-host state,
CI locks and group slots.

The ledger is the record; these tables make the current state quick to
query and give the atomic guarantees the process needs: a unique change
number per change across processes, and per-CI locks and per-group slots
enforced by unique constraints, so that two processes racing for the same CI
cannot both win.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    event,
    text,
)

from opskit.db import metadata

# One row per change number: inserting it is how a process reserves the next id.
change_numbers = Table(
    "change_numbers",
    metadata,
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("change_id", String(32), nullable=True),
)

changes = Table(
    "changes",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("number", Integer, nullable=False, unique=True),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False, default=""),
    Column("type", String(16), nullable=False),
    # Wide enough for every state name ("partially_rolled_back"); older
    # databases are widened by `widen_state_column`.
    Column("state", String(32), nullable=False, index=True),
    Column("requester", String(128), nullable=False),
    Column("runbook_name", String(200), nullable=False),
    Column("runbook_version", String(64), nullable=False),
    Column("runbook_digest", String(80), nullable=False),
    Column("selection", Text, nullable=False),
    Column("inventory", String(200), nullable=False),
    Column("inventory_digest", String(80), nullable=False),
    Column("targets", JSON, nullable=False),
    Column("parameters", JSON, nullable=False),
    Column("window_start", DateTime(timezone=True), nullable=True),
    Column("window_end", DateTime(timezone=True), nullable=True),
    Column("tickets", JSON, nullable=False),
    Column("plan", JSON, nullable=False),
    Column("impact", JSON, nullable=True),
    Column("predicted_diff", JSON, nullable=True),
    Column("risk", JSON, nullable=True),
    Column("assessment", JSON, nullable=True),
    Column("review", JSON, nullable=True),
    Column("retrospective", JSON, nullable=True),
    Column("summary", JSON, nullable=True),
    # Who runs the apply, to tell a crashed run from a live one.
    Column("runner_host", String(200), nullable=True),
    Column("runner_pid", Integer, nullable=True),
    Column("heartbeat_at", DateTime(timezone=True), nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

approvals = Table(
    "change_approvals",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("change_id", String(32), ForeignKey("changes.id"), nullable=False, index=True),
    # approval | rejection | retrospective | freeze_override
    Column("kind", String(24), nullable=False),
    Column("approver", String(128), nullable=False),
    Column("roles", JSON, nullable=False),
    Column("binding_hash", String(80), nullable=False),
    # The binding document itself, to say what changed when it goes stale.
    Column("binding", JSON, nullable=False),
    Column("signature", Text, nullable=True),
    Column("comment", Text, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

hosts = Table(
    "change_hosts",
    metadata,
    Column("change_id", String(32), ForeignKey("changes.id"), primary_key=True),
    Column("ci", String(200), primary_key=True),
    # pending | running | ok | failed | rolled_back | rollback_failed | not_restored
    # | skipped | unknown
    Column("status", String(24), nullable=False),
    Column("batch", Integer, nullable=True),
    Column("detail", JSON, nullable=True),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)

# A CI is held by at most one change: the primary key is the lock.
locks = Table(
    "change_locks",
    metadata,
    Column("ci", String(200), primary_key=True),
    Column("change_id", String(32), nullable=False, index=True),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
)

# Concurrency caps: a CI changing in a capped group holds one of the group's
# numbered slots (0..max-1); the unique constraint makes the cap atomic.
group_slots = Table(
    "change_group_slots",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_name", String(200), nullable=False),
    Column("slot", Integer, nullable=False),
    Column("ci", String(200), nullable=False),
    Column("change_id", String(32), nullable=False, index=True),
    Column("acquired_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("group_name", "slot", name="uq_group_slot"),
)


@event.listens_for(metadata, "after_create")
def widen_state_column(target: Any, connection: Connection, **_: Any) -> None:
    """A PostgreSQL database made before the longer states existed has
    `changes.state` as VARCHAR(16): widened here, once, on schema creation
    (SQLite does not enforce the length)."""
    if connection.dialect.name != "postgresql":
        return
    width = connection.execute(
        text(
            "SELECT character_maximum_length FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'changes' "
            "AND column_name = 'state'"
        )
    ).scalar()
    if width is not None and width < 32:
        connection.execute(text("ALTER TABLE changes ALTER COLUMN state TYPE VARCHAR(32)"))
