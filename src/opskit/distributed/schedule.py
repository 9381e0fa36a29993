"""Recurring read-only jobs on Celery beat: the policy's `schedules:` entries.

- `plan(ws) -> list[Entry]`: each schedule split over the queues of its CIs
  (their site, or the attribute `runner.queues.by` names, as for a change's
  hosts; a schedule's own `queue:` keeps it whole), after the checks that
  need the workspace: the selection selects a CI, every CI has a queue, and
  the job is read-only (`read_only_problem`). Each problem is one
  `PolicyError` naming `schedules[i]` and its field.
- `beat_schedule(entries)`: Celery beat's schedule (`celery.schedules.crontab`
  for `cron`, a `timedelta` for `every`); a message not started within one
  period expires: the worker drops it and records `schedule.skipped` (not
  started within one period), so a stopped worker runs no pile of late runs.
- `run_beat(ws, broker)`: runs Celery beat itself (`opskit schedule run`); it
  only sends messages, `[schedule name, queue]`: no selection, no secret.
- `run_scheduled(ws, name, queue)`: what a worker does with one message. It
  finds the entry in its *own* policy, takes the schedule's overlap lock
  (a PostgreSQL session advisory lock on `<name>@<queue>`; a file
  lock on SQLite) and calls the same API as the manual command
  (`take_backups`, `run_compliance`, `run_recorded_inspection`) with the actor
  `schedule:<name>`: the run is recorded exactly like a manual one (a
  compliance run's `trigger` also names the schedule). A run that overlaps
  the previous run of the same entry records `schedule.skipped` and runs
  nothing; a job refused by its API records `schedule.failed` with the one
  line.

Read-only is enforced twice: only the three job kinds exist (the policy
refuses any other), and each job's device actions are checked against the
action registry (`opskit.connectors.actions`) before it is planned and
again before it runs. A `commands` action counts as read-only only when
every command is a `show` command, and a Fabric `run` only when its step
declares `changes: false`; an inspection runbook with apply or rollback
steps is refused. (A compliance rule file may only name `show` commands:
its schema says so.)

Example:
    >>> [(e.key, e.job, e.selection) for e in plan(ws)]
    [('nightly@dc1', 'backup', '(group:core) and site:dc1'),
     ('nightly@dc2', 'backup', '(group:core) and site:dc2')]
    >>> run_scheduled(ws, "nightly", "dc1")
    {'schedule': 'nightly', 'queue': 'dc1', 'status': 'done', 'seqs': [41, 42]}
"""

from __future__ import annotations

import contextlib
import fcntl
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any, cast

from opskit.connectors.actions import BUILTIN, CONNECTOR_ACTIONS, ActionSpec
from opskit.errors import OpskitError, PolicyError
from opskit.policy import QUEUE_NAME
from opskit.secrets import REDACTOR

if TYPE_CHECKING:
    from opskit.inventory.model import CI
    from opskit.policy import Schedule
    from opskit.workspace import Workspace

SCHEDULED_TASK = "opskit.scheduled"
SKIPPED_KIND = "schedule.skipped"
FAILED_KIND = "schedule.failed"
OVERLAP_REASON = "the previous run of this schedule is still running"
EXPIRED_REASON = "not started within one period (the workers were busy or down)"
#: The registry actions each job kind may ask of a device (inspect: its runbook's steps).
JOB_ACTIONS: dict[str, tuple[ActionSpec, ...]] = {
    "backup": (BUILTIN["get_config"],),
    "compliance": (BUILTIN["get_config"], CONNECTOR_ACTIONS["napalm"]["getters"]),
    "inspect": (),
}
#: The read-only verb of IOS-like CLIs: a `commands` step of only these reads.
SHOW = re.compile(r"^\s*show\s", re.IGNORECASE)
# The class of the schedules' advisory locks (PostgreSQL's two-key form).
LOCK_CLASS = 0x5C4ED
# A queue name written into a selection term as it is (no quote, no glob).
PLAIN_QUEUE = re.compile(QUEUE_NAME)


def actor_of(name: str) -> str:
    """The ledger actor of a schedule's runs: `schedule:<name>`."""
    return f"schedule:{name}"


@dataclass(frozen=True)
class Entry:
    """One schedule on one queue: what beat sends and a worker runs."""

    schedule: Schedule
    queue: str
    selection: str | None
    cis: tuple[str, ...]

    @property
    def key(self) -> str:
        return f"{self.schedule.name}@{self.queue}"

    @property
    def job(self) -> str:
        return self.schedule.job

    @property
    def when(self) -> str:
        s = self.schedule
        return f"cron {s.cron}" if s.cron else f"every {s.every:g} s"

    def to_dict(self) -> dict[str, Any]:
        return {
            "entry": self.key,
            "schedule": self.schedule.name,
            "job": self.job,
            "queue": self.queue,
            "selection": self.selection,
            "when": self.when,
            "cis": list(self.cis),
        }


