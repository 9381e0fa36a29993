"""The workspace policy, `opskit.yaml`: people and roles, approval rules,
change windows, freeze periods and concurrency caps.

This module only defines and loads the policy; the change engine
(`opskit.changes`) enforces it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, time
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from opskit.errors import OpskitError, PolicyError, ValidationError
from opskit.policy_check import (
    PolicyFile,
    check_finite,
    check_meaning,
    check_version,
    first_error,
    shape_error,
)
from opskit.yamlfile import load_yaml

# Whole numbers as written: no `true` for 1, no "5" or 5.0 (pydantic's lax mode takes them).
Count = Annotated[int, Field(ge=1, strict=True)]


class Role(StrEnum):
    REQUESTER = "requester"
    CHANGE_MANAGER = "change_manager"
    CAB = "cab"
    GOVERNANCE = "governance"
    IMPLEMENTER = "implementer"
    AUDITOR = "auditor"


class Risk(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Person(_Strict):
    roles: list[Role]
    name: str | None = None
    email: str | None = None
    # Base64 (raw 32 bytes) Ed25519 public key for signed approvals.
    signing_key: str | None = None


class ApprovalRule(_Strict):
    """`count` distinct people holding any of `roles` must approve."""

    roles: list[Role]
    count: Count = 1


class EmergencyRule(ApprovalRule):
    # Reviewed after the fact, before the change may be closed.
    retrospective: ApprovalRule = ApprovalRule(roles=[Role.CAB], count=1)


class StandardChange(_Strict):
    """A runbook version pre-approved by digest: runs without CAB approval."""

    runbook: str
    version: str
    digest: Annotated[str, Field(pattern=r"^sha256:[0-9a-f]{64}$")]


class Approvals(_Strict):
    low: ApprovalRule = ApprovalRule(roles=[Role.CHANGE_MANAGER], count=1)
    medium: ApprovalRule = ApprovalRule(roles=[Role.CAB], count=2)
    high: ApprovalRule = ApprovalRule(roles=[Role.GOVERNANCE], count=1)
    emergency: EmergencyRule = EmergencyRule(roles=[Role.CHANGE_MANAGER], count=1)
    # Standard changes still need someone to say "go"; by default nobody.
    standard: ApprovalRule | None = None


_DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class ChangeWindow(_Strict):
    """A recurring window: on `days`, from `start` to `end` local time.
    An `end` at or before `start` means the window runs past midnight."""

    name: str
    timezone: str = "UTC"
    days: Annotated[list[str], Field(min_length=1)] = list(_DAYS)
    start: time
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _quoted_time(cls, value: Any) -> Any:
        # YAML reads an unquoted 22:00 as the number 1320 (base 60), which
        # pydantic would take as 1320 seconds: 00:22.
        if not isinstance(value, str | time):
            raise ValueError(f'must be a time of day in quotes, e.g. "22:00" (got {value!r})')
        return value

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @field_validator("days")
    @classmethod
    def _known_days(cls, value: list[str]) -> list[str]:
        bad = [d for d in value if d.lower()[:3] not in _DAYS]
        if bad:
            raise ValueError(f"unknown day(s) {bad}; use {', '.join(_DAYS)}")
        return [d.lower()[:3] for d in value]


class Freeze(_Strict):
    """A freeze / blackout period. Emergency changes may override it only
    with the approvals named in `emergency_override`."""

    name: str
    start: datetime
    end: datetime
    reason: str | None = None
    emergency_override: ApprovalRule | None = None

    @field_validator("start", "end", mode="before")
    @classmethod
    def _no_timestamp(cls, value: Any) -> Any:
        # pydantic would take a number as seconds since 1970.
        if not isinstance(value, str | datetime):
            raise ValueError(
                f'must be a date and time with an offset, e.g. "2026-12-20T00:00:00+01:00"'
                f" (got {value!r})"
            )
        return value

    @model_validator(mode="after")
    def _ordered(self) -> Freeze:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a timezone offset")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class ConcurrencyCap(_Strict):
    """At most `max_changing` CIs of `group` in flight at once, across changes."""

    group: str
    max_changing: Count


Percent = Annotated[float, Field(ge=0, le=100)]
Hours = Annotated[float, Field(gt=0)]


class KpiTargets(_Strict):
    """Targets the KPI report marks each figure against (docs/reports.md):
    rates in percent, times as the 90th percentile in hours. None: no target."""

    change_success_rate: Percent | None = None  # at least
    changes_caused_failures: Annotated[int, Field(ge=0, strict=True)] | None = None  # at most
    rollback_rate: Percent | None = None  # at most
    emergency_share: Percent | None = None  # at most
    approval_lead_time_hours: Hours | None = None  # p90 at most
    time_to_implement_hours: Hours | None = None  # p90 at most
    compliance_rate: Percent | None = None  # at least
    cmdb_accuracy: Percent | None = None  # at least


class ComplianceSettings(_Strict):
    """How a compliance remediation is filed (`opskit compliance remediate`):
    its change type, and the features whose remediation is a high-risk
    change (it then uses the runbook `config-lines-high`, whose declared
    high risk is the floor of the change's risk)."""

    remediation_type: Literal["normal", "emergency"] = "normal"
    high_risk_features: list[str] = []


class Webhook(_Strict):
    """One `notify:` entry: where to POST the matching ledger events
    (`opskit.notify`), signed with the secret the reference names."""

    url: str
    events: Annotated[list[str], Field(min_length=1)] = ["change", "compliance"]
    # Any: pydantic's own type error would echo a plain-text secret.
    secret: Any
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=1000, strict=True)] = 12

    @field_validator("url")
    @classmethod
    def _webhook_url(cls, value: str) -> str:
        return _checked_url(value, "a webhook URL")

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        from opskit.notify.events import event_problem

        for name in value:
            problem = event_problem(name)
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: Any) -> dict[str, Any]:
        return _secret_reference(value, "secret")


