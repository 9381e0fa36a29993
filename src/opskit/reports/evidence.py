"""The evidence report of one change: everything an auditor asks for, from
the ledger alone.

`evidence_data(source, change_id) -> (data, rows)`: `data` holds the
request, the assessment (risk factors with points and reasons, impact,
owners informed), every approval with its signature re-verified
(`opskit.changes.audit.verify_approvals`) and what it bound, the window,
per host the configuration before, the commands sent with their outputs,
the diff, the verifications, any rollback with its proof and the closing
review; `rows` lists every record of the change with its verification
status and the checkpoint that covers it.

Example:
    >>> data, rows = evidence_data(source, "CHG-000002")
    >>> data["hosts"][0]["rollback"]["proof"]["equal"]
    True
    >>> rows[0]
    {'seq': 13, 'at': '2026-12-06T02:37:42.917730Z', 'kind': 'change.created',
     'actor': 'alice', 'ci': '', 'hash': '...', 'status': 'verified', 'checkpoint': 29}
"""

from __future__ import annotations

from typing import Any

from opskit.changes.audit import verify_approvals
from opskit.errors import LedgerError
from opskit.ledger import Event
from opskit.reports.collect import Source
from opskit.reports.model import ReportError

# Host events of a run, in the order they happen on a host.
RUN_KINDS = ("host.backup", "host.applied", "host.verified", "host.verify_failed")
ROLLBACK_KINDS = ("host.rolled_back", "host.rollback_failed", "host.not_restored")


