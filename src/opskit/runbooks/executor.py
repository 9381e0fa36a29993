"""The per-host executor: one runbook on one CI.

Public API (the change engine, `opskit.changes`, drives it per host and
per batch; this module knows nothing of change requests, approvals or
strategy):

``run_host(runbook, ci, params, *, pool, recorder=None, dry_run=False,
rollback_mode="on_failure", templates_dir=None) -> HostRun``

    precheck → backup snapshot → apply → verify → (on failure) rollback →
    verify the rollback. ``params`` are the change's validated parameters
    (`Runbook.validate_params`); secret parameters are references, resolved
    here and registered for redaction. ``pool`` is an
    `opskit.connectors.pool.ConnectionPool` (``pool.session(ci, name)``); the
    run holds one session per connector until the host is done; the caller
    closes the pool. ``rollback_mode``: "on_failure" rolls the host back
    when apply or verify fails; "never" leaves it failed (the caller
    decides, e.g. strategy ``stop``).

    ``recorder(kind, payload, blobs)`` is called at each step boundary with
    kind one of ``host.precheck``, ``host.backup``, ``host.applied``,
    ``host.verified``, ``host.verify_failed``, ``host.rolled_back``,
    ``host.rollback_failed``, ``host.failed`` (and ``host.dry_run`` for dry
    runs, ``host.confirmed`` after a commit-confirm was confirmed). Payloads
    are JSON-ready dicts: ``steps`` (each with commands, outputs from the
    connector transcripts, diff, timings, status, expectation results),
    ``diff``, ``config_hash``, ``proof``...; ``blobs`` maps a name to content
    (the snapshot "config" or "file:/etc/x"; "diff"). The backup snapshot is
    recorded (``host.backup``) BEFORE any apply step runs. Everything passed
    to the recorder is redacted of registered secrets first.

    With ``dry_run=True`` nothing on a device changes: ``config`` steps ask
    the connector for its predicted diff (``apply_config(dry_run=True)``) or,
    when it cannot predict, compute one with hier_config from the running
    configuration; ``perform`` steps run in check mode where the connector has
    ``check_mode`` and are otherwise skipped; precheck/verify are not run.

``predict_diff(runbook, ci, params, pool) -> str | None``
    The predicted diff of the apply phase (a dry run), None when no
    connector of the runbook can predict one for this CI.

``rollback_host(runbook, ci, snapshot, pool, recorder=None, params=None) -> HostRun``
    Rolls a host back to a snapshot taken by an earlier run (``opskit change
    rollback`` of a completed change), with the same proof as an automatic
    rollback. ``snapshot``: a `Snapshot` (``Snapshot.from_blobs`` rebuilds one
    from the ledger's blobs; pass ``absent=`` the snapshot's "absent" files),
    the configuration text, or None when the runbook took no snapshot of
    this platform (its explicit rollback steps run, with no proof).

`HostRun` (``.to_dict()``): ``ci``, ``status`` (`HostOutcome`), ``steps``,
``snapshot``, ``diff`` (snapshot → configuration after apply),
``predicted_diff``, ``config_hash`` (after), ``proof`` (after a rollback:
method, snapshot_hash, after_hash, equal, residual_diff), ``exceptions``
(failed checks with ``on_fail: warn``, e.g. inspection findings), ``facts``
(data gathered by steps with ``check:``), ``error``, timings.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import Enum, StrEnum
from pathlib import Path
from typing import Any, Literal, Protocol

from opskit import compliance
from opskit.connectors.base import (
    ActionResult,
    Capability,
    CommandRejected,
    Connector,
    HostStatus,
)
from opskit.errors import ConnectorError, OpskitError
from opskit.inventory.model import CI
from opskit.runbooks.expectations import ExpectationResult, StepOutput, evaluate
from opskit.runbooks.model import Expectation, Runbook, Step
from opskit.runbooks.parameters import mark_multiline
from opskit.runbooks.restore import SnapshotRestorer
from opskit.runbooks.templating import ci_context, render_params, render_value
from opskit.secrets import REDACTOR, SecretRef

LOG = logging.getLogger(__name__)

Recorder = Callable[[str, dict[str, Any], "dict[str, bytes | str] | None"], None]
RollbackMode = Literal["on_failure", "never"]

#: The connector used for snapshots when the runbook names none, per platform.
DEFAULT_CONFIG_CONNECTOR = {"linux": "fabric"}
DEFAULT_NETWORK_CONNECTOR = "netmiko"


class ConnectorPool(Protocol):
    """What the executor needs of `opskit.connectors.pool.ConnectionPool`."""

    def session(self, ci: CI, connector: str = ...) -> AbstractContextManager[Connector]: ...


# Sessions that failed like this are handed back as broken (the pool closes them).
_BROKEN = {HostStatus.UNREACHABLE, HostStatus.TIMEOUT, HostStatus.AUTH_FAILED}


class _Sessions:
    """The pool sessions one host run holds, one per connector name, until it ends."""

    def __init__(self, pool: ConnectorPool, ci: CI) -> None:
        self.pool = pool
        self.ci = ci
        self._open: dict[str, tuple[AbstractContextManager[Connector], Connector]] = {}

    def get(self, name: str) -> Connector:
        if name not in self._open:
            context = self.pool.session(self.ci, name)
            self._open[name] = (context, context.__enter__())
        return self._open[name][1]

    def discard_if_broken(self, name: str, exc: ConnectorError) -> None:
        """A connection-level failure: hand the session back as broken."""
        if getattr(exc, "status", None) in _BROKEN and name in self._open:
            context, _ = self._open.pop(name)
            with suppress(ConnectorError):
                context.__exit__(type(exc), exc, exc.__traceback__)

    def discard_broken(self, name: str, exc: BaseException) -> None:
        """An unexpected failure: the session cannot be trusted any more."""
        if name in self._open:
            context, _ = self._open.pop(name)
            with suppress(Exception):
                context.__exit__(type(exc), exc, exc.__traceback__)

    def close(self) -> None:
        while self._open:
            _, (context, _) = self._open.popitem()
            with suppress(ConnectorError):
                context.__exit__(None, None, None)


class HostOutcome(StrEnum):
    COMPLETED = "completed"  # applied and verified
    FAILED = "failed"  # failed, not rolled back (precheck failure: nothing changed)
    ROLLED_BACK = "rolled_back"  # failed, rolled back, rollback proven
    ROLLBACK_FAILED = "rollback_failed"  # failed and the rollback did not restore the snapshot
    DRY_RUN = "dry_run"  # predicted only


@dataclass
class StepRun:
    phase: str
    name: str
    connector: str
    action: str
    status: str = "ok"  # ok | changed | failed | warn | skipped | <HostStatus>
    changed: bool = False
    commands: list[str] = field(default_factory=list)
    output: str = ""
    diff: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    expectations: list[ExpectationResult] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    started: str = ""
    duration: float = 0.0
    check: str | None = None

    @property
    def failed(self) -> bool:
        return self.status not in ("ok", "changed", "warn", "skipped")

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "name": self.name,
            "connector": self.connector,
            "action": self.action,
            "status": self.status,
            "changed": self.changed,
            "commands": self.commands,
            "output": self.output,
            "diff": self.diff,
            "data": self.data,
            "expectations": [e.to_dict() for e in self.expectations],
            "transcript": self.transcript,
            "error": self.error,
            "started": self.started,
            "duration_ms": _ms(self.duration),
            "check": self.check,
        }


@dataclass
class Snapshot:
    """The pre-change state of a host: its configuration, or the files captured.

    A captured file that does not exist is kept as None ("absent"), so that a
    rollback can be proven to have removed what the change created.
    """

    connector: str
    source: str  # "running" / "startup", or "files"
    platform: str
    config: str | None = None
    files: dict[str, str | None] = field(default_factory=dict)
    taken: str = ""

    @property
    def hash(self) -> str:
        if self.config is not None:
            return compliance.config_hash(self.config, self.platform)
        canonical = json.dumps(
            {
                path: (hashlib.sha256(text.encode()).hexdigest() if text is not None else None)
                for path, text in self.files.items()
            },
            sort_keys=True,
        )
        return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def absent(self) -> list[str]:
        return sorted(path for path, text in self.files.items() if text is None)

    def blobs(self) -> dict[str, str]:
        if self.config is not None:
            return {"config": self.config}
        return {f"file:{path}": text for path, text in self.files.items() if text is not None}

    def describe(self) -> dict[str, Any]:
        return {
            "connector": self.connector,
            "source": self.source,
            "platform": self.platform,
            "hash": self.hash,
            "bytes": len(self.config.encode()) if self.config is not None else None,
            "files": sorted(self.files),
            "absent": self.absent,
            "taken": self.taken,
        }

    @classmethod
    def from_blobs(
        cls,
        blobs: Mapping[str, bytes | str],
        *,
        platform: str,
        connector: str,
        source: str = "running",
        absent: Sequence[str] = (),
    ) -> Snapshot:
        """Rebuilds a snapshot from its ``host.backup`` blobs (and ``absent`` files)."""

        def text(v: bytes | str) -> str:
            return v.decode() if isinstance(v, bytes) else v

        if "config" in blobs:
            return cls(connector, source, platform, config=text(blobs["config"]))
        files: dict[str, str | None] = {
            k[5:]: text(v) for k, v in blobs.items() if k.startswith("file:")
        }
        files.update(dict.fromkeys(absent))
        return cls(connector, "files", platform, files=files)

    def compare(self, other: Snapshot) -> tuple[bool, str]:
        if self.config is not None and other.config is not None:
            return compliance.equal(self.config, other.config, self.platform)
        diffs = []
        for path in sorted(set(self.files) | set(other.files)):
            mine, theirs = self.files.get(path), other.files.get(path)
            if mine is None and theirs is None:
                continue
            residual = compliance.diff(
                mine or "",
                theirs or "",
                None,
                before_name=f"{path} (snapshot)" if mine is not None else "/dev/null",
                after_name=f"{path} (now)" if theirs is not None else "/dev/null",
            )
            if not residual and (mine is None) != (theirs is None):
                residual = f"{path}: {'created' if mine is None else 'removed'} (empty)\n"
            if residual:
                diffs.append(residual)
        return not diffs, "".join(diffs)


@dataclass
class HostRun:
    ci: str
    platform: str
    runbook: str
    status: HostOutcome = HostOutcome.COMPLETED
    steps: list[StepRun] = field(default_factory=list)
    snapshot: Snapshot | None = None
    diff: str | None = None
    predicted_diff: str | None = None
    config_hash: str | None = None
    proof: dict[str, Any] | None = None
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    failed_phase: str | None = None
    started: str = ""
    finished: str = ""
    duration: float = 0.0
    pending_confirm: bool = False

    @property
    def ok(self) -> bool:
        return self.status in (HostOutcome.COMPLETED, HostOutcome.DRY_RUN)

    def to_dict(self) -> dict[str, Any]:
        return {
            "ci": self.ci,
            "platform": self.platform,
            "runbook": self.runbook,
            "status": str(self.status),
            "error": self.error,
            "failed_phase": self.failed_phase,
            "steps": [s.to_dict() for s in self.steps],
            "snapshot": self.snapshot.describe() if self.snapshot else None,
            "diff": self.diff,
            "predicted_diff": self.predicted_diff,
            "config_hash": self.config_hash,
            "proof": self.proof,
            "exceptions": self.exceptions,
            "facts": self.facts,
            "started": self.started,
            "finished": self.finished,
            "duration_ms": _ms(self.duration),
        }


class _StepFailed(Exception):
    def __init__(self, step_run: StepRun) -> None:
        self.step_run = step_run
        super().__init__(step_run.error or step_run.name)


def _log_bug(message: str) -> None:
    """Logs the exception being handled with its traceback, redacted: the
    text may quote a rendered secret, and logs are as secret-free as records."""
    LOG.error("%s\n%s", REDACTOR.redact(message), REDACTOR.redact(traceback.format_exc()))


def _now() -> str:
    return datetime.now(UTC).isoformat()


def resolve_params(runbook: Runbook, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters with secret references resolved (values registered for redaction)."""
    resolved = dict(params)
    for name in runbook.secret_parameters:
        if name in resolved and resolved[name] is not None:
            resolved[name] = SecretRef.parse(resolved[name], where=f"parameter {name}").resolve()
    # Values a runbook lets span lines are marked for the one-line rule of rendering.
    return mark_multiline(runbook.parameters, resolved)