def _named_twice(names: Iterable[str]) -> str | None:
    """The first of `names` that comes again (None: each comes once)."""
    seen: set[str] = set()
    for name in names:
        if name in seen:
            return name
        seen.add(name)
    return None


def _checked_url(value: str, what: str) -> str:
    """`value` if it is a URL opskit may post to (`url_problem`), else a
    ValueError that names it as `what` (e.g. "a write-back URL")."""
    from opskit.notify.events import url_problem

    problem = url_problem(value, what)
    if problem:
        raise ValueError(problem)
    return value


def _secret_reference(value: Any, where: str) -> dict[str, Any]:
    """`value` as a secret reference (checked, never resolved), else a ValueError."""
    from opskit.secrets import SecretRef

    try:
        SecretRef.parse(value, where=where)
    except OpskitError as exc:
        raise ValueError(str(exc)) from None
    return dict(value)


class Writeback(_Strict):
    """One `writeback:` entry: a source of truth told of finished changes
    and compliance results through the notification outbox
    (`opskit.notify.writeback`, docs/source-of-truth.md)."""

    source: Literal["nautobot"] = "nautobot"
    url: str
    token: Any  # a secret reference (checked; never the token)
    # The inventory whose `attributes.source_id` name the objects (default:
    # the change's own); a CI without one is looked up by name.
    inventory: str | None = None
    # A link to the evidence report, e.g. https://reports.example.org/{change_id}.html
    report_url: str | None = None
    last_change_field: StrictBool = False
    compliance: Literal["journal", "custom_field", "both", "none"] = "journal"
    timeout: Annotated[float, Field(gt=0, le=300)] = 10.0
    max_attempts: Annotated[int, Field(ge=1, le=1000, strict=True)] = 12

    @field_validator("url", "report_url")
    @classmethod
    def _url(cls, value: str | None, info: ValidationInfo) -> str | None:
        what = "a write-back URL" if info.field_name == "url" else "a report URL"
        return value if value is None else _checked_url(value, what)

    @field_validator("token")
    @classmethod
    def _token(cls, value: Any) -> dict[str, Any]:
        return _secret_reference(value, "token")


