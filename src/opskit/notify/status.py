"""What the outbox holds: counts per state and the oldest pending row.

Example (`outbox_status(ws)`):

    OutboxStatus(pending=2, delivered=40, failed=1,
                 oldest_pending=Pending(seq=57, kind='change.completed',
                                        url='https://itsm.example.org/hook',
                                        attempts=3, last_error='HTTP 503',
                                        created_at=datetime(...)),
                 webhooks={'https://itsm.example.org/hook': {'pending': 2, ...}})
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from opskit.notify.store import DELIVERED, FAILED, PENDING, outbox

if TYPE_CHECKING:
    from opskit.workspace import Workspace


@dataclass(frozen=True)
class Pending:
    """One outbox row not yet delivered."""

    seq: int
    kind: str
    url: str
    attempts: int
    last_error: str | None
    created_at: datetime


@dataclass
class OutboxStatus:
    pending: int = 0
    delivered: int = 0
    failed: int = 0
    oldest_pending: Pending | None = None
    webhooks: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        oldest = self.oldest_pending
        return {
            "pending": self.pending,
            "delivered": self.delivered,
            "failed": self.failed,
            "oldest_pending": None
            if oldest is None
            else {**oldest.__dict__, "created_at": oldest.created_at.isoformat()},
            "webhooks": self.webhooks,
        }


def outbox_status(ws: Workspace) -> OutboxStatus:
    """Counts per state (all webhooks and each) and the oldest pending row."""
    status = OutboxStatus()
    counts = select(outbox.c.url, outbox.c.state, func.count()).group_by(
        outbox.c.url, outbox.c.state
    )
    oldest = (
        select(outbox).where(outbox.c.state == PENDING).order_by(outbox.c.seq, outbox.c.id).limit(1)
    )
    with ws.engine.connect() as conn:
        for url, state, count in conn.execute(counts):
            per = status.webhooks.setdefault(url, {PENDING: 0, DELIVERED: 0, FAILED: 0})
            per[state] = count
            setattr(status, state, getattr(status, state) + count)
        row = conn.execute(oldest).first()
    if row is not None:
        status.oldest_pending = Pending(
            seq=row.seq,
            kind=row.kind,
            url=row.url,
            attempts=row.attempts,
            last_error=row.last_error,
            created_at=datetime.fromtimestamp(row.created_at, UTC),
        )
    return status