class _HostExecution:
    def __init__(
        self,
        runbook: Runbook,
        ci: CI,
        params: Mapping[str, Any],
        pool: ConnectorPool,
        recorder: Recorder | None,
        *,
        dry_run: bool = False,
        templates_dir: Path | None = None,
    ) -> None:
        self.runbook = runbook
        self.ci = ci
        self.params = params
        self.sessions = _Sessions(pool, ci)
        self._recorder = recorder
        self.dry_run = dry_run
        self.templates_dir = templates_dir or _default_templates_dir(runbook)
        self.playbooks_dir = (
            self.templates_dir.parent / "playbooks" if self.templates_dir is not None else None
        )
        self.run = HostRun(ci=ci.name, platform=ci.platform, runbook=runbook.ref)
        self.resolved: dict[str, Any] | None = None
        self.applied_any = False
        self.commit_pending: Connector | None = None
        self.committed_by: set[str] = set()  # connectors this run committed through
        self._last_capture_transcript: list[dict[str, Any]] = []
        # (connector, text) of the running configuration last fetched by a verify step
        self.last_running: tuple[str, str] | None = None
        # connector -> the configuration fetched right after an automatic restore
        self.restored: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------
    def record(
        self, kind: str, payload: dict[str, Any], blobs: dict[str, bytes | str] | None = None
    ) -> None:
        if self._recorder is None:
            return
        clean_payload = record_ready({"ci": self.ci.name, "runbook": self.runbook.ref, **payload})
        clean_blobs = None
        if blobs:
            clean_blobs = {
                name: (REDACTOR.redact_bytes(v) if isinstance(v, bytes) else REDACTOR.redact(v))
                for name, v in blobs.items()
            }
        self._recorder(kind, clean_payload, clean_blobs)

    def secret_refs(self) -> dict[str, Any]:
        return {
            name: self.params[name]
            for name in self.runbook.secret_parameters
            if self.params.get(name) is not None
        }

    def render_expectations(self, step: Step) -> list[Expectation]:
        context = {"params": self.values(), "ci": ci_context(self.ci)}
        return [
            Expectation(e.kind, render_value(e.spec, context, step.where), e.description)
            for e in step.expect
        ]

    def connector(self, name: str) -> Connector:
        return self.sessions.get(name)

    def values(self) -> dict[str, Any]:
        if self.resolved is None:
            self.resolved = resolve_params(self.runbook, self.params)
        return self.resolved

    # -- steps ------------------------------------------------------------
    def run_phase(self, phase: str, steps: Sequence[Step] | None = None) -> list[StepRun]:
        runs = []
        for step in steps if steps is not None else self.runbook.steps_for(phase, self.ci.platform):
            step_run = self.run_step(step)
            runs.append(step_run)
            self.run.steps.append(step_run)
            if step_run.failed:
                raise _StepFailed(step_run)
        return runs

    def run_step(self, step: Step) -> StepRun:
        step_run = StepRun(
            phase=step.phase,
            name=step.name,
            connector=step.connector,
            action=step.action,
            started=_now(),
            check=step.check,
        )
        start = time.perf_counter()
        conn: Connector | None = None
        try:
            rendered = render_params(
                step, self.values(), self.ci, self.templates_dir, secrets=self.secret_refs()
            )
            conn = self.connector(step.connector)
            output = self._execute(step, rendered, conn, step_run)
            step_run.expectations = list(output.checks)
            if step.expect and not (self.dry_run and step.phase in ("verify", "precheck")):
                step_run.expectations += evaluate(
                    self.render_expectations(step),
                    output,
                    conn=conn,
                    ci=self.ci,
                    templates_dir=self.templates_dir,
                )
            failed = [e for e in step_run.expectations if not e.passed]
            if failed:
                reason = "; ".join(f"{e.description}: {e.detail}" for e in failed)
                if step.on_fail == "warn":
                    step_run.status = "warn"
                    unavailable = all(e.unavailable for e in failed)
                    self.run.exceptions.append(
                        {
                            "check": step.check or step.name,
                            "step": step.name,
                            "severity": "unavailable" if unavailable else "exception",
                            "detail": reason,
                        }
                    )
                else:
                    step_run.status = "failed"
                    step_run.error = f"expectation failed: {reason}"
            if step.check:
                _redact_step(step_run)
                self.run.facts[step.check] = {
                    "status": step_run.status,
                    "output": step_run.output,
                    "data": step_run.data,
                    "expectations": [e.to_dict() for e in step_run.expectations],
                }
        except ConnectorError as exc:
            step_run.status = str(getattr(exc, "status", HostStatus.FAILED))
            step_run.error = str(exc)
            if conn is not None:
                step_run.transcript = _transcript(conn)
            self.sessions.discard_if_broken(step.connector, exc)
            if step.on_fail == "warn":
                # A check the device cannot answer is "unavailable", not a finding.
                unavailable = step_run.status in (
                    HostStatus.REJECTED,
                    HostStatus.CAPABILITY_MISSING,
                )
                self.run.exceptions.append(
                    {
                        "check": step.check or step.name,
                        "step": step.name,
                        "severity": "unavailable" if unavailable else "exception",
                        "detail": str(exc),
                    }
                )
                step_run.status = "warn"
        except OpskitError as exc:
            step_run.status = "failed"
            step_run.error = str(exc)
        except Exception as exc:
            # A bug below us (a connector, a vendor library) must not leave a
            # half-changed device without its rollback: fail the step, keep
            # the traceback in the log.
            _log_bug(f"{self.ci.name}: step {step.where} raised")
            step_run.status = "failed"
            step_run.error = f"internal error in {step.connector} {step.action}: " + (
                f"{type(exc).__name__}: {exc}"
            )
            self.sessions.discard_broken(step.connector, exc)
        finally:
            step_run.duration = time.perf_counter() - start
            _redact_step(step_run)
            if conn is not None:
                step_run.transcript += _transcript(conn)
                if not step_run.commands:
                    step_run.commands = [t["command"] for t in step_run.transcript]
        return step_run

    def _execute(
        self, step: Step, rendered: dict[str, Any], conn: Connector, step_run: StepRun
    ) -> StepOutput:
        action = step.action
        mutating = step.phase in ("apply", "rollback")
        if action == "config":
            lines = list(rendered.get("lines", []))
            step_run.commands = lines
            if self.dry_run and mutating:
                step_run.diff = self._predict(conn, lines, bool(rendered.get("replace", False)))
                step_run.status = "ok"
                return StepOutput(text=step_run.diff or "")
            self.last_running = None
            result = conn.apply_config(
                lines,
                replace=bool(rendered.get("replace", False)),
                commit_confirm=rendered.get("commit_confirm"),
            )
            if mutating:
                self.applied_any = True
            if result.committed:
                self.committed_by.add(conn.name)
            if result.pending_confirm:
                self.commit_pending = conn
                self.run.pending_confirm = True
            step_run.changed = result.changed
            step_run.status = "changed" if result.changed else "ok"
            step_run.diff = result.diff
            step_run.output = result.output
            return StepOutput(text=result.output)
        if action == "commands":
            commands = list(rendered.get("commands", []))
            step_run.commands = commands
            results = conn.send_commands(commands, parse=bool(rendered.get("parse", False)))
            step_run.output = "\n".join(r.output for r in results)
            parsed = {r.command: r.parsed for r in results if r.parsed is not None}
            if parsed:
                step_run.data["parsed"] = parsed
            return StepOutput(
                text=step_run.output, by_command={r.command: r.output for r in results}
            )
        if action == "get_config":
            source = rendered.get("source", "running")
            step_run.commands = [f"get_config {source}"]
            step_run.output = conn.get_config(source)
            if source == "running" and step.phase == "verify":
                self.last_running = (conn.name, step_run.output)
            return StepOutput(
                text=step_run.output, config=step_run.output if source == "running" else None
            )
        if action == "restore_snapshot":
            if self.run.snapshot is None:
                raise OpskitError("restore_snapshot: no snapshot was taken on this host")
            method = self._restore(self.run.snapshot, step_run)
            return StepOutput(text=f"restored by {method}")
        if action == "config_compare":
            # Unsaved changes: the running configuration against the startup one.
            source = rendered.get("source", "startup")
            running = conn.get_config("running")
            other = conn.get_config(source)
            if _NOT_PRESENT.match(other):
                other = ""  # IOS: "startup-config is not present" (never saved)
            equal, residual = compliance.equal(other, running, self.ci.platform)
            step_run.commands = ["get_config running", f"get_config {source}"]
            step_run.output = residual
            step_run.data = {
                "equal": equal,
                "running_hash": compliance.config_hash(running, self.ci.platform),
                f"{source}_hash": compliance.config_hash(other, self.ci.platform),
            }
            if equal:
                detail = "equal"
            elif not compliance.normalize(other, self.ci.platform):
                detail = f"the {source} configuration is empty (never saved)"
            else:
                changed = sum(
                    1
                    for line in residual.splitlines()
                    if line[:1] in "+-" and line[:3] not in ("+++", "---")
                )
                detail = f"{changed} line(s) differ from the {source} configuration"
            check = ExpectationResult(
                "config_compare", f"running configuration equals {source}", equal, detail
            )
            return StepOutput(text=residual, checks=[check])
        if action == "save":
            step_run.commands = ["save"]
            if self.dry_run:
                step_run.status = "skipped"
                return StepOutput(text="")
            conn.save_config()
            step_run.changed = True
            step_run.status = "changed"
            return StepOutput(text="")
        if action == "facts":
            facts = conn.get_facts()
            step_run.data = {"facts": facts}
            step_run.output = json.dumps(facts, default=str, indent=1, sort_keys=True)
            return StepOutput(text=step_run.output, data=facts)
        # A connector-specific action.
        params = dict(rendered)
        playbook = params.pop("playbook", None)
        if isinstance(playbook, str):
            path = Path(playbook)
            if not path.is_absolute() and self.playbooks_dir is not None:
                path = self.playbooks_dir / path
            params["path"] = str(path)
        if self.dry_run and mutating:
            if Capability.CHECK_MODE not in conn.capabilities:
                step_run.status = "skipped"
                step_run.output = f"{conn.name} cannot run {action} in check mode; skipped"
                return StepOutput(text="")
            params.update(check=True, diff=True)
        self.last_running = None  # a connector action may change anything
        result: ActionResult = conn.perform(action, params)
        if mutating and not self.dry_run:
            self.applied_any = True
        step_run.changed = result.changed
        step_run.output = result.output
        step_run.diff = result.diff
        step_run.data = dict(result.data)
        step_run.status = (
            ("changed" if result.changed else "ok")
            if result.status in (HostStatus.OK, HostStatus.CHANGED)
            else str(result.status)
        )
        if step_run.failed and not step_run.error:
            step_run.error = f"{conn.name} {action}: {result.status}" + (
                f": {result.output.strip()[-300:]}" if result.output.strip() else ""
            )
        return StepOutput(text=result.output, data=dict(result.data), result=result)

    def _predict(self, conn: Connector, lines: list[str], replace: bool) -> str | None:
        if Capability.DRY_RUN_DIFF in conn.capabilities:
            return conn.apply_config(lines, dry_run=True, replace=replace).diff
        if Capability.GET_CONFIG in conn.capabilities:
            running = conn.get_config("running")
            if replace:
                return compliance.diff(running, "\n".join(lines), self.ci.platform)
            return compliance.predict(running, lines, self.ci.platform, host=self.ci.name)
        return None

    # -- snapshots --------------------------------------------------------
    def snapshot_connector(self) -> tuple[str, Any]:
        spec = self.runbook.backup.for_platform(self.ci.platform)
        name = spec.connector
        if name is None:
            steps = self.runbook.steps_for("apply", self.ci.platform)
            name = steps[0].connector if steps else None
        if name is None or name == "ansible":
            # Ansible runs playbooks; a snapshot reads state directly.
            name = DEFAULT_CONFIG_CONNECTOR.get(self.ci.platform, DEFAULT_NETWORK_CONNECTOR)
        return name, spec

    def capture(self) -> Snapshot:
        name, spec = self.snapshot_connector()
        conn = self.connector(name)
        try:
            if spec.files:
                # File names may use the parameters ("{{ params.root }}/etc/app.conf").
                context = {"params": self.values(), "ci": ci_context(self.ci)}
                paths = [str(render_value(p, context, "backup")) for p in spec.files]
                files = {path: _read_file(conn, path) for path in paths}
                return Snapshot(name, "files", self.ci.platform, files=files, taken=_now())
            return Snapshot(
                name,
                spec.source,
                self.ci.platform,
                config=conn.get_config(spec.source),
                taken=_now(),
            )
        finally:
            self._last_capture_transcript = _transcript(conn)

    def backup(self) -> None:
        start = time.perf_counter()
        snapshot = self.capture()
        self.run.snapshot = snapshot
        self.record(
            "host.backup",
            {
                "snapshot": snapshot.describe(),
                "transcript": self._last_capture_transcript,
                "duration_ms": _ms(time.perf_counter() - start),
            },
            dict(snapshot.blobs()),
        )

    # -- rollback ---------------------------------------------------------
    def rollback(self, snapshot: Snapshot | None) -> bool:
        """Rolls back and proves it; True when the host is back to its snapshot."""
        start = time.perf_counter()
        method = "steps"
        steps_before = len(self.run.steps)
        error: str | None = None
        try:
            if self.runbook.rollback == "auto":
                if snapshot is None:
                    raise OpskitError("automatic rollback needs a backup snapshot; none was taken")
                method = self._auto_rollback(snapshot)
            elif self.runbook.rollback == "none":
                method = "none"
            else:
                self.run_phase("rollback")
        except _StepFailed as exc:
            error = exc.step_run.error or f"rollback step {exc.step_run.name} failed"
        except OpskitError as exc:
            error = str(exc)
        proof = None
        if error is None and snapshot is not None:
            try:
                proof = self.prove(snapshot, method, self.restored.pop(snapshot.connector, None))
            except OpskitError as exc:
                error = f"cannot fetch the configuration to prove the rollback: {exc}"
        ok = error is None and (proof is None or proof["equal"])
        if error is None and proof is not None and not proof["equal"]:
            error = "the configuration after rollback differs from the snapshot"
        self.run.proof = proof
        payload = {
            "method": method,
            "steps": [s.to_dict() for s in self.run.steps[steps_before:]],
            "proof": proof,
            "error": error,
            "duration_ms": _ms(time.perf_counter() - start),
        }
        blobs = (
            {"residual_diff": proof["residual_diff"]} if proof and proof["residual_diff"] else None
        )
        self.record("host.rolled_back" if ok else "host.rollback_failed", payload, blobs)
        if not ok:
            self.run.error = (
                f"{self.run.error}; rollback failed: {error}" if self.run.error else error
            )
        return ok

    def _auto_rollback(self, snapshot: Snapshot) -> str:
        step_run = StepRun(
            phase="rollback",
            name="restore snapshot",
            connector=snapshot.connector,
            action="auto",
            started=_now(),
        )
        start = time.perf_counter()
        method = "none"
        try:
            method = self._restore(snapshot, step_run)
        except ConnectorError as exc:
            step_run.status = str(getattr(exc, "status", HostStatus.FAILED))
            step_run.error = str(exc)
        except Exception as exc:
            _log_bug(f"{self.ci.name}: restoring the snapshot raised")
            step_run.status = "failed"
            step_run.error = f"internal error while restoring: {type(exc).__name__}: {exc}"
            self.sessions.discard_broken(snapshot.connector, exc)
        finally:
            step_run.duration = time.perf_counter() - start
            _redact_step(step_run)
            self.run.steps.append(step_run)
        if step_run.failed:
            raise _StepFailed(step_run)
        return method

    def _restore(self, snapshot: Snapshot, step_run: StepRun) -> str:
        """Puts the snapshot back, method after method (see `runbooks.restore`)."""
        if snapshot.config is None:
            raise OpskitError(
                "automatic rollback restores configurations; this snapshot holds files "
                "(give the runbook explicit rollback steps)"
            )
        conn = self.connector(snapshot.connector)
        native = None
        if (
            snapshot.connector in self.committed_by
            and Capability.NATIVE_ROLLBACK in conn.capabilities
        ):
            # Only what this run committed: a native rollback of an older
            # commit would undo someone else's change.
            def native() -> None:
                conn.rollback()
                self.committed_by.discard(snapshot.connector)
                self.commit_pending = None

        restorer = SnapshotRestorer(
            conn, snapshot.config, snapshot.source, self.ci.platform, self.ci.name, native
        )
        try:
            done = restorer.restore()
        finally:
            step_run.transcript += _transcript(conn)
            step_run.data["attempts"] = [a.to_dict() for a in restorer.result.attempts]
        step_run.commands = done.commands
        step_run.diff = done.diff
        step_run.output = done.output
        step_run.changed = done.changed
        step_run.data["method"] = done.method
        step_run.status = "changed"
        if done.final_config is not None and step_run.action == "auto":
            # The automatic rollback proves right after: no second fetch.
            self.restored[snapshot.connector] = done.final_config
        return done.method

    def prove(self, snapshot: Snapshot, method: str, fetched: str | None = None) -> dict[str, Any]:
        """Compares the configuration now (``fetched`` right after the last
        restoration method, else fetched here) with the snapshot."""
        after = (
            Snapshot(snapshot.connector, snapshot.source, self.ci.platform, fetched, taken=_now())
            if fetched is not None and snapshot.config is not None
            else self.capture()
        )
        equal, residual = snapshot.compare(after)
        self.run.config_hash = after.hash
        return {
            "method": method,
            "snapshot_hash": snapshot.hash,
            "after_hash": after.hash,
            "equal": equal,
            "residual_diff": residual,
            "ignored_volatile": list(compliance.VOLATILE.get(self.ci.platform, ())),
        }

    # -- the whole host ---------------------------------------------------
    def execute(self, rollback_mode: RollbackMode) -> HostRun:
        run = self.run
        run.started = _now()
        start = time.perf_counter()
        try:
            if self.dry_run:
                self._dry_run()
                return run
            self._live(rollback_mode)
            return run
        finally:
            self.sessions.close()
            run.finished = _now()
            run.duration = time.perf_counter() - start

    def _dry_run(self) -> None:
        run = self.run
        try:
            steps = self.run_phase("apply")
        except _StepFailed as exc:
            run.status = HostOutcome.FAILED
            run.failed_phase = "apply"
            run.error = exc.step_run.error
            self.record("host.failed", {"phase": "apply", "dry_run": True, "error": run.error})
            return
        run.predicted_diff = _predicted_diff(steps)
        run.status = HostOutcome.DRY_RUN
        self.record(
            "host.dry_run",
            {"steps": [s.to_dict() for s in steps], "predicted_diff": run.predicted_diff},
            {"predicted_diff": run.predicted_diff} if run.predicted_diff else None,
        )

    def _live(self, rollback_mode: RollbackMode) -> None:
        run = self.run
        book = self.runbook
        phase = "precheck"
        try:
            prechecks = self.run_phase("precheck")
            if prechecks:
                self.record(
                    "host.precheck", {"steps": [s.to_dict() for s in prechecks], "ok": True}
                )
            phase = "backup"
            if book.backup.enabled and (
                not book.backup.platforms or self.ci.platform in book.backup.platforms
            ):
                self.backup()
            phase = "apply"
            started = time.perf_counter()
            applied = self.run_phase("apply")
            if applied:
                self.record(
                    "host.applied",
                    {
                        "steps": [s.to_dict() for s in applied],
                        "changed": any(s.changed for s in applied),
                        "duration_ms": _ms(time.perf_counter() - started),
                    },
                    _diff_blob(applied),
                )
            phase = "verify"
            started = time.perf_counter()
            verified = self.run_phase("verify")
            if self.commit_pending is not None:
                self.commit_pending.confirm_commit()
                transcript = _transcript(self.commit_pending)
                self.commit_pending = None
                run.pending_confirm = False
                self.record("host.confirmed", {"transcript": transcript})
            self._finish_verified(verified, time.perf_counter() - started)
        except _StepFailed as exc:
            self._fail(phase, exc.step_run, rollback_mode)
        except OpskitError as exc:
            # The backup itself failed (or confirming a commit did).
            self._fail(phase, None, rollback_mode, error=str(exc))

    def _finish_verified(self, verified: list[StepRun], duration: float) -> None:
        run = self.run
        payload: dict[str, Any] = {
            "steps": [s.to_dict() for s in verified],
            "duration_ms": _ms(duration),
            "exceptions": run.exceptions,
        }
        blobs = None
        if run.snapshot is not None and self.applied_any:
            after = self._fresh_running(run.snapshot) or self.capture()
            run.config_hash = after.hash
            equal, run.diff = run.snapshot.compare(after)
            payload.update(config_hash=after.hash, changed=not equal)
            if run.diff:
                blobs = {"diff": run.diff}
        if verified or self.applied_any:
            self.record("host.verified", payload, blobs)
        run.status = HostOutcome.COMPLETED

    def _fresh_running(self, snapshot: Snapshot) -> Snapshot | None:
        """The running configuration a verify step just fetched, when nothing
        changed since: saves a device round trip per host."""
        if self.last_running is None or snapshot.config is None or snapshot.source != "running":
            return None
        connector, config = self.last_running
        if connector != snapshot.connector:
            return None
        return Snapshot(connector, "running", self.ci.platform, config=config, taken=_now())

    def _fail(
        self,
        phase: str,
        step_run: StepRun | None,
        rollback_mode: RollbackMode,
        error: str | None = None,
    ) -> None:
        run = self.run
        run.failed_phase = phase
        run.error = error or (step_run.error if step_run else None) or f"{phase} failed"
        if phase == "verify" and step_run is not None:
            self.record(
                "host.verify_failed",
                {
                    "step": step_run.to_dict(),
                    "steps": [s.to_dict() for s in run.steps if s.phase == "verify"],
                    "error": run.error,
                },
            )
        # A failed apply step may have changed part of the device; a failed
        # verification after no apply step (read-only runbooks) changed nothing.
        changed_something = self.applied_any or phase == "apply"
        if phase in ("precheck", "backup") or not changed_something:
            run.status = HostOutcome.FAILED
            self.record("host.failed", {"phase": phase, "error": run.error, "rolled_back": False})
            return
        if rollback_mode == "never":
            run.status = HostOutcome.FAILED
            self.record(
                "host.failed",
                {
                    "phase": phase,
                    "error": run.error,
                    "rolled_back": False,
                    "rollback": "not requested",
                },
            )
            return
        if self.rollback(run.snapshot):
            run.status = HostOutcome.ROLLED_BACK
        else:
            run.status = HostOutcome.ROLLBACK_FAILED
        self.record(
            "host.failed",
            {
                "phase": phase,
                "error": run.error,
                "rolled_back": run.status == HostOutcome.ROLLED_BACK,
            },
        )