def evidence_data(source: Source, change_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The evidence of `change_id`; ReportError when the ledger has no such change."""
    events = [e for e in source.events() if e.change_id == change_id]
    if not events or events[0].kind != "change.created":
        raise ReportError(f"change {change_id!r}: no such change in the ledger")
    record = source.changes()[change_id]
    data: dict[str, Any] = {
        "change": {
            "id": change_id,
            "state": record.state,
            "outcome": record.outcome,
            "title": record.title,
            "type": record.type,
        },
        "request": _request(events[0]),
        "assessment": _assessment(events),
        "approvals": _approvals(source, change_id, events),
        "window": _window(events),
        "run": _run(events),
        "hosts": [_host(source, ci, events) for ci in _hosts_in_order(events)],
        "review": _review(events),
    }
    rows = [_record_row(source, e) for e in events]
    data["records"] = {
        "count": len(rows),
        "verified": sum(1 for r in rows if r["status"] == "verified"),
        "covered": sum(1 for r in rows if r["checkpoint"] is not None),
    }
    return data, rows


def _request(created: Event) -> dict[str, Any]:
    payload = created.payload
    keys = (
        "description",
        "requester",
        "runbook",
        "runbook_digest",
        "selection",
        "inventory",
        "inventory_digest",
        "targets",
        "parameters",
        "tickets",
        "plan",
    )
    return {"at": created.at_text, "actor": created.actor, **{k: payload.get(k) for k in keys}}


def _last(events: list[Event], kind: str) -> Event | None:
    return next((e for e in reversed(events) if e.kind == kind), None)


def _assessment(events: list[Event]) -> dict[str, Any] | None:
    assessed = _last(events, "change.assessed")
    if assessed is None:
        return None
    payload = assessed.payload
    impact = payload.get("impact") or {}
    return {
        "at": assessed.at_text,
        "by": assessed.actor,
        "risk": payload.get("risk") or {},
        "impact": impact,
        "owners_informed": impact.get("owners") or [],
        "required": payload.get("required_approvals") or {},
        "predicted_diff": payload.get("predicted_diff") or {},
    }


def _approvals(source: Source, change_id: str, events: list[Event]) -> dict[str, Any]:
    checked = verify_approvals(source.ledger, change_id, _policy(source))
    by_seq = {entry["seq"]: entry for entry in checked["approvals"]}
    entries = []
    for event in events:
        if event.kind == "change.approval":
            entry = by_seq.get(event.seq, {})
            binding = event.payload.get("binding") or {}
            entries.append(
                {
                    "seq": event.seq,
                    "kind": "approval",
                    "at": event.at_text,
                    "approver": event.payload.get("approver"),
                    "roles": event.payload.get("roles") or [],
                    "comment": event.payload.get("comment"),
                    "signed": entry.get("signed", False),
                    "signature_valid": entry.get("signature_valid"),
                    "problems": entry.get("problems", []),
                    "binding_hash": event.payload.get("binding_hash"),
                    "binding": binding,
                }
            )
        elif event.kind in ("change.rejected", "change.retrospective_reviewed"):
            entries.append(
                {
                    "seq": event.seq,
                    "kind": "rejection" if event.kind == "change.rejected" else "retrospective",
                    "at": event.at_text,
                    "approver": event.actor,
                    "roles": [],
                    "comment": event.payload.get("reason") or event.payload.get("comment"),
                    "signed": False,
                    "signature_valid": None,
                    "problems": [],
                    "binding_hash": None,
                    "binding": {},
                }
            )
    return {"ok": checked["ok"], "problems": checked["problems"], "entries": entries}


def _policy(source: Source) -> Any:
    # The policy's keys make the check stronger; a workspace whose policy no
    # longer loads is still reported on, against the keys recorded.
    try:
        return source.ws.policy
    except Exception:
        return None


def _window(events: list[Event]) -> dict[str, Any]:
    scheduled = _last(events, "change.scheduled")
    created = events[0].payload
    payload = scheduled.payload if scheduled else {}
    return {
        "start": payload.get("window_start", created.get("window_start")),
        "end": payload.get("window_end", created.get("window_end")),
        "scheduled_at": scheduled.at_text if scheduled else None,
        "scheduled_by": scheduled.actor if scheduled else None,
        "freezes": payload.get("overlapping_freezes") or [],
    }


def _run(events: list[Event]) -> dict[str, Any] | None:
    started = _last(events, "change.started")
    if started is None:
        return None
    ends = [e for e in events if e.kind in _OUTCOMES and e.seq > started.seq]
    return {
        "started": started.at_text,
        "by": started.actor,
        "batches": started.payload.get("batches") or [],
        "strategy": started.payload.get("strategy") or [],
        "ended": ends[0].at_text if ends else None,
        "outcome": ends[-1].kind.removeprefix("change.") if ends else None,
        "cause": ends[-1].payload.get("cause") if ends else None,
    }


_OUTCOMES = frozenset(
    {"change.completed", "change.failed", "change.rolled_back", "change.partially_rolled_back"}
)


def _hosts_in_order(events: list[Event]) -> list[str]:
    seen: dict[str, None] = {}
    for event in events:
        if event.ci and not event.payload.get("dry_run"):
            seen.setdefault(event.ci)
    return list(seen)


def _host(source: Source, ci: str, events: list[Event]) -> dict[str, Any]:
    mine = [e for e in events if e.ci == ci and not e.payload.get("dry_run")]
    record = source.changes()[events[0].change_id or ""]
    host: dict[str, Any] = {
        "ci": ci,
        "status": record.hosts.get(ci, "not started"),
        "config_before": None,
        "steps": [],
        "diff": None,
        "verifications": [],
        "rollback": None,
        "errors": [],
    }
    for event in mine:
        payload = event.payload
        if event.kind == "host.backup":
            snapshot = payload.get("snapshot") or {}
            host["config_before"] = {
                "seq": event.seq,
                "hash": snapshot.get("hash"),
                "taken": snapshot.get("taken"),
                "files": _blobs(source, event.blobs),
            }
        elif event.kind in ("host.applied", "host.verified", "host.verify_failed"):
            steps = payload.get("steps") or ([payload["step"]] if payload.get("step") else [])
            for step in steps:
                host["steps"].append(_step(step))
                host["verifications"].extend(_expectations(step))
            if "diff" in event.blobs:
                host["diff"] = _blob_text(source, event.blobs["diff"])
        elif event.kind in ROLLBACK_KINDS:
            host["rollback"] = {
                "seq": event.seq,
                "result": event.kind.removeprefix("host."),
                "method": payload.get("method"),
                "proof": payload.get("proof") or {},
                "steps": [_step(s) for s in payload.get("steps") or []],
            }
        elif event.kind == "host.failed" and payload.get("error"):
            host["errors"].append(str(payload["error"]))
    return host


def _step(step: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": step.get("name"),
        "phase": step.get("phase"),
        "status": step.get("status"),
        "commands": step.get("commands") or [],
        "output": step.get("output") or "",
        "error": step.get("error"),
    }


def _expectations(step: dict[str, Any]) -> list[dict[str, Any]]:
    if step.get("phase") != "verify":
        return []
    return [
        {
            "step": step.get("name"),
            "description": e.get("description"),
            "passed": bool(e.get("passed")),
            "detail": e.get("detail"),
        }
        for e in step.get("expectations") or []
    ]


def _blobs(source: Source, refs: dict[str, str]) -> list[dict[str, Any]]:
    return [
        {"name": name, "hash": ref, "text": _blob_text(source, ref)}
        for name, ref in sorted(refs.items())
    ]


def _blob_text(source: Source, ref: str) -> str | None:
    """The blob as text; None when purged or not text (the hash stays shown)."""
    try:
        return source.ledger.get_blob(ref).decode("utf-8")
    except (LedgerError, UnicodeDecodeError):
        return None


def _review(events: list[Event]) -> dict[str, Any] | None:
    closed = _last(events, "change.closed")
    if closed is None:
        return None
    review = closed.payload.get("review")
    review = review if isinstance(review, dict) else {}
    return {
        "seq": closed.seq,
        "at": closed.at_text,
        "by": review.get("by") or closed.actor,
        "outcome": review.get("outcome"),
        "review": review.get("review"),
        "cause": review.get("cause"),
        "follow_ups": review.get("follow_ups") or [],
    }


def _record_row(source: Source, event: Event) -> dict[str, Any]:
    covering = source.status.covering(event.seq)
    return {
        "seq": event.seq,
        "at": event.at_text,
        "kind": event.kind,
        "actor": event.actor,
        "ci": event.ci or "",
        "hash": event.hash,
        "status": "verified" if source.status.verified else "not verified",
        "checkpoint": covering.seq if covering else None,
    }
