"""The durable outbox: notifications written with the ledger events that cause them.

`attach(ledger, ws)` gives a workspace's ledger a commit hook (`Ledger.commit_hooks`):
inside the transaction that appends events, after their rows are written and
before the commit, the hook writes one `notify_outbox` row per event and
webhook whose `events:` match it. A crash therefore never loses a
notification, and never leaves one for an event that did not commit. The
change engine knows nothing of this: every ledger opened for a workspace
(`Ledger.open`) has the hook, so events recorded by any subsystem are seen.

A `compliance.result` is notified as `compliance.changed` when the CI's
state differs from its previous result (or is its first). The policy's
`writeback:` entries are routes too: their rows carry the documents of
`opskit.notify.writeback` (finished changes, every compliance result).

Example row body (the document the sender posts, `build_document`):

    {"delivery": "7c1f...", "event": "change.approved", "seq": 42,
     "hash": "9f2c...", "prev_hash": "11ab...", "at": "2026-12-06T03:12:09.123456Z",
     "actor": "bob", "change_id": "CHG-0001", "ci": null,
     "summary": {"from": "assessed", "to": "approved", "comment": "fine"},
     "workspace": "lab", "origin": "opskit/lab/3b1f...",
     "proof": {"seq": 42, "hash": "9f2c...", "checkpoint": "..."}}
"""

from __future__ import annotations

import functools
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opskit.ledger.store import EVENTS
from opskit.notify import trigger, writeback
from opskit.notify.events import COMPLIANCE_CHANGED, COMPLIANCE_RESULT, expand
from opskit.notify.store import PENDING, outbox
from opskit.secrets import REDACTOR

if TYPE_CHECKING:
    from opskit.ledger.core import Batch, Ledger
    from opskit.ledger.model import Event
    from opskit.policy import Policy, Writeback
    from opskit.workspace import Workspace

# Summary values: scalars and short lists of scalars; longer text is cut.
MAX_TEXT = 300
MAX_ITEMS = 50
# Payload keys never summarised: references to stored content and run parameters.
SKIPPED_KEYS = frozenset({"blobs", "params", "parameters", "features"})
CHECKPOINT_HINT = (
    "a checkpoint whose tree size is at least seq covers this event: "
    "'opskit audit prove SEQ' gives its inclusion proof"
)


@dataclass(frozen=True)
class Route:
    """A webhook's URL and the event kinds it is told of; or, with
    `writeback`, a source of truth written back to (`opskit.notify.writeback`)."""

    url: str
    kinds: frozenset[str]
    writeback: Writeback | None = None