_NOT_PRESENT = re.compile(r"^\s*(%\s*)?\S*-config is not present\s*$", re.IGNORECASE)


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _transcript(conn: Connector) -> list[dict[str, Any]]:
    """The connector's transcript since the last call, durations in whole ms."""
    # TranscriptEntry.to_dict without its dataclasses.asdict deep copy (only
    # strings inside): this runs for every step of every host.
    return [
        {
            "command": entry.command,
            "output": entry.output,
            "started": entry.started.isoformat(),
            "status": entry.status,
            "duration_ms": _ms(float(entry.duration)),
        }
        for entry in conn.take_transcript()
    ]


def record_ready(value: Any) -> Any:
    """`value` as the ledger takes it, in one pass: every string redacted
    (mapping keys too), and only the ledger's JSON subset left. The canonical
    JSON has no floats (RFC 8785 number pitfalls): integral floats become
    ints, others their shortest text; enums become their value, datetimes ISO
    text, tuples lists, sets sorted lists, anything else its text. What this
    returns needs no further redaction or conversion on its way to the ledger
    (`ChangeService.record(..., prepared=True)`)."""
    return _ready(value, REDACTOR.redact)


def _ready(value: Any, redact: Callable[[str], str]) -> Any:
    kind = type(value)
    if kind is str:
        return redact(value)
    if kind is dict:
        return {
            (redact(k) if type(k) is str else _ready_key(k, redact)): _ready(v, redact)
            for k, v in value.items()
        }
    if kind is list:
        return [_ready(v, redact) for v in value]
    if value is None or kind is bool or kind is int:
        return value
    if isinstance(value, Enum):
        return redact(str(value.value))
    if isinstance(value, str):
        return redact(str(value))
    if isinstance(value, float):
        return int(value) if value.is_integer() else repr(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {_ready_key(k, redact): _ready(v, redact) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_ready(v, redact) for v in value]
    if isinstance(value, set | frozenset):
        return sorted((_ready(v, redact) for v in value), key=str)
    return redact(str(value))


def _ready_key(key: Any, redact: Callable[[str], str]) -> str:
    return redact(str(key.value) if isinstance(key, Enum) else str(key))


def _read_file(conn: Connector, path: str) -> str | None:
    """A file's content, or None when it does not exist."""
    try:
        return conn.get_config(path)
    except CommandRejected as exc:
        if "No such file" in str(exc) or "No such file" in (exc.output or ""):
            return None
        raise


def _redact_step(step_run: StepRun) -> None:
    """A step's record never holds a secret, even before the recorder redacts."""
    step_run.commands = [REDACTOR.redact(c) for c in step_run.commands]
    step_run.output = REDACTOR.redact(step_run.output)
    step_run.diff = REDACTOR.redact(step_run.diff) if step_run.diff else step_run.diff
    step_run.error = REDACTOR.redact(step_run.error) if step_run.error else step_run.error
    step_run.data = REDACTOR.redact_obj(step_run.data)


# Step actions that never change a device's configuration.
_NO_CONFIG_EFFECT = frozenset({"get_config", "facts", "save", "config_compare"})


def _predicted_diff(steps: Sequence[StepRun]) -> str | None:
    """The dry-run apply phase's diff: "" when every step predicts no change
    (nothing to do, or no apply step at all), None when some step's effect
    cannot be predicted (a connector without diff prediction or check mode,
    exec commands)."""
    diffs: list[str] = []
    for step in steps:
        if step.diff:
            diffs.append(step.diff)
        elif step.diff is None and _effect_unknown(step):
            return None
    return "\n".join(diffs)


def _effect_unknown(step: StepRun) -> bool:
    if step.action in _NO_CONFIG_EFFECT:
        return False
    if step.action in ("config", "commands"):
        return True  # no diff from the connector, or commands run as they are
    # A connector action run in check mode: unchanged is a prediction too.
    return step.status == "skipped" or step.changed


def _diff_blob(steps: Sequence[StepRun]) -> dict[str, bytes | str] | None:
    diffs = [s.diff for s in steps if s.diff]
    return {"diff": "\n".join(diffs)} if diffs else None


def _default_templates_dir(runbook: Runbook) -> Path | None:
    return None if runbook.path is None else _templates_dir_of(runbook.path)


@functools.lru_cache(maxsize=64)
def _templates_dir_of(runbook_path: Path) -> Path:
    # Once per runbook file, not per host: resolve() is a system call per component.
    return runbook_path.resolve().parents[2] / "templates"


def run_host(
    runbook: Runbook,
    ci: CI,
    params: Mapping[str, Any],
    *,
    pool: ConnectorPool,
    recorder: Recorder | None = None,
    dry_run: bool = False,
    rollback_mode: RollbackMode = "on_failure",
    templates_dir: Path | None = None,
) -> HostRun:
    """Runs the runbook on one CI (see the module docstring)."""
    execution = _HostExecution(
        runbook, ci, params, pool, recorder, dry_run=dry_run, templates_dir=templates_dir
    )
    return execution.execute(rollback_mode)


def predict_diff(
    runbook: Runbook, ci: CI, params: Mapping[str, Any], pool: ConnectorPool
) -> str | None:
    """The predicted diff of the apply phase on this CI: "" when nothing
    would change, None when it cannot be predicted."""
    run = run_host(runbook, ci, params, pool=pool, dry_run=True)
    if run.status == HostOutcome.FAILED:
        raise ConnectorError(run.error or f"{ci.name}: the dry run failed")
    return run.predicted_diff


def rollback_host(
    runbook: Runbook,
    ci: CI,
    snapshot: Snapshot | str | None,
    pool: ConnectorPool,
    recorder: Recorder | None = None,
    params: Mapping[str, Any] | None = None,
    templates_dir: Path | None = None,
) -> HostRun:
    """Rolls a host back to ``snapshot`` (see the module docstring)."""
    execution = _HostExecution(
        runbook, ci, params or {}, pool, recorder, templates_dir=templates_dir
    )
    if isinstance(snapshot, str):
        name, spec = execution.snapshot_connector()
        snapshot = Snapshot(name, spec.source, ci.platform, config=snapshot)
    # None: no snapshot was taken (backup off for this platform); explicit
    # rollback steps still run, without a comparison to prove them.
    run = execution.run
    run.started = _now()
    run.snapshot = snapshot
    start = time.perf_counter()
    execution.applied_any = True
    try:
        ok = execution.rollback(snapshot)
    finally:
        execution.sessions.close()
    run.status = HostOutcome.ROLLED_BACK if ok else HostOutcome.ROLLBACK_FAILED
    run.finished = _now()
    run.duration = time.perf_counter() - start
    return run


__all__ = [
    "ConnectorPool",
    "HostOutcome",
    "HostRun",
    "Recorder",
    "RollbackMode",
    "Snapshot",
    "StepRun",
    "predict_diff",
    "record_ready",
    "resolve_params",
    "rollback_host",
    "run_host",
]