# -- planning ---------------------------------------------------------------------
def plan(ws: Workspace, name: str | None = None) -> list[Entry]:
    """Every schedule of the policy (or only the one called `name`) on each of
    its queues (see the module docstring)."""
    from opskit.inventory import load_workspace_inventory

    policy = ws.policy
    entries: list[Entry] = []
    if not policy.schedules:
        return entries
    inventory = load_workspace_inventory(ws)
    for index, schedule in enumerate(policy.schedules):
        if name is not None and schedule.name != name:
            continue  # a worker plans the one it runs: another's fault is not its own
        problem = read_only_problem(ws, schedule)
        if problem:
            raise _error(ws, index, "job", problem)
        base = schedule.select or _default_selection(ws, schedule)
        try:
            cis = _selected(ws, schedule, inventory.select(base))
        except OpskitError as exc:
            raise _error(ws, index, "select", str(exc)) from None
        if not cis:
            raise _error(ws, index, "select", f"{base or '*'!r} selects no CI")
        for entry in _split(ws, index, schedule, base, cis):
            # The recorded selection must say exactly which CIs the run covers.
            chosen = tuple(
                ci.name for ci in _selected(ws, schedule, inventory.select(entry.selection))
            )
            if chosen != entry.cis:
                message = (
                    f"no selection writes queue {entry.queue!r}'s CIs ({policy.runner.queues.by})"
                )
                raise _error(ws, index, "select", message)
            entries.append(entry)
    return entries


def _default_selection(ws: Workspace, schedule: Schedule) -> str | None:
    return _inspection_book(ws).targets.select if schedule.job == "inspect" else None


def _selected(ws: Workspace, schedule: Schedule, cis: list[CI]) -> list[CI]:
    if schedule.job != "inspect":
        return cis
    platforms = _inspection_book(ws).targets.platforms
    return [ci for ci in cis if not platforms or ci.platform in platforms]


def _split(
    ws: Workspace, index: int, schedule: Schedule, base: str | None, cis: list[CI]
) -> list[Entry]:
    if schedule.queue is not None:
        return [Entry(schedule, schedule.queue, base, tuple(ci.name for ci in cis))]
    queues = ws.policy.runner.queues
    by_queue: dict[str, list[str]] = {}
    for ci in cis:
        queue = _queue_of(ws, ci)
        if queue is None:
            message = f"{ci.name}: no queue ({queues.by} is missing and no runner.queues.default)"
            raise _error(ws, index, "select", message)
        if not PLAIN_QUEUE.match(queue):
            raise _error(ws, index, "select", f"{ci.name}: queue {queue!r} is not a plain name")
        by_queue.setdefault(queue, []).append(ci.name)
    names = sorted(by_queue)
    return [
        Entry(schedule, q, _queue_selection(base, q, names, queues.by, queues.default), tuple(c))
        for q, c in sorted(by_queue.items())
    ]


def _queue_of(ws: Workspace, ci: CI) -> str | None:
    from opskit.distributed.runner import CeleryRunner

    # One definition of a CI's queue, the change runner's: it reads only `by`
    # and `default`, which the policy's `runner.queues` holds.
    return CeleryRunner.queue_of(cast(Any, ws.policy.runner.queues), ci)


def _queue_selection(
    base: str | None, queue: str, queues: list[str], by: str, default: str | None
) -> str:
    """`base` narrowed to the CIs of `queue`, written in the selection
    language so that the record says which CIs the run covered."""
    key = "site:" if by == "site" else f"attr.{by}="
    if queue == default:  # also the CIs without the value: all but the other queues
        others = " or ".join(f"{key}{q}" for q in queues if q != queue)
        narrow = f"not ({others})" if others else ""
    else:
        narrow = f"{key}{queue}"
    if not narrow:
        return base or "*"
    return f"({base}) and {narrow}" if base else narrow


def _error(ws: Workspace, index: int, field: str, message: str) -> PolicyError:
    """A refusal naming the policy file, the line and `schedules[index].field`."""
    from opskit.yamlfile import load_yaml

    _data, locator = load_yaml(ws.policy_path)
    line = locator.line(("schedules", index, field)) or locator.line(("schedules", index))
    return PolicyError(message, file=ws.policy_path, line=line, field=f"schedules[{index}].{field}")