class Witness(_Strict):
    """A C2SP tlog witness that cosigns the ledger's checkpoints
    (docs/witnesses.md): its name, URL prefix and cosigner vkey."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")]
    url: Annotated[str, Field(pattern=r"^https?://[^\s]+$")]
    vkey: Annotated[str, Field(pattern=r"^[^\s+]+\+[0-9a-f]{8}\+[A-Za-z0-9+/=]+$")]


# A Celery queue's name: also a lock file's name and a selection term as it is.
QUEUE_NAME = r"^[A-Za-z0-9_.@-]{1,100}$"


class RunnerQueues(_Strict):
    """How a CI's Celery queue is chosen: its `site` or an attribute; `default` otherwise."""

    by: Annotated[str, Field(min_length=1)] = "site"
    default: Annotated[str, Field(pattern=QUEUE_NAME)] | None = None


class RunnerPolicy(_Strict):
    """Where a change's hosts run (docs/distributed.md): `thread` (this process,
    the default), `process` (`processes` worker processes on this machine,
    default one per usable core) or `celery` (workers behind the Redis `broker`)."""

    kind: Literal["thread", "process", "celery"] = "thread"
    processes: Annotated[int, Field(ge=1, le=256)] | None = None
    broker: Annotated[str, Field(pattern=r"^rediss?://")] | None = None
    queues: RunnerQueues = RunnerQueues()
    wait_for_worker_s: Annotated[float, Field(ge=0, le=3600)] = 10.0


class Schedule(_Strict):
    """A recurring read-only job run by Celery beat (`opskit schedule run`,
    docs/distributed.md): a backup, compliance run or inspection of the CIs
    `select` names, on a `cron` expression (five fields, UTC) or `every` N
    seconds. Without `queue` the job goes to each selected CI's site queue."""

    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    job: Literal["backup", "compliance", "inspect"]
    select: Annotated[str, Field(min_length=1)] | None = None
    cron: str | None = None
    every: Annotated[float, Field(ge=1, le=31 * 86400)] | None = None
    queue: Annotated[str, Field(pattern=QUEUE_NAME)] | None = None
    source: Literal["live", "backup"] = "live"  # compliance only
    params: dict[str, Any] = {}  # inspect only: the inspection runbook's thresholds

    @field_validator("select")
    @classmethod
    def _selection(cls, value: str | None) -> str | None:
        from opskit.inventory.select import compile_selection

        if value is not None:
            try:
                compile_selection(value)
            except OpskitError as exc:
                raise ValueError(str(exc)) from None
        return value

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            problem = cron_problem(value)
            if problem:
                raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _one_timing(self) -> Schedule:
        if (self.cron is None) == (self.every is None):
            raise ValueError("give either cron (five fields) or every (seconds), not both")
        if self.params and self.job != "inspect":
            raise ValueError(f"params are for inspect jobs, not {self.job}")
        if self.source != "live" and self.job != "compliance":
            raise ValueError(f"source is for compliance jobs, not {self.job}")
        return self


def cron_problem(text: str) -> str | None:
    """Why `text` is not a five-field cron expression (None: it is one);
    Celery's own parser (`crontab.from_string`) decides when it is installed."""
    fields = text.split()
    if len(fields) != 5:
        return f"cron {text!r}: needs five fields (minute hour day month weekday)"
    try:
        from celery.schedules import ParseException, crontab
    except ImportError:  # without the distributed extra nothing runs a schedule
        return None
    try:
        crontab.from_string(" ".join(fields))
    except (ParseException, ValueError, KeyError, IndexError) as exc:
        return f"cron {text!r}: {exc}"
    return None


