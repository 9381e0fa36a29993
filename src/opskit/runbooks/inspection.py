"""The inspection (巡检) report and the backup log.

``build_report(runs, *, last_backups=None, backup_max_age_hours=24, now=None)
-> InspectionReport`` turns the `HostRun`s of the ``inspection`` runbook into
a report: per host, one finding per check (``exception``, ``unavailable`` when
the device cannot answer that check, or ``ok``), plus the age of the last
configuration backup when ``last_backups`` ({ci: datetime or None}) is given.
Hosts with exceptions come first, and within a host its exceptions come
first. ``InspectionReport.to_dict()`` / ``.to_json()`` / ``.to_markdown()``.

``run_inspection(runbook, cis, *, pool, params=None, recorder_for=None,
ledger=None, concurrency=None) -> (InspectionReport, list[HostRun])`` runs the
inspection runbook on many CIs (in parallel, at most the runbook's strategy
concurrency) and builds the report, with backup ages when a ledger is given.
``recorder_for(ci_name)`` returns the recorder of one host, when records are wanted.

``last_backup_times(ledger, names) -> {ci: datetime | None}`` and
``backup_log(ledger, since=None) -> list[dict]`` read the ``host.backup``
events of an `opskit.ledger.Ledger` (what the config-backup runbook and every
change's backup phase record).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opskit.inventory.model import CI
    from opskit.runbooks.executor import ConnectorPool

from opskit.hoststate import HostState
from opskit.runbooks.executor import HostRun, Recorder, run_host
from opskit.runbooks.model import Runbook

SEVERITY_ORDER = {"exception": 0, "unavailable": 1, "ok": 2}
#: The ledger events that are configuration backups of a CI.
BACKUP_KINDS = ("host.backup", "backup.taken")


@dataclass
class Finding:
    """One check on one host: `status` is `ok`, `exception` (the host does not
    meet it) or `unavailable` (nothing to check), e.g.
    `{"check": "ntp configured", "status": "exception", "detail": "..."}`.
    """

    check: str
    status: str  # exception | unavailable | ok
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "status": self.status, "detail": self.detail}


@dataclass
class HostInspection:
    """The findings on one host; `status` is `failed` when the host could not be
    inspected (`error`), `exception` when a check found one, else `ok`.
    """

    ci: str
    platform: str
    findings: list[Finding] = field(default_factory=list)
    error: str | None = None  # the host could not be inspected at all

    @property
    def exceptions(self) -> list[Finding]:
        return [f for f in self.findings if f.status == "exception"]

    @property
    def status(self) -> str:
        """failed (not inspected), exception (a finding), or ok."""
        if self.error:
            return HostState.FAILED
        if self.exceptions:
            return "exception"
        return HostState.OK

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "platform": self.platform,
            "status": str(self.status),
            "error": self.error,
            "exceptions": len(self.exceptions),
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass
class InspectionReport:
    """An inspection run over many hosts (read-only: nothing is changed).
    `summary()` counts them, e.g. `{"hosts": 3, "hosts_with_exceptions": 1,
    "hosts_failed": 0, "exceptions": 2, "unavailable_checks": 0}`.
    """

    generated: str
    hosts: list[HostInspection]

    @property
    def exceptions(self) -> list[tuple[str, Finding]]:
        return [(h.ci, f) for h in self.hosts for f in h.exceptions]

    def summary(self) -> dict[str, int]:
        return {
            "hosts": len(self.hosts),
            "hosts_with_exceptions": sum(1 for h in self.hosts if h.status == "exception"),
            "hosts_failed": sum(1 for h in self.hosts if h.status == HostState.FAILED),
            "exceptions": len(self.exceptions),
            "unavailable_checks": sum(
                1 for h in self.hosts for f in h.findings if f.status == "unavailable"
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "generated": self.generated,
            "summary": self.summary(),
            "exceptions": [{"ci": ci, **f.to_dict()} for ci, f in self.exceptions],
            "hosts": [h.to_dict() for h in self.hosts],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, ensure_ascii=False)

    def to_markdown(self) -> str:
        s = self.summary()
        out = [
            "# Inspection report (巡检报告)",
            "",
            f"Generated {self.generated}: {s['hosts']} host(s), "
            f"{s['hosts_with_exceptions']} with exceptions, {s['hosts_failed']} not inspected, "
            f"{s['exceptions']} exception(s), {s['unavailable_checks']} check(s) unavailable.",
            "",
            "## Exceptions",
            "",
        ]
        failed = [h for h in self.hosts if h.error]
        if not self.exceptions and not failed:
            out += ["None.", ""]
        else:
            out += ["| Host | Check | Detail |", "|---|---|---|"]
            for host in failed:
                out.append(f"| {host.ci} | (not inspected) | {_cell(host.error or '')} |")
            for ci, finding in self.exceptions:
                out.append(f"| {ci} | {finding.check} | {_cell(finding.detail)} |")
            out.append("")
        out += ["## All checks", ""]
        for host in self.hosts:
            out += [f"### {host.ci} ({host.platform}): {host.status}", ""]
            if host.error:
                out += [f"Not inspected: {host.error}", ""]
                continue
            out += ["| Check | Status | Detail |", "|---|---|---|"]
            out += [f"| {f.check} | {f.status} | {_cell(f.detail)} |" for f in host.findings]
            out.append("")
        return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")[:400]


def _host_findings(run: HostRun) -> list[Finding]:
    findings: dict[str, Finding] = {}
    for exc in run.exceptions:
        check = str(exc.get("check"))
        status = "unavailable" if exc.get("severity") == "unavailable" else "exception"
        previous = findings.get(check)
        if previous is None or SEVERITY_ORDER[status] < SEVERITY_ORDER[previous.status]:
            findings[check] = Finding(check, status, str(exc.get("detail", "")))
    for step in run.steps:
        check = step.check or step.name
        if step.phase != "verify" or check in findings:
            continue
        passed = [e.detail for e in step.expectations if e.passed]
        findings[check] = Finding(check, "ok", "; ".join(passed) or "ok")
    return list(findings.values())


def build_report(
    runs: Iterable[HostRun],
    *,
    last_backups: Mapping[str, datetime | None] | None = None,
    backup_max_age_hours: float = 24.0,
    now: datetime | None = None,
) -> InspectionReport:
    now = now or datetime.now(UTC)
    hosts: list[HostInspection] = []
    for run in runs:
        host = HostInspection(ci=run.ci, platform=run.platform)
        if not run.ok:
            host.error = run.error or str(run.status)
        host.findings = _host_findings(run)
        if last_backups is not None:
            host.findings.append(
                _backup_finding(last_backups.get(run.ci), now, backup_max_age_hours)
            )
        host.findings.sort(key=lambda f: SEVERITY_ORDER[f.status])
        hosts.append(host)
    hosts.sort(key=lambda h: (0 if h.error else 1 if h.exceptions else 2, h.ci))
    return InspectionReport(generated=now.isoformat(timespec="seconds"), hosts=hosts)


def _backup_finding(last: datetime | None, now: datetime, max_age_hours: float) -> Finding:
    if last is None:
        return Finding("backup_age", "exception", "no configuration backup in the ledger")
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    age_hours = (now - last).total_seconds() / 3600
    detail = f"last backup {last.isoformat(timespec='seconds')} ({age_hours:.1f} h ago)"
    if age_hours > max_age_hours:
        return Finding("backup_age", "exception", f"{detail}, older than {max_age_hours:g} h")
    return Finding("backup_age", "ok", detail)


def last_backup_times(ledger: Any, names: Iterable[str]) -> dict[str, datetime | None]:
    """The time of each CI's latest backup (None when none): a change's
    ``host.backup`` or a backup run's ``backup.taken`` (`opskit.backups`)."""
    wanted = set(names)
    latest: dict[str, datetime | None] = dict.fromkeys(wanted)
    for kind in BACKUP_KINDS:
        for event in ledger.events(kind=kind):
            known = latest.get(event.ci) if event.ci in wanted else None
            if event.ci in wanted and (known is None or event.at > known):
                latest[event.ci] = event.at
    return latest


