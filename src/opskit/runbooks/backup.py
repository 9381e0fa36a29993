"""A host's snapshot during a run: capture (the backup), restore, proof.

`SnapshotKeeper` takes the pre-change `Snapshot` before the first apply
step (``host.backup``), puts it back when a rollback needs it (method after
method, see `opskit.runbooks.restore`) and proves the host is back by
comparing its configuration with the snapshot.
"""

from __future__ import annotations

import time
from typing import Any

from opskit import configdiff
from opskit.connectors.base import Capability
from opskit.errors import ConnectorError, OpskitError
from opskit.hoststate import HostState
from opskit.runbooks.context import HostContext
from opskit.runbooks.model import BackupSpec
from opskit.runbooks.records import log_bug, now, redact_step, transcript
from opskit.runbooks.restore import SnapshotRestorer
from opskit.runbooks.results import StepFailed, StepRun, ms
from opskit.runbooks.snapshot import Snapshot, read_file
from opskit.runbooks.templating import ci_context, render_value

#: The connector used for snapshots when the runbook names none, per platform.
DEFAULT_CONFIG_CONNECTOR = {"linux": "fabric"}
DEFAULT_NETWORK_CONNECTOR = "netmiko"


class SnapshotKeeper:
    """Captures, restores and proves one host's snapshot."""

    def __init__(self, ctx: HostContext) -> None:
        self.ctx = ctx
        self._last_capture_transcript: list[dict[str, Any]] = []

    def snapshot_connector(self) -> tuple[str, BackupSpec]:
        ctx = self.ctx
        spec = ctx.runbook.backup.for_platform(ctx.ci.platform)
        name = spec.connector
        if name is None:
            steps = ctx.runbook.steps_for("apply", ctx.ci.platform)
            name = steps[0].connector if steps else None
        if name is None or name == "ansible":
            # Ansible runs playbooks; a snapshot reads state directly.
            name = DEFAULT_CONFIG_CONNECTOR.get(ctx.ci.platform, DEFAULT_NETWORK_CONNECTOR)
        return name, spec

    def capture(self) -> Snapshot:
        ctx = self.ctx
        name, spec = self.snapshot_connector()
        conn = ctx.connector(name)
        try:
            if spec.files:
                # File names may use the parameters ("{{ params.root }}/etc/app.conf").
                context = {"params": ctx.values(), "ci": ci_context(ctx.ci)}
                paths = [str(render_value(p, context, "backup")) for p in spec.files]
                files = {path: read_file(conn, path) for path in paths}
                return Snapshot(name, "files", ctx.ci.platform, files=files, taken=now())
            return Snapshot(
                name,
                spec.source,
                ctx.ci.platform,
                config=conn.get_config(spec.source),
                taken=now(),
            )
        finally:
            self._last_capture_transcript = transcript(conn)

    def backup(self) -> None:
        start = time.perf_counter()
        snapshot = self.capture()
        self.ctx.run.snapshot = snapshot
        self.ctx.record(
            "host.backup",
            {
                "snapshot": snapshot.describe(),
                "transcript": self._last_capture_transcript,
                "duration_ms": ms(time.perf_counter() - start),
            },
            dict(snapshot.blobs()),
        )

    def fresh_running(self, snapshot: Snapshot) -> Snapshot | None:
        """The running configuration a verify step just fetched, when nothing
        changed since: saves a device round trip per host."""
        last = self.ctx.last_running
        if last is None or snapshot.config is None or snapshot.source != "running":
            return None
        connector, config = last
        if connector != snapshot.connector:
            return None
        return Snapshot(connector, "running", self.ctx.ci.platform, config=config, taken=now())

    def auto_rollback(self, snapshot: Snapshot) -> str:
        """Restores the snapshot as a rollback step of its own; the method used."""
        ctx = self.ctx
        step_run = StepRun(
            phase="rollback",
            name="restore snapshot",
            connector=snapshot.connector,
            action="auto",
            started=now(),
        )
        start = time.perf_counter()
        method = "none"
        try:
            method = self.restore(snapshot, step_run)
        except ConnectorError as exc:
            step_run.status = exc.status
            step_run.error = str(exc)
        except Exception as exc:
            log_bug(f"{ctx.ci.name}: restoring the snapshot raised")
            step_run.status = HostState.FAILED
            step_run.error = f"internal error while restoring: {type(exc).__name__}: {exc}"
            ctx.sessions.discard_broken(snapshot.connector, exc)
        finally:
            step_run.duration = time.perf_counter() - start
            redact_step(step_run)
            ctx.run.steps.append(step_run)
        if step_run.failed:
            raise StepFailed(step_run)
        return method

    def restore(self, snapshot: Snapshot, step_run: StepRun) -> str:
        """Puts the snapshot back, method after method (see `runbooks.restore`)."""
        ctx = self.ctx
        if snapshot.config is None:
            raise OpskitError(
                "automatic rollback restores configurations; this snapshot holds files "
                "(give the runbook explicit rollback steps)"
            )
        conn = ctx.connector(snapshot.connector)
        native = None
        if (
            snapshot.connector in ctx.committed_by
            and Capability.NATIVE_ROLLBACK in conn.capabilities
        ):
            # Only what this run committed: a native rollback of an older
            # commit would undo someone else's change.
            def native() -> None:
                conn.rollback()
                ctx.committed_by.discard(snapshot.connector)
                ctx.commit_pending = None

        restorer = SnapshotRestorer(
            conn, snapshot.config, snapshot.source, ctx.ci.platform, ctx.ci.name, native
        )
        try:
            done = restorer.restore()
        finally:
            step_run.transcript += transcript(conn)
            step_run.data["attempts"] = [a.to_dict() for a in restorer.result.attempts]
        step_run.commands = done.commands
        step_run.diff = done.diff
        step_run.output = done.output
        step_run.changed = done.changed
        step_run.data["method"] = done.method
        step_run.status = HostState.CHANGED
        if done.final_config is not None and step_run.action == "auto":
            # The automatic rollback proves right after: no second fetch.
            ctx.restored[snapshot.connector] = done.final_config
        return done.method

    def prove(self, snapshot: Snapshot, method: str, fetched: str | None = None) -> dict[str, Any]:
        """Compares the configuration now (``fetched`` right after the last
        restoration method, else fetched here) with the snapshot."""
        ctx = self.ctx
        after = (
            Snapshot(snapshot.connector, snapshot.source, ctx.ci.platform, fetched, taken=now())
            if fetched is not None and snapshot.config is not None
            else self.capture()
        )
        equal, residual = snapshot.compare(after)
        ctx.run.config_hash = after.hash
        return {
            "method": method,
            "snapshot_hash": snapshot.hash,
            "after_hash": after.hash,
            "equal": equal,
            "residual_diff": residual,
            "ignored_volatile": list(configdiff.VOLATILE.get(ctx.ci.platform, ())),
        }


__all__ = ["DEFAULT_CONFIG_CONNECTOR", "DEFAULT_NETWORK_CONNECTOR", "SnapshotKeeper"]