class Policy(_Strict):
    version: Annotated[int, Field(strict=True)] = 1
    # The inventory (folder under inventories/) commands use by default.
    inventory: str = "example"
    people: dict[str, Person] = {}
    approvals: Approvals = Approvals()
    standard_changes: list[StandardChange] = []
    require_signed_approvals: StrictBool = False
    # No windows means "any time"; with windows, normal changes must fall inside one.
    windows: list[ChangeWindow] = []
    freezes: list[Freeze] = []
    concurrency: list[ConcurrencyCap] = []
    # Retention of purgeable blob content (configurations, outputs), in days.
    # At most 100 years: larger values overflow date arithmetic.
    retention_days: Annotated[int, Field(ge=1, le=36500, strict=True)] | None = None
    # The origin line of the ledger's checkpoints (a C2SP note key name: no
    # space, no "+"); default opskit/<workspace folder>/<log key id>.
    log_origin: Annotated[str, Field(pattern=r"^[^\s+]{1,200}$")] | None = None
    # Reports (opskit.reports): the figures' targets and the default language.
    kpi_targets: KpiTargets = KpiTargets()
    report_language: Literal["zh_CN", "en"] | None = None
    # How compliance remediation changes are filed (opskit.compliance.remediate).
    compliance: ComplianceSettings = ComplianceSettings()
    # Webhooks told of ledger events (opskit.notify).
    notify: list[Webhook] = []

    @field_validator("notify")
    @classmethod
    def _one_entry_per_url(cls, value: list[Webhook]) -> list[Webhook]:
        url = _named_twice(hook.url for hook in value)
        if url is not None:
            raise ValueError(f"{url} is named twice (list all its events in one entry)")
        return value

    # Sources of truth written back to through the same outbox (opskit.notify.writeback).
    writeback: list[Writeback] = []

    @model_validator(mode="after")
    def _one_route_per_url(self) -> Policy:
        url = _named_twice([h.url for h in self.notify] + [e.url for e in self.writeback])
        if url is not None:
            raise ValueError(f"writeback: {url} is named twice (in notify or writeback)")
        return self

    # Witnesses asked to cosign every checkpoint, and how many cosignatures a
    # checkpoint needs (fewer: a warning on it, never a lost record).
    witnesses: list[Witness] = []
    witness_quorum: Annotated[int, Field(ge=0, strict=True)] = 0

    @model_validator(mode="after")
    def _witness_quorum(self) -> Policy:
        names = [w.name for w in self.witnesses]
        if len(set(names)) != len(names):
            raise ValueError("witnesses: a witness name is listed twice")
        if self.witness_quorum > len(names):
            raise ValueError(
                f"witness_quorum {self.witness_quorum} exceeds the {len(names)} witnesses"
            )
        return self

    runner: RunnerPolicy = RunnerPolicy()
    # Recurring read-only jobs (opskit.distributed.schedule).
    schedules: list[Schedule] = []

    @field_validator("schedules")
    @classmethod
    def _unique_schedules(cls, value: list[Schedule]) -> list[Schedule]:
        name = _named_twice(entry.name for entry in value)
        if name is not None:
            raise ValueError(f"schedule {name!r} is named twice")
        return value

    def roles_of(self, person: str) -> set[Role]:
        entry = self.people.get(person)
        return set(entry.roles) if entry else set()

    def people_with(self, roles: Iterable[Role]) -> list[str]:
        """Everyone holding at least one of `roles`, sorted."""
        wanted = set(roles)
        return sorted(p for p, person in self.people.items() if wanted & set(person.roles))


