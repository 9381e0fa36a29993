"""The notification outbox: one row per (webhook, ledger event) to deliver.

A row is written in the transaction that appends its ledger event
(`opskit.notify.outbox`), so the two commit together or not at all. `state`
is `pending` until the receiver answers 2xx (`delivered`) or the webhook's
`max_attempts` are spent (`failed`); `next_at` (epoch seconds) is when the
row is next due, and also the lease a sender takes while it posts it.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Integer, String, Table, Text, UniqueConstraint

from opskit.db import metadata

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"

outbox = Table(
    "notify_outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("delivery_id", String(36), nullable=False, unique=True),
    Column("url", Text, nullable=False),
    Column("seq", Integer, nullable=False),
    Column("kind", String(64), nullable=False),
    Column("change_id", String(32), nullable=True),
    Column("ci", String(200), nullable=True),
    # The JSON document posted, built when the event committed (no secret:
    # the ledger holds none, and the sender checks again before posting).
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False, index=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", Float, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", Float, nullable=False),
    Column("delivered_at", Float, nullable=True),
    UniqueConstraint("url", "seq", "kind", name="uq_notify_outbox_event"),
)