# -- read-only ----------------------------------------------------------------------
def read_only_problem(ws: Workspace, schedule: Schedule) -> str | None:
    """Why `schedule`'s job could change a device (None: it only reads)."""
    if schedule.job not in JOB_ACTIONS:
        return f"unknown job kind {schedule.job!r}"
    for spec in JOB_ACTIONS[schedule.job]:
        if spec.mutates:  # a declaration bug: the registry says this action changes devices
            return f"a {schedule.job} job would run {spec.name}, which changes the device"
    if schedule.job == "inspect":
        return _inspection_problem(ws)
    return None


def _inspection_book(ws: Workspace) -> Any:
    from opskit.reports.inspect import RUNBOOK
    from opskit.runbooks import RunbookCatalog

    return RunbookCatalog(ws).get(RUNBOOK)


def _inspection_problem(ws: Workspace) -> str | None:
    book = _inspection_book(ws)
    if book.apply or not isinstance(book.rollback, str):
        return f"runbook {book.ref} has apply or rollback steps: a schedule runs read-only jobs"
    for step in (*book.precheck, *book.verify):
        if _step_changes(step.connector, step.action, step.params):
            return (
                f"runbook {book.ref} step {step.name!r} runs {step.action}, which may change "
                "the device: a schedule runs read-only jobs only"
            )
    return None


def _step_changes(connector: str, action: str, params: Any) -> bool:
    spec = CONNECTOR_ACTIONS.get(connector, {}).get(action) or BUILTIN.get(action)
    if spec is None:
        return True
    if not spec.mutates:
        return False
    if action == "commands":
        commands = params.get("commands") or []
        return not commands or not all(isinstance(c, str) and SHOW.match(c) for c in commands)
    if connector == "fabric" and action == "run":
        return params.get("changes", True) is not False
    return True


# -- beat ----------------------------------------------------------------------------
def beat_schedule(entries: list[Entry]) -> dict[str, dict[str, Any]]:
    """Celery beat's `beat_schedule` for `entries`."""
    from celery.schedules import crontab

    table: dict[str, dict[str, Any]] = {}
    for entry in entries:
        s = entry.schedule
        when: Any = crontab.from_string(s.cron) if s.cron else timedelta(seconds=s.every or 0)
        table[entry.key] = {
            "task": SCHEDULED_TASK,
            "schedule": when,
            "args": [s.name, entry.queue],
            "options": {"queue": entry.queue, "expires": _period_s(when)},
        }
    return table


def _period_s(when: Any) -> float:
    """About one period of `when` (a timedelta, or a crontab's gap between two runs)."""
    if isinstance(when, timedelta):
        return when.total_seconds()
    now = datetime.now(UTC)
    # remaining_estimate(t): from now until the first run after t.
    first = when.remaining_estimate(now)
    second = when.remaining_estimate(now + first + timedelta(seconds=1))
    return float(max(1, round((second - first).total_seconds())))


def run_beat(ws: Workspace, broker: str, *, max_interval: float = 30.0) -> None:
    """Runs Celery beat with the policy's schedules until it is stopped; a
    broker that is not Redis's or does not answer at the start is one line
    (a Redis restart later is waited out)."""
    from celery.apps.beat import Beat

    from opskit.distributed.app import make_app, require_broker

    entries = plan(ws)
    app = make_app(broker)
    require_broker(app, broker)
    app.conf.beat_schedule = beat_schedule(entries)
    app.conf.timezone = "UTC"
    ws.state_dir.mkdir(parents=True, exist_ok=True)
    Beat(
        app=app,
        schedule=str(ws.state_dir / "beat-schedule"),
        max_interval=int(max(1, max_interval)),
        loglevel="WARNING",
        quiet=True,
    ).run()


# -- the worker's side ----------------------------------------------------------------
def register_tasks(app: Any, ws: Workspace) -> None:
    """Adds the scheduled-job task to a worker's Celery `app` for `ws`."""

    from celery.signals import task_revoked

    @app.task(name=SCHEDULED_TASK)  # type: ignore[untyped-decorator]
    def scheduled(name: str, queue: str) -> dict[str, Any]:
        return run_scheduled(ws, str(name), str(queue))

    def expired(sender: Any = None, request: Any = None, **info: Any) -> None:
        # `sender` is the worker's task object (`scheduled` is a proxy of it).
        if (
            getattr(sender, "name", None) != SCHEDULED_TASK
            or getattr(sender, "app", None) is not app
        ):
            return
        if info.get("expired") and request is not None:
            name, queue = (str(arg) for arg in request.args[:2])
            record_skip(ws, name, queue, EXPIRED_REASON)

    task_revoked.connect(expired, weak=False)
    del scheduled


