"""A host's predicted diff as the change records it, and how it is told.

Three cases, kept apart everywhere (assess, apply --dry-run, the binding):
a diff (what would change); an empty diff, "no change needed" (everything is
already configured, or the runbook changes nothing); and no prediction, when
the connector cannot predict (or the dry run failed), with the reason. An
empty prediction is available and hashed like any other, so an approval binds
to "nothing to do" and apply is refused if that stops being true.
"""

from __future__ import annotations

from typing import Any

from opskit.changes.model import sha256_text
from opskit.secrets import REDACTOR

CANNOT_PREDICT = "the connector cannot predict a diff"


def entry_for(diff: str | None) -> dict[str, Any]:
    """The recorded entry for the executor's prediction (None: unknown)."""
    if diff is None:
        return unavailable(CANNOT_PREDICT)
    # A diff may carry a secret parameter's value: never stored, never hashed.
    text = REDACTOR.redact(diff)
    return {"available": True, "diff": text, "hash": sha256_text(text), "no_change": not text}


def unavailable(reason: str) -> dict[str, Any]:
    # Stored in the change row as well as the ledger: redacted here.
    return {"available": False, "reason": REDACTOR.redact(reason), "hash": None}


def without_host(message: str, host: str) -> str:
    """The reason without the leading "host: " that the caller prints anyway."""
    prefix = f"{host}: "
    while message.startswith(prefix):
        message = message[len(prefix) :]
    return message


def describe(entry: dict[str, Any]) -> str:
    """ "predicted diff", "no change needed (...)" or "cannot predict the diff (why)"."""
    if not entry.get("available"):
        return f"cannot predict the diff ({entry.get('reason') or CANNOT_PREDICT})"
    if entry.get("diff"):
        return "predicted diff"
    return "no change needed (the predicted diff is empty)"
