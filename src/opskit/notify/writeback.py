"""Write-back to a source of truth: the outbox rows of a `writeback:` route.

A `writeback:` entry of the policy is the outbox's second kind of route,
beside the webhooks. For every finished change (`change.completed`,
`change.failed`, `change.rolled_back`, `change.partially_rolled_back`) and,
unless its `compliance: none`, every `compliance.result`, the outbox hook
writes one row whose body is the document below, in the ledger event's own
transaction (`opskit.notify.outbox`): the source of truth being down never
blocks or fails a change, and nothing is lost. `opskit.notify.nautobot`
delivers the rows (a journal entry per touched device, custom fields).

The document names what the write-back needs and nothing secret: the
change's title, runbook and version, outcome, the CIs its events touched,
the ledger seq and hash that prove the outcome, e.g.

    {"delivery": "7c1f...", "event": "change.completed", "seq": 57,
     "hash": "5b0c...", "at": "2026-12-06T03:12:09.123456Z", "actor": "alice",
     "change_id": "CHG-000012", "title": "VLAN 611", "runbook": "chg-test@1.0.0",
     "outcome": "completed", "inventory": "lab", "cis": ["lab-sw01", "lab-sw02"],
     "report_url": "https://reports.example.org/CHG-000012.html"}

and for a compliance result (`previous`: the CI's state before, None: none)

    {"delivery": "...", "event": "compliance.result", "seq": 80, "hash": "...",
     "at": "...", "actor": "cron", "ci": "lab-sw01", "state": "non-compliant",
     "previous": "compliant", "run": 79,
     "features": {"ntp": "compliant", "vlans": "non-compliant"}}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from opskit.ledger.store import EVENTS
from opskit.notify.events import COMPLIANCE_RESULT
from opskit.secrets import REDACTOR

if TYPE_CHECKING:
    from opskit.ledger.core import Batch
    from opskit.ledger.model import Event
    from opskit.policy import Writeback

FINISHED_KINDS = (
    "change.completed",
    "change.failed",
    "change.rolled_back",
    "change.partially_rolled_back",
)
CHANGE_ID_MARK = "{change_id}"


def route_kinds(entry: Writeback) -> frozenset[str]:
    """The ledger event kinds a `writeback:` entry is written."""
    kinds = set(FINISHED_KINDS)
    if entry.compliance != "none":
        kinds.add(COMPLIANCE_RESULT)
    return frozenset(kinds)


def wanted(entry: Writeback, event: Event, previous: str | None) -> bool:
    """Whether `event` gives `entry` a row: a compliance result with
    `compliance: journal` only when the CI's state changed (nothing else
    would be written)."""
    if event.kind not in route_kinds(entry):
        return False
    if event.kind == COMPLIANCE_RESULT and entry.compliance == "journal":
        return event.payload.get("state") != previous
    return True


def build_document(
    batch: Batch, event: Event, entry: Writeback, *, delivery: str, previous: str | None = None
) -> str:
    """The JSON body of `event`'s row for `entry` (see the module docstring);
    `previous`: a compliance result's CI's state before it."""
    document: dict[str, Any] = {
        "delivery": delivery,
        "event": event.kind,
        "seq": event.seq,
        "hash": event.hash,
        "at": event.at_text,
        "actor": event.actor,
    }
    if event.kind == COMPLIANCE_RESULT:
        document.update(_compliance(event, previous))
    else:
        document.update(_change(batch, event, entry))
    redacted = REDACTOR.redact_obj(document)
    return json.dumps(redacted, sort_keys=True, ensure_ascii=False, default=str)


def _change(batch: Batch, event: Event, entry: Writeback) -> dict[str, Any]:
    from opskit.changes.store import changes

    change_id = event.change_id or ""
    query = batch.ledger.sql(
        f"SELECT title, runbook_name, runbook_version, inventory FROM {changes.name} WHERE id = ?"
    )
    batch.cursor.execute(query, (change_id,))
    row = batch.cursor.fetchone()
    title, name, version, inventory = row if row is not None else (None, None, None, None)
    report = entry.report_url.replace(CHANGE_ID_MARK, change_id) if entry.report_url else None
    return {
        "change_id": change_id,
        "title": title,
        "runbook": f"{name}@{version}" if name else None,
        "outcome": event.kind.removeprefix("change."),
        "inventory": entry.inventory or inventory,
        "cis": touched_cis(batch, change_id, event.seq),
        "report_url": report,
    }


def touched_cis(batch: Batch, change_id: str, seq: int) -> list[str]:
    """The CIs the change's events up to `seq` name (the hosts it ran on)."""
    query = batch.ledger.sql(
        f"SELECT DISTINCT ci FROM {EVENTS} WHERE change_id = ? AND ci IS NOT NULL AND seq <= ?"
    )
    batch.cursor.execute(query, (change_id, seq))
    return sorted(str(row[0]) for row in batch.cursor.fetchall())


def _compliance(event: Event, previous: str | None) -> dict[str, Any]:
    payload = event.payload
    features = {
        str(f.get("feature")): f.get("state")
        for f in payload.get("features") or ()
        if isinstance(f, dict)
    }
    return {
        "ci": event.ci,
        "state": payload.get("state"),
        "previous": previous,
        "run": payload.get("run"),
        "features": features,
    }