DEFAULT_POLICY_YAML = """\
# opskit policy: who may do what, and when. Schema: opskit/schemas/policy.json
version: 1
inventory: example

people:
  alice: {roles: [requester, implementer], name: Alice Engineer}
  bob: {roles: [change_manager, cab], name: Bob Manager}
  carol: {roles: [cab], name: Carol Security}
  dave: {roles: [governance], name: Dave Director}
  erin: {roles: [auditor], name: Erin Auditor}
  ci-bot: {roles: [requester, implementer], name: CI pipeline}

approvals:
  low: {roles: [change_manager], count: 1}
  medium: {roles: [cab], count: 2}
  high: {roles: [governance], count: 1}
  emergency:
    roles: [change_manager]
    count: 1
    retrospective: {roles: [cab], count: 1}

standard_changes: []
require_signed_approvals: false

# Normal changes run inside a window; none listed means any time.
windows: []
#  - {name: nightly, timezone: Europe/Berlin, days: [mon, tue, wed, thu, fri],
#     start: "22:00", end: "05:00"}

freezes: []
#  - {name: year-end, start: "2026-12-20T00:00:00+01:00", end: "2027-01-04T00:00:00+01:00",
#     emergency_override: {roles: [governance], count: 1}}

concurrency:
  - {group: core, max_changing: 1}
"""


def policy_json_schema() -> dict[str, Any]:
    return Policy.model_json_schema()


def load_policy(path: Path, *, inventories_dir: Path | None = None) -> Policy:
    """Reads and checks `opskit.yaml`; any fault is one PolicyError naming the
    file, the line and the field. With `inventories_dir`, the default
    inventory must be a folder in it."""
    try:
        data, locator = load_yaml(path)
    except ValidationError as exc:
        raise PolicyError(_detail(exc), file=exc.file, line=exc.line) from None
    doc = PolicyFile(path, data, locator)
    if data is None or data == {}:
        raise doc.error(
            "the policy is empty: it must list at least the people and their roles"
            " ('opskit init --force' writes a starter policy)"
        )
    if not isinstance(data, dict):
        raise doc.error("the policy must be a mapping of version, people, approvals, ...")
    check_finite(doc)
    check_version(doc)
    try:
        policy = Policy.model_validate(data)
    except PydanticValidationError as exc:
        raise shape_error(doc, first_error(exc.errors()), Policy) from None
    check_meaning(doc, policy, inventories_dir)
    return policy


def _detail(exc: ValidationError) -> str:
    """The message of `exc` without its "file:line: " prefix."""
    where = (exc.file or "") + (f":{exc.line}" if exc.file and exc.line else "")
    text = str(exc)
    return text[len(where) + 2 :] if where and text.startswith(f"{where}: ") else text


# -- evaluation helpers (used by the change engine) --------------------------
def window_contains(window: ChangeWindow, moment: datetime) -> bool:
    """True when the aware datetime `moment` falls inside the recurring `window`.

    The window is evaluated in its own timezone; one that runs past midnight
    belongs to the day it starts on (Monday 22:00-05:00 covers Tuesday 03:00).
    """
    if moment.tzinfo is None:
        raise ValueError("moment needs a timezone")
    local = moment.astimezone(ZoneInfo(window.timezone))
    clock = local.time().replace(tzinfo=None)
    today = _DAYS[local.weekday()]
    yesterday = _DAYS[(local.weekday() - 1) % 7]
    if window.start < window.end:
        return today in window.days and window.start <= clock < window.end
    # Past midnight: the evening part today, or the morning part of yesterday's window.
    return (today in window.days and clock >= window.start) or (
        yesterday in window.days and clock < window.end
    )


def open_window(policy: Policy, moment: datetime) -> ChangeWindow | None:
    """The policy window open at `moment`, or None (also None without windows)."""
    return next((w for w in policy.windows if window_contains(w, moment)), None)


def active_freezes(policy: Policy, moment: datetime) -> list[Freeze]:
    """The freeze periods in force at the aware datetime `moment`."""
    return [f for f in policy.freezes if f.start <= moment < f.end]


def people_with(policy: Policy, roles: list[Role] | set[Role]) -> list[str]:
    """Everyone holding at least one of `roles`, sorted."""
    return policy.people_with(roles)
