"""The report document every renderer takes: what was computed, from which
ledger, for which period.

A `Report` is plain data (JSON-serialisable): `kind` names the report
(`change`, `changes`, `kpi`, `compliance`, `backups`, `inspection`),
`header` says where the figures come from, `data` holds the figures and
`rows` the one table a CSV export carries.

Example:
    >>> report.header.to_dict()
    {'workspace': '/srv/ops', 'generated': '2026-12-06T03:00:00+00:00',
     'since': '2026-11-01T00:00:00+00:00', 'until': '2026-12-01T00:00:00+00:00',
     'ledger': {'verified': True, 'problem': None, 'head_seq': 412,
                'head_hash': '9f2c...', 'checkpoint': {'seq': 400, ...}}}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from opskit.errors import OpskitError, UsageError

KINDS = ("change", "changes", "kpi", "compliance", "backups", "inspection")
FORMATS = ("md", "html", "json", "csv")
LANGUAGES = ("zh_CN", "en")
DEFAULT_DAYS = 30


class ReportError(OpskitError):
    """A report that cannot be made as asked (unknown change, unwritable place)."""


class ReportOptionError(ReportError, UsageError):
    """A report option with a value it cannot take (a period, a format, a
    language): a usage error, exit code 2 like every other one."""


@dataclass(frozen=True)
class Period:
    """[since, until): both aware UTC datetimes."""

    since: datetime
    until: datetime

    def contains(self, moment: datetime | None) -> bool:
        return moment is not None and self.since <= moment < self.until

    def to_dict(self) -> dict[str, str]:
        return {"since": self.since.isoformat(), "until": self.until.isoformat()}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> Period:
        return cls(datetime.fromisoformat(data["since"]), datetime.fromisoformat(data["until"]))


def parse_moment(option: str, text: str, *, end_of_day: bool = False) -> datetime:
    """An ISO 8601 date or date-time (no offset: UTC). A bare date given as
    `--until` means the end of that day (the whole day is in the period)."""
    try:
        if len(text.strip()) == 10:
            day = date.fromisoformat(text.strip())
            moment = datetime.combine(day, time(0), tzinfo=UTC)
            return moment + timedelta(days=1) if end_of_day else moment
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportOptionError(
            f"{option} {text!r}: use an ISO 8601 date or time, e.g. 2026-12-01 "
            "or 2026-12-01T22:00+01:00 (no offset: UTC)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def make_period(
    since: str | datetime | None, until: str | datetime | None, *, now: datetime | None = None
) -> Period:
    """The period of a report: `until` defaults to now, `since` to
    `DEFAULT_DAYS` days before `until`; `since` must come before `until`."""
    now = now or datetime.now(UTC)
    end = _moment("--until", until, end_of_day=True) if until is not None else now
    start = _moment("--since", since) if since is not None else end - timedelta(days=DEFAULT_DAYS)
    if start >= end:
        raise ReportOptionError(
            f"--since {start.isoformat()} is not before --until {end.isoformat()}: "
            "the period is empty"
        )
    return Period(start.astimezone(UTC), end.astimezone(UTC))


def _moment(option: str, value: str | datetime, *, end_of_day: bool = False) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    return parse_moment(option, value, end_of_day=end_of_day)


@dataclass
class CheckpointRef:
    """A signed checkpoint: record `seq` has hash `head`, signed by `key_id`."""

    seq: int
    head: str
    at: str
    actor: str
    key_id: str


@dataclass
class LedgerStatus:
    """The ledger a report was computed from, as verified before reading it."""

    verified: bool
    problem: str | None
    head_seq: int
    head_hash: str
    checkpoint: CheckpointRef | None = None
    # Every checkpoint, oldest first: which one covers a record.
    checkpoints: list[CheckpointRef] = field(default_factory=list)

    def covering(self, seq: int) -> CheckpointRef | None:
        """The first checkpoint whose signed head includes record `seq`."""
        return next((c for c in self.checkpoints if c.seq >= seq), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.verified,
            "problem": self.problem,
            "head_seq": self.head_seq,
            "head_hash": self.head_hash,
            "checkpoint": asdict(self.checkpoint) if self.checkpoint else None,
        }


@dataclass
class Header:
    workspace: str
    generated: str
    ledger: LedgerStatus
    period: Period | None = None
    language: str = "en"

    def to_dict(self) -> dict[str, Any]:
        return {
            "workspace": self.workspace,
            "generated": self.generated,
            **(self.period.to_dict() if self.period else {"since": None, "until": None}),
            "language": self.language,
            "ledger": self.ledger.to_dict(),
        }


@dataclass
class Report:
    """One computed report; see the module docstring."""

    kind: str
    header: Header
    data: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    # What a reader needs first, as a catalog key (`labels.NOTES`) and its
    # arguments: {"key": "no_changes", "args": {"since": ..., "until": ...}}.
    notes: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """False when the ledger did not verify (the CLI exits non-zero)."""
        return self.header.ledger.verified

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "header": self.header.to_dict(),
            "notes": self.notes,
            "data": self.data,
            "rows": self.rows,
        }