class OutboxHook:
    """The ledger commit hook of one workspace (see the module docstring)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._routes: list[Route] | None = None

    @property
    def routes(self) -> list[Route]:
        # Read at the first commit: read-only commands never load the policy here.
        if self._routes is None:
            policy = _notify_policy(self.ws)
            self._routes = [Route(h.url, expand(h.events)) for h in policy.notify]
            self._routes += [Route(w.url, writeback.route_kinds(w), w) for w in policy.writeback]
        return self._routes

    def __call__(self, batch: Batch) -> None:
        if not self.routes or not batch.events:
            return
        sql = batch.ledger.sql(
            f"INSERT INTO {outbox.name} (delivery_id, url, seq, kind, change_id, ci, body,"
            " state, attempts, next_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?)"
        )
        now = time.time()
        rows = []
        for event in batch.events:
            previous = (
                previous_compliance_state(batch, event) if event.kind == COMPLIANCE_RESULT else None
            )
            for route, kind, body in self._documents(batch, event, previous):
                delivery = str(uuid.uuid4())
                where = (route.url, event.seq, kind, event.change_id, event.ci)
                rows.append((delivery, *where, body(delivery), PENDING, now, now))
        if rows:
            batch.cursor.executemany(sql, rows)
            trigger.enqueued(self.ws)

    def _documents(
        self, batch: Batch, event: Event, previous: str | None
    ) -> Iterator[tuple[Route, str, Callable[[str], str]]]:
        """(route, notified kind, body for a delivery id) per matching route."""
        notified = self._notified(event, previous)
        for route in self.routes:
            entry = route.writeback
            if entry is not None and writeback.wanted(entry, event, previous):
                yield (
                    route,
                    event.kind,
                    functools.partial(_writeback_body, batch, event, entry, previous),
                )
            elif entry is None and notified is not None and notified[0] in route.kinds:
                kind, summary = notified
                yield (
                    route,
                    kind,
                    functools.partial(_webhook_body, self.ws, batch, event, kind, summary),
                )

    def _notified(self, event: Event, previous: str | None) -> tuple[str, dict[str, Any]] | None:
        if event.kind != COMPLIANCE_RESULT:
            return event.kind, summarize(event.payload)
        now = event.payload.get("state")
        if previous == now:
            return None
        return COMPLIANCE_CHANGED, {"from": previous, "to": now, "run": event.payload.get("run")}


def _writeback_body(
    batch: Batch, event: Event, entry: Writeback, previous: str | None, delivery: str
) -> str:
    return writeback.build_document(batch, event, entry, delivery=delivery, previous=previous)


def _webhook_body(
    ws: Workspace,
    batch: Batch,
    event: Event,
    kind: str,
    summary: dict[str, Any],
    delivery: str,
) -> str:
    return build_document(ws, batch.ledger, event, kind, summary, delivery=delivery)


def _notify_policy(ws: Workspace) -> Policy:
    """The workspace's policy as far as notification routes need it: the
    one already loaded, else the file without the default-inventory check
    (a missing inventory must not refuse an audit record)."""
    loaded = ws.__dict__.get("policy")  # `Workspace.policy` is a cached_property
    if loaded is not None:
        return loaded
    from opskit.policy import load_policy

    return load_policy(ws.policy_path)


def previous_compliance_state(batch: Batch, event: Event) -> str | None:
    """The state of the CI's `compliance.result` before `event` (None: none)."""
    sql = batch.ledger.sql(
        f"SELECT record FROM {EVENTS} WHERE kind = ? AND ci = ? AND seq < ?"
        " ORDER BY seq DESC LIMIT 1"
    )
    batch.cursor.execute(sql, (COMPLIANCE_RESULT, event.ci, event.seq))
    row = batch.cursor.fetchone()
    if row is None:
        return None
    state = json.loads(row[0]).get("payload", {}).get("state")
    return state if isinstance(state, str) else None


def summarize(payload: dict[str, Any]) -> dict[str, Any]:
    """The event payload's scalars (and short lists of them), redacted:
    what a ticketing system shows, never the configurations or parameters."""
    summary: dict[str, Any] = {}
    for key, value in payload.items():
        if key in SKIPPED_KEYS:
            continue
        if isinstance(value, list) and all(_scalar(v) for v in value):
            summary[key] = [_short(v) for v in value[:MAX_ITEMS]]
        elif _scalar(value):
            summary[key] = _short(value)
    redacted: dict[str, Any] = REDACTOR.redact_obj(summary)
    return redacted


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_TEXT:
        return value[:MAX_TEXT] + "…"
    return value


def build_document(
    ws: Workspace,
    ledger: Ledger,
    event: Event,
    kind: str,
    summary: dict[str, Any],
    *,
    delivery: str,
) -> str:
    """The JSON text posted for `event` (see the module docstring)."""
    document = {
        "delivery": delivery,
        "event": kind,
        "seq": event.seq,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
        "at": event.at_text,
        "actor": event.actor,
        "change_id": event.change_id,
        "ci": event.ci,
        "summary": summary,
        "workspace": ws.root.name,
        "origin": _origin(ledger),
        "proof": {"seq": event.seq, "hash": event.hash, "checkpoint": CHECKPOINT_HINT},
    }
    return json.dumps(document, sort_keys=True, ensure_ascii=False, default=str)


def _origin(ledger: Ledger) -> str | None:
    try:
        return ledger.origin
    except Exception:  # a ledger without a key still notifies
        return None


def attach(ledger: Ledger, ws: Workspace) -> None:
    """Gives `ledger` the outbox hook of `ws` (once)."""
    if not any(isinstance(hook, OutboxHook) for hook in ledger.commit_hooks):
        ledger.commit_hooks.append(OutboxHook(ws))
