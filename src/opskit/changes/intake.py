"""Checks on a new change's input that must pass before a change number is
taken: every value fits the ledger, the window is not over, and which
runbook version a bare name resolved to."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from opskit.errors import ChangeError, LedgerError, RunbookError
from opskit.ledger.canonical import explain


def check_parameters_recordable(book: Any, parameters: Mapping[str, Any], ready: Any) -> None:
    """Each parameter's value as the ledger would store it (`ready`: the
    JSON-ready form of `parameters`) must be one it accepts (integers within
    ±(2**53-1), no U+0000): a RunbookError naming the parameter, never the
    ledger's own wording about its payload."""
    for name in parameters:
        try:
            explain(ready[name], name)
        except LedgerError as exc:
            where, _, problem = str(exc).partition(": ")
            raise RunbookError(
                f"{book.ref}: parameter '{where}': {problem} (the ledger records integers "
                "within ±(2**53-1) and text without U+0000)",
                field=f"params.{where}",
            ) from None


def check_recordable(payload: Mapping[str, Any]) -> None:
    """The whole `change.created` payload, before a number is allocated for it."""
    try:
        explain(dict(payload), "change")
    except LedgerError as exc:
        raise ChangeError(f"cannot record the change: {exc}") from None


def window_problem(
    start: datetime | None,
    end: datetime | None,
    now: datetime,
    names: tuple[str, str] = ("window_start", "window_end"),
) -> str | None:
    """Why a requested window is unusable, naming the option (`names`), or None.
    A window that has already ended could never be applied in; a start in the
    past with an end to come is fine (the window is open now)."""
    if start and end and end <= start:
        return f"{names[1]} {end.isoformat()}: must be after {names[0]} {start.isoformat()}"
    if end and end <= now:
        return (
            f"{names[1]} {end.isoformat()}: the window has already ended "
            f"(now {now.isoformat(timespec='seconds')})"
        )
    return None


def version_note(requested: str, book: Any) -> dict[str, str] | None:
    """For a runbook named without `@VERSION`: which version was taken (recorded)."""
    if "@" in requested:
        return None
    return {"requested": requested, "version": str(book.version), "rule": "newest version"}
