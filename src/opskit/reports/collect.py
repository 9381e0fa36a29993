"""Reading a workspace's ledger for a report: verify it first, then fold
every change's events into a `ChangeRecord`.

`open_source(ws)` verifies the whole ledger (`Ledger.verify`) and returns a
`Source`: the ledger, its `LedgerStatus` (verified or the first problem,
head, checkpoints) and the workspace. `Source.changes()` rebuilds every
change from its events with `opskit.changes.replay` (the same fold the
change-table check uses) plus the times a report needs.

Example:
    >>> source = open_source(ws)
    >>> record = source.changes()["CHG-000002"]
    >>> record.state, record.outcome, record.hosts
    ('closed', 'rolled_back', {'lab-sw02': 'rolled_back'})
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from opskit.changes import replay
from opskit.ledger import Event, Ledger
from opskit.reports.model import CheckpointRef, Header, LedgerStatus, Period

if TYPE_CHECKING:
    from opskit.workspace import Workspace

# The states in which a change has run and ended (its outcome).
OUTCOME_KINDS = {
    "change.completed": "completed",
    "change.failed": "failed",
    "change.rolled_back": "rolled_back",
    "change.partially_rolled_back": "partially_rolled_back",
}
FAILED_OUTCOMES = frozenset({"failed", "rolled_back", "partially_rolled_back"})


@dataclass
class ChangeRecord:
    """A change as its ledger events tell it (see the module docstring)."""

    id: str
    expected: replay.Expected
    created: datetime
    submitted: datetime | None = None
    approved: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    closed: datetime | None = None
    outcome: str | None = None
    approvers: list[str] = field(default_factory=list)
    rolled_back_hosts: set[str] = field(default_factory=set)
    seqs: list[int] = field(default_factory=list)

    def column(self, name: str, default: Any = None) -> Any:
        return self.expected.columns.get(name, default)

    @property
    def title(self) -> str:
        return str(self.column("title", ""))

    @property
    def type(self) -> str:
        return str(self.column("type", "normal"))

    @property
    def state(self) -> str:
        return self.expected.state

    @property
    def targets(self) -> list[str]:
        return [str(t) for t in self.column("targets") or []]

    @property
    def runbook(self) -> str:
        name, version = self.column("runbook_name", ""), self.column("runbook_version", "")
        return f"{name}@{version}" if name else ""

    @property
    def tickets(self) -> list[str]:
        return [str(t) for t in self.column("tickets") or []]

    @property
    def risk(self) -> dict[str, Any]:
        risk = self.column("risk")
        return risk if isinstance(risk, dict) else {}

    @property
    def hosts(self) -> dict[str, str]:
        return {ci: status for ci, (status, _batch) in sorted(self.expected.hosts.items())}

    @property
    def implemented(self) -> bool:
        return self.started is not None

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return (self.finished - self.started).total_seconds()


@dataclass
class Source:
    """A verified ledger and its workspace, ready to report on."""

    ws: Workspace
    ledger: Ledger
    status: LedgerStatus
    _events: list[Event] | None = None
    _changes: dict[str, ChangeRecord] | None = None

    def events(self) -> list[Event]:
        """Every event, oldest first (read once)."""
        if self._events is None:
            self._events = list(self.ledger.reader().events())
        return self._events

    def header(self, period: Period | None, language: str) -> Header:
        return Header(
            workspace=str(self.ws.root),
            generated=datetime.now(UTC).isoformat(timespec="seconds"),
            ledger=self.status,
            period=period,
            language=language,
        )

    def changes(self) -> dict[str, ChangeRecord]:
        """Every change in the ledger by id, in the order they were created."""
        if self._changes is None:
            self._changes = fold_changes(self.events())
        return self._changes


def open_source(ws: Workspace) -> Source:
    """Opens and verifies the workspace's ledger (see the module docstring)."""
    ledger = Ledger.open(ws)
    report = ledger.verify()
    checkpoints = [
        CheckpointRef(c.seq, c.head, c.at, c.actor, c.key_id) for c in ledger.reader().checkpoints()
    ]
    status = LedgerStatus(
        verified=report.ok,
        problem=None if report.ok else _problem(report.first_bad_seq, report.problem),
        head_seq=report.head_seq,
        head_hash=report.head_hash,
        checkpoint=checkpoints[-1] if checkpoints else None,
        checkpoints=checkpoints,
    )
    return Source(ws=ws, ledger=ledger, status=status)


def _problem(seq: int | None, problem: str | None) -> str:
    return (f"seq {seq}: " if seq is not None else "") + (problem or "unknown problem")


def fold_changes(events: Iterable[Event]) -> dict[str, ChangeRecord]:
    """Folds the change events (in seq order) into `ChangeRecord`s."""
    records: dict[str, ChangeRecord] = {}
    for event in events:
        if not event.change_id:
            continue
        record = records.get(event.change_id)
        if record is None:
            if event.kind != "change.created":
                continue  # a fragment without its request: nothing to report on
            record = ChangeRecord(
                id=event.change_id,
                expected=replay.start(event.change_id, event.seq, event.payload),
                created=event.at,
            )
            records[event.change_id] = record
        else:
            replay.fold(
                record.expected, event.seq, event.kind, event.actor, event.ci, event.payload
            )
        record.seqs.append(event.seq)
        _times(record, event)
    return records


def _times(record: ChangeRecord, event: Event) -> None:
    kind = event.kind
    if kind == "change.submitted" and record.submitted is None:
        record.submitted = event.at
    elif kind == "change.approved":
        record.approved = event.at
        record.approvers = [str(a) for a in event.payload.get("approvers") or []]
    elif kind == "change.started" and record.started is None:
        record.started = event.at
    elif kind in OUTCOME_KINDS:
        record.outcome = OUTCOME_KINDS[kind]
        if record.finished is None:  # the rollout's end; a later rollback keeps it
            record.finished = event.at
    elif kind == "change.closed":
        record.closed = event.at
    elif kind == "host.rolled_back" and event.ci:
        record.rolled_back_hosts.add(event.ci)
