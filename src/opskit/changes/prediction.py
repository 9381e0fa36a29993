"""A host's predicted diff as the change records it, and how it is told.

Three cases, kept apart everywhere (assess, apply --dry-run, the binding):
a diff (what would change); an empty diff, "no change needed" (everything is
already configured, or the runbook changes nothing); and no prediction, when
the connector cannot predict (or the dry run failed), with the reason. An
empty prediction is available and hashed like any other, so an approval binds
to "nothing to do" and apply is refused if that stops being true.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opskit.digests import sha256_text
from opskit.errors import OpskitError
from opskit.secrets import REDACTOR

if TYPE_CHECKING:
    from opskit.connectors.pool import ConnectionPool
    from opskit.inventory.model import CI
    from opskit.runbooks.model import Runbook

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


@contextmanager
def open_pool(max_sessions: int) -> Iterator[ConnectionPool]:
    """The connectors' session pool, closed at the end (shared by the
    prediction and the rollout that follows it)."""
    from opskit.connectors.pool import ConnectionPool

    with ConnectionPool(max_sessions) as pool:
        yield pool


def predict_diffs(
    book: Runbook,
    cis: list[CI],
    params: Mapping[str, Any],
    *,
    concurrency: int | None = None,
    pool: ConnectionPool | None = None,
) -> dict[str, dict[str, Any]]:
    """Per host: the predicted diff and its hash ("" when nothing would
    change), or why none is available. Nothing on a device changes. With
    `pool`, its sessions are used (and stay open for the rollout that follows)."""
    # The executor (and the configuration machinery) only when a diff is predicted.
    from opskit.runbooks import executor

    width = max(1, min(concurrency or book.strategy.concurrency, len(cis) or 1))
    results: dict[str, dict[str, Any]] = {}
    with nullcontext(pool) if pool is not None else open_pool(width) as sessions:

        def one(ci: CI) -> tuple[str, dict[str, Any]]:
            try:
                return ci.name, entry_for(executor.predict_diff(book, ci, dict(params), sessions))
            except OpskitError as exc:
                return ci.name, unavailable(without_host(str(exc), ci.name))

        with ThreadPoolExecutor(max_workers=width) as threads:
            for name, entry in threads.map(one, cis):
                results[name] = entry
    return dict(sorted(results.items()))