def backup_log(ledger: Any, since: datetime | str | None = None) -> list[dict[str, Any]]:
    """Every configuration backup recorded in the ledger, oldest first."""
    log = []
    for event in ledger.events(kind="host.backup", since=since):
        snapshot = event.payload.get("snapshot", {}) or {}
        log.append(
            {
                "at": event.at.isoformat(),
                "ci": event.ci,
                "change_id": event.change_id,
                "actor": event.actor,
                "runbook": event.payload.get("runbook"),
                "hash": snapshot.get("hash"),
                "source": snapshot.get("source"),
                "files": snapshot.get("files"),
                "bytes": snapshot.get("bytes"),
                "blobs": event.blobs,
                "seq": event.seq,
            }
        )
    return log


def run_inspection(
    runbook: Runbook,
    cis: Sequence[CI],
    *,
    pool: ConnectorPool,
    params: Mapping[str, Any] | None = None,
    recorder_for: Callable[[str], Recorder] | None = None,
    ledger: Any = None,
    concurrency: int | None = None,
) -> tuple[InspectionReport, list[HostRun]]:
    """Inspects every CI and returns the report (exceptions first) and the runs."""
    values = runbook.validate_params(params or {})

    def one(ci: CI) -> HostRun:
        recorder = recorder_for(ci.name) if recorder_for is not None else None
        return run_host(runbook, ci, values, pool=pool, recorder=recorder)

    workers = max(1, min(concurrency or runbook.strategy.concurrency, len(cis) or 1))
    with ThreadPoolExecutor(max_workers=workers) as threads:
        runs = list(threads.map(one, cis))
    last = last_backup_times(ledger, [ci.name for ci in cis]) if ledger is not None else None
    max_age = float(values.get("backup_max_age_hours", 24))
    return build_report(runs, last_backups=last, backup_max_age_hours=max_age), runs
