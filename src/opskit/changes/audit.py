"""Re-verifying a change's approvals from the ledger alone (for auditors)."""

from __future__ import annotations

from typing import Any

from opskit.changes.model import binding_hash
from opskit.changes.signing import verify_signature
from opskit.errors import ChangeError
from opskit.policy import Policy


def verify_approvals(ledger: Any, change_id: str, policy: Policy | None = None) -> dict[str, Any]:
    """Checks every approval of `change_id` recorded in the ledger: the binding
    document hashes to the recorded hash and names this change; a signature
    verifies over it with the approver's key (the policy's when given, else
    the key recorded with the approval); and what started is what was
    approved (runbook digest and targets). Reads the ledger only; raises
    ChangeError when it holds no event of the change. For example::

        {"change_id": "CHG-000001", "ok": True, "problems": [],
         "approvals": [{"seq": 4, "approver": "bob", "roles": ["cab"],
                        "binding_hash": "sha256:...", "signed": True,
                        "signature_valid": True, "problems": []}, ...]}
    """
    approvals: list[dict[str, Any]] = []
    problems: list[str] = []
    started: list[dict[str, Any]] = []
    events = list(ledger.events(change_id=change_id))
    if not events:
        # Nothing to check is not "verifies": a mistyped id must not look clean.
        raise ChangeError(f"no ledger events for change {change_id!r}")
    for event in events:
        payload = event.payload
        if event.kind == "change.approval":
            document = payload.get("binding") or {}
            entry: dict[str, Any] = {
                "seq": event.seq,
                "approver": payload.get("approver"),
                "roles": payload.get("roles"),
                "binding_hash": payload.get("binding_hash"),
                "signed": bool(payload.get("signature")),
                "signature_valid": None,
                "problems": [],
            }
            if binding_hash(document) != payload.get("binding_hash"):
                entry["problems"].append("the binding document does not match its recorded hash")
            if document.get("change_id") != change_id:
                entry["problems"].append(
                    f"the binding names {document.get('change_id')!r}, not {change_id}"
                )
            if event.actor != payload.get("approver"):
                entry["problems"].append(f"recorded by {event.actor}, not by the approver")
            key = payload.get("public_key")
            if policy is not None:
                person = policy.people.get(payload.get("approver") or "")
                policy_key = person.signing_key if person else None
                if key and policy_key and key != policy_key:
                    entry["problems"].append(
                        "the recorded public key is not the approver's key in the policy"
                    )
                key = policy_key or key
            if payload.get("signature"):
                entry["signature_valid"] = bool(key) and verify_signature(
                    key, document, payload["signature"]
                )
                if not entry["signature_valid"]:
                    entry["problems"].append("the signature does not verify")
            elif policy is not None and policy.require_signed_approvals:
                entry["problems"].append("unsigned, but the policy requires signed approvals")
            approvals.append(entry)
            problems.extend(
                f"approval seq {event.seq} by {entry['approver']}: {p}" for p in entry["problems"]
            )
        elif event.kind == "change.started":
            started.append({"seq": event.seq, "runbook_digest": payload.get("runbook_digest")})
    if started and approvals:
        digests = set()
        for event in events:
            if event.kind == "change.approval":
                digests.add(
                    ((event.payload.get("binding") or {}).get("runbook") or {}).get("digest")
                )
        for start in started:
            if start["runbook_digest"] and start["runbook_digest"] not in digests:
                problems.append(
                    f"seq {start['seq']}: ran runbook digest {start['runbook_digest']}, "
                    "which no approval covers"
                )
    return {
        "change_id": change_id,
        "ok": not problems,
        "approvals": approvals,
        "problems": problems,
    }
