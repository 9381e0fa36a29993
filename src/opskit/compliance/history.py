"""Compliance history, derived from the ledger's ``compliance.result`` events.

Nothing is stored besides the results themselves: the history of a CI's
feature is the sequence of its recorded states, and a *transition* is a
result whose state differs from the previous known one (the first result
of a feature is a transition from nothing). ``unknown`` results (a device
unreachable, no backup) say nothing about the configuration: they are
left out of the transitions, so a feature is never shown as having changed
because a device did not answer.

Each transition names its *cause*: the changes opskit applied to the CI
between the two results (``host.applied`` events), or, when there was
none, ``outside opskit`` — a configuration changed by hand (or a
remediation applied outside the change process) shows up here, never as
silence.

Example:
    >>> [t.describe() for t in feature_history(ledger, ci="lab-sw01", feature="vlans")]
    ['2026-12-06T03:10:02Z lab-sw01 vlans: - -> non-compliant (first result)',
     '2026-12-06T03:12:40Z lab-sw01 vlans: non-compliant -> compliant (CHG-000004)']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opskit.compliance.results import State
from opskit.compliance.runs import RESULT_KIND

if TYPE_CHECKING:
    from opskit.ledger.core import Ledger
    from opskit.ledger.model import Event

APPLIED_KIND = "host.applied"
OUTSIDE = "outside opskit"


@dataclass(frozen=True)
class Transition:
    """A CI's feature changing state between two recorded results."""

    ci: str
    feature: str
    at: str
    seq: int
    before: str | None
    after: str
    before_seq: int | None
    source: str | None
    run_seq: int | None
    changes: tuple[str, ...] = ()

    @property
    def cause(self) -> str:
        if self.before is None:
            return "first result"
        return ", ".join(self.changes) if self.changes else OUTSIDE

    def describe(self) -> str:
        return (
            f"{self.at[:19]}Z {self.ci} {self.feature}: {self.before or '-'} -> {self.after} "
            f"({self.cause})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "feature": self.feature,
            "at": self.at,
            "seq": self.seq,
            "before": self.before,
            "after": self.after,
            "before_seq": self.before_seq,
            "source": self.source,
            "run_seq": self.run_seq,
            "changes": list(self.changes),
            "cause": self.cause,
        }


def result_events(ledger: Ledger, ci: str | None = None) -> Iterable[Event]:
    """The ``compliance.result`` events (of one CI), oldest first."""
    return ledger.events(ci=ci, kind=RESULT_KIND)


def applied_changes(ledger: Ledger, ci: str | None = None) -> dict[str, list[tuple[int, str]]]:
    """Per CI, the (seq, change id) of every change applied to it."""
    applied: dict[str, list[tuple[int, str]]] = {}
    for event in ledger.events(ci=ci, kind=APPLIED_KIND):
        if event.ci and event.change_id:
            applied.setdefault(event.ci, []).append((event.seq, event.change_id))
    return applied


def feature_history(
    ledger: Ledger,
    *,
    ci: str | None = None,
    feature: str | None = None,
    since: datetime | str | None = None,
) -> list[Transition]:
    """Every state transition (of one CI, one feature), oldest first; with
    `since`, those at or after it (the states before it still count)."""
    applied = applied_changes(ledger, ci)
    last: dict[tuple[str, str], tuple[str, int]] = {}
    transitions = []
    for event in result_events(ledger, ci):
        for item in event.payload.get("features") or []:
            name, state = item.get("feature"), item.get("state")
            if state == State.UNKNOWN or (feature is not None and name != feature):
                continue
            key = (event.ci or "", str(name))
            before = last.get(key)
            last[key] = (str(state), event.seq)
            if before is not None and before[0] == state:
                continue
            between = tuple(
                dict.fromkeys(
                    change
                    for seq, change in applied.get(key[0], [])
                    if before is not None and before[1] < seq < event.seq
                )
            )
            transitions.append(
                Transition(
                    ci=key[0],
                    feature=key[1],
                    at=event.at_text,
                    seq=event.seq,
                    before=before[0] if before else None,
                    after=str(state),
                    before_seq=before[1] if before else None,
                    source=event.payload.get("source"),
                    run_seq=event.payload.get("run"),
                    changes=between,
                )
            )
    if since is not None:
        floor = _since_text(since)
        transitions = [t for t in transitions if t.at >= floor]
    return transitions


def _since_text(since: datetime | str) -> str:
    from opskit.errors import UsageError
    from opskit.ledger.model import format_at

    try:
        moment = since if isinstance(since, datetime) else datetime.fromisoformat(since)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return format_at(moment)
    except (ValueError, OverflowError):  # not a date, or beyond what UTC can show
        raise UsageError(f"--since {since!r}: use an ISO date, e.g. 2026-12-01") from None


def latest_result(ledger: Ledger, ci: str) -> Event | None:
    """The CI's latest ``compliance.result`` event (None: never evaluated)."""
    latest = None
    for event in result_events(ledger, ci):
        latest = event
    return latest


def latest_feature_states(ledger: Ledger, ci: str) -> dict[str, tuple[str, int]]:
    """Per feature of `ci`: its latest known state and the result's seq
    (``unknown`` results do not replace a known state)."""
    states: dict[str, tuple[str, int]] = {}
    for event in result_events(ledger, ci):
        _fold_states(states, event)
    return states


def latest_feature_states_of(
    ledger: Ledger, cis: Iterable[str]
) -> dict[str, dict[str, tuple[str, int]]]:
    """`latest_feature_states` of each CI in `cis` (every one a key, {} when
    never evaluated), read in one pass over the results rather than one
    query per CI."""
    states: dict[str, dict[str, tuple[str, int]]] = {ci: {} for ci in cis}
    for event in result_events(ledger):
        if event.ci in states:
            _fold_states(states[event.ci], event)
    return states


def _fold_states(states: dict[str, tuple[str, int]], event: Event) -> None:
    for item in event.payload.get("features") or []:
        if item.get("state") != State.UNKNOWN or item.get("feature") not in states:
            states[str(item.get("feature"))] = (str(item.get("state")), event.seq)


__all__ = [
    "OUTSIDE",
    "Transition",
    "applied_changes",
    "feature_history",
    "latest_feature_states",
    "latest_feature_states_of",
    "latest_result",
]
