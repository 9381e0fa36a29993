"""Signed webhook notifications of ledger events (`notify:` in the policy).

- `opskit.notify.events`: the event kinds and groups a webhook names; URL checks.
- `opskit.notify.outbox`: the outbox rows written in the ledger event's own transaction.
- `opskit.notify.sender`: delivery (HMAC-SHA256 signed POSTs, at least once, backoff).
- `opskit.notify.status`: pending / delivered / failed counts.
- `opskit.notify.trigger`: the background sender a CLI command starts.

The public names load their module when first used (the policy imports
`opskit.notify.events` and must not pull the database layer in):

    >>> from opskit import notify
    >>> notify.deliver(ws)               # doctest: +SKIP
    Delivery(delivered=3, retried=0, failed=0)
    >>> notify.outbox_status(ws).pending  # doctest: +SKIP
    0
"""

from __future__ import annotations

import importlib
from typing import Any

_PUBLIC = {
    "Backoff": "opskit.notify.sender",
    "Delivery": "opskit.notify.sender",
    "Sender": "opskit.notify.sender",
    "deliver": "opskit.notify.sender",
    "deliver_while": "opskit.notify.sender",
    "sign": "opskit.notify.sender",
    "SIGNATURE_HEADER": "opskit.notify.sender",
    "OutboxStatus": "opskit.notify.status",
    "outbox_status": "opskit.notify.status",
    "enable_background": "opskit.notify.trigger",
}
__all__ = [
    "SIGNATURE_HEADER",
    "Backoff",
    "Delivery",
    "OutboxStatus",
    "Sender",
    "deliver",
    "deliver_while",
    "enable_background",
    "outbox_status",
    "sign",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'opskit.notify' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