class RunStatus(StrEnum):
    """What became of one due run of a schedule (not a host's state)."""

    DONE = "done"
    SKIPPED = "skipped"  # the previous run still held the entry's lock
    FAILED = "failed"


def run_scheduled(ws: Workspace, name: str, queue: str) -> dict[str, Any]:
    """Runs one schedule's job for `queue` (see the module docstring)."""
    result: dict[str, Any] = {"schedule": name, "queue": queue}
    job = None
    try:
        entry = _entry(ws, name, queue)
        job = entry.job
        with overlap_lock(ws, entry.key) as held:
            if not held:
                seq = record_skip(ws, name, queue, OVERLAP_REASON, job=job)
                return {**result, "status": RunStatus.SKIPPED, "seq": seq}
            return {**result, "status": RunStatus.DONE, "seqs": JOBS[job](ws, entry)}
    except OpskitError as exc:
        return _failed(ws, result, job, str(exc))
    except Exception as exc:  # any other fault is recorded too: no silent gap
        return _failed(ws, result, job, f"{type(exc).__name__}: {exc}")


def _failed(ws: Workspace, result: dict[str, Any], job: str | None, error: str) -> dict[str, Any]:
    """Records `schedule.failed` with the first line of `error` (redacted)."""
    lines = REDACTOR.redact(error).splitlines() or [""]
    reason = lines[0][:500]
    payload = {**result, "job": job, "error": reason}
    seq = _append(ws, FAILED_KIND, str(result["schedule"]), payload)
    return {**result, "status": RunStatus.FAILED, "error": reason, "seq": seq}


def record_skip(
    ws: Workspace, name: str, queue: str, reason: str, *, job: str | None = None
) -> int:
    """Records that a due run of schedule `name` on `queue` did not run, and why."""
    if job is None:
        job = next((s.job for s in ws.policy.schedules if s.name == name), None)
    payload = {"schedule": name, "queue": queue, "job": job, "reason": reason}
    return _append(ws, SKIPPED_KIND, name, payload)


def _append(ws: Workspace, kind: str, name: str, payload: dict[str, Any]) -> int:
    from opskit.ledger.core import Ledger

    return Ledger.open(ws).append(kind, actor=actor_of(name), payload=payload).seq


def _entry(ws: Workspace, name: str, queue: str) -> Entry:
    for entry in plan(ws, name):
        if entry.queue == queue:
            return entry
    raise PolicyError(
        f"no schedule {name!r} for queue {queue!r} in this worker's policy",
        file=ws.policy_path,
        field="schedules",
    )


@contextlib.contextmanager
def overlap_lock(ws: Workspace, key: str) -> Iterator[bool]:
    """Yields True while this process holds the lock of schedule entry `key`
    (False: another run holds it). PostgreSQL: a session advisory lock, gone
    with its connection when a worker dies; SQLite: a file lock."""
    if ws.engine.dialect.name == "postgresql":
        with _pg_lock(ws, key) as held:
            yield held
        return
    folder = ws.state_dir / "schedule-locks"
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / f"{key}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def _pg_lock(ws: Workspace, key: str) -> Iterator[bool]:
    from sqlalchemy import text

    # The two-key form: its lock space never meets the one-key locks of host claims.
    keys = {"c": LOCK_CLASS, "k": zlib.crc32(key.encode()) - 2**31}
    with ws.engine.connect() as connection:
        held = bool(connection.execute(text("SELECT pg_try_advisory_lock(:c, :k)"), keys).scalar())
        connection.commit()
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:c, :k)"), keys)
                connection.commit()


# -- the jobs: the manual commands' API ------------------------------------------------
def _backup(ws: Workspace, entry: Entry) -> list[int]:
    from opskit.backups import take_backups

    run = take_backups(ws, actor_of(entry.schedule.name), select=entry.selection)
    return [r.seq for r in run.results if r.seq is not None]


def _compliance(ws: Workspace, entry: Entry) -> list[int]:
    from opskit.compliance.runs import run_compliance

    run = run_compliance(
        ws,
        actor_of(entry.schedule.name),
        select=entry.selection,
        source=entry.schedule.source,
        trigger={"schedule": entry.schedule.name, "queue": entry.queue},
    )
    return [run.seq]


def _inspect(ws: Workspace, entry: Entry) -> list[int]:
    from opskit.reports import run_recorded_inspection

    name = entry.schedule.name
    result = run_recorded_inspection(
        ws, actor_of(name), select=entry.selection, params=entry.schedule.params
    )
    return [result.seq]


JOBS: dict[str, Callable[[Workspace, Entry], list[int]]] = {
    "backup": _backup,
    "compliance": _compliance,
    "inspect": _inspect,
}
