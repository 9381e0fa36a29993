"""Taking a host's operational state snapshot during a run, and judging the change by it.

`capture(conn, platform, facts)` reads the facts from a device, read-only:
a NAPALM connector through its ``getters`` action, every other through the
fixed ``show`` commands of `opskit.runbooks.opstate.COMMANDS` parsed by
ntc-templates (never a runbook's own command). A fact the platform does not
report, or whose command the device refuses, is ``{"unavailable": reason}``
and is not compared.

`StateWatch` is the executor's part: `before()` (after the backup) captures
and records ``host.state_before``; `after()` (after apply, before the verify
steps) captures again, diffs, records ``host.state_after`` and returns a
failed verify `StepRun` naming every difference no ``allow`` pattern of the
runbook explains (None when there is none), which fails verification and
rolls the host back like any failed verify step.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from opskit.connectors.actions import CONNECTOR_ACTIONS
from opskit.connectors.base import CommandRejected, Connector
from opskit.errors import ConnectorError, OpskitError
from opskit.hoststate import HostState
from opskit.runbooks import opstate
from opskit.runbooks.backup import SnapshotKeeper
from opskit.runbooks.context import HostContext
from opskit.runbooks.model import StateSnapshotSpec
from opskit.runbooks.records import now, transcript
from opskit.runbooks.results import StepRun, ms
from opskit.runbooks.templating import ci_context, render_value

#: The step name a failed state comparison carries in the verify phase.
CHECK_NAME = "nothing else changed (operational state)"


def _read_only_getters() -> None:
    # The NAPALM path uses the `getters` action; it must be declared read-only.
    if CONNECTOR_ACTIONS["napalm"]["getters"].mutates:  # pragma: no cover - a declaration bug
        raise OpskitError("state snapshots need a read-only getters action")


def capture(conn: Connector, platform: str, facts: Sequence[str]) -> dict[str, Any]:
    """The normalised state of `facts` on the device behind `conn`, e.g.
    ``{"vlans": {"1": {...}}, "routes": {"unavailable": "..."}}``."""
    if conn.name == "napalm":
        return _capture_napalm(conn, facts)
    commands = opstate.COMMANDS.get(platform, {})
    state: dict[str, Any] = {}
    for fact in facts:
        if fact not in commands:
            state[fact] = {"unavailable": f"no show command for {platform}"}
            continue
        rows: list[dict[str, Any]] = []
        refused: list[str] = []
        for command in commands[fact]:
            if not command.startswith("show "):  # pragma: no cover - a catalogue bug
                raise OpskitError(f"state command {command!r} is not a show command")
            try:
                result = conn.send_commands([command], parse=True)[0]
            except CommandRejected as exc:
                refused.append(str(exc))
                continue
            rows.extend(result.parsed or [])
        if refused and len(refused) == len(commands[fact]):
            state[fact] = {"unavailable": "; ".join(refused)}
        else:
            state[fact] = opstate.normalise(fact, rows)
    return state


def _capture_napalm(conn: Connector, facts: Sequence[str]) -> dict[str, Any]:
    _read_only_getters()
    state: dict[str, Any] = {}
    for fact in facts:
        getter = opstate.GETTERS.get(fact)
        if getter is None:
            state[fact] = {"unavailable": "no NAPALM getter"}
            continue
        try:
            answer = conn.perform("getters", {"getters": [getter]}).data[getter]
        except ConnectorError as exc:
            state[fact] = {"unavailable": str(exc)}
            continue
        state[fact] = opstate.normalise(fact, opstate.napalm_rows(fact, answer))
    return state


class StateWatch:
    """The before/after state snapshots of one host run (see the module doc)."""

    def __init__(self, ctx: HostContext, snapshots: SnapshotKeeper, spec: StateSnapshotSpec):
        self.ctx = ctx
        self.snapshots = snapshots
        self.spec = spec
        self.allow: list[str] = []
        self.before_state: dict[str, Any] | None = None

    def _connector_name(self) -> str:
        return self.spec.connector or self.snapshots.snapshot_connector()[0]

    def _take(self) -> tuple[dict[str, Any], list[dict[str, Any]], float]:
        start = time.perf_counter()
        name = self._connector_name()
        conn = self.ctx.connector(name)
        try:
            state = capture(conn, self.ctx.ci.platform, self.spec.facts)
        except ConnectorError as exc:
            self.ctx.sessions.discard_if_broken(name, exc)
            raise
        finally:
            sent = transcript(conn)
        return state, sent, time.perf_counter() - start

    def before(self) -> None:
        """Renders the allowed patterns (a template error fails before apply) and
        records the state before the change."""
        context = {"params": self.ctx.values(), "ci": ci_context(self.ctx.ci)}
        self.allow = [
            str(render_value(p, context, "state_snapshot.allow")) for p in self.spec.allow
        ]
        state, sent, took = self._take()
        self.before_state = state
        self.ctx.record(
            "host.state_before",
            {
                "facts": opstate.summary(state),
                "allow": self.allow,
                "commands": [t["command"] for t in sent],
                "taken": now(),
                "duration_ms": ms(took),
            },
            {"state": opstate.state_text(state)},
        )

    def after(self) -> StepRun | None:
        """Records the state after the change and its differences; a failed
        verify step when some difference is not explained."""
        assert self.before_state is not None, "after() without before()"
        started = now()
        state, sent, took = self._take()
        differences = opstate.diff(self.before_state, state, self.spec.ignore)
        explained, unexplained = opstate.explain(differences, self.allow)
        text = "".join(f"{d.describe()}\n" for d in differences)
        blobs: dict[str, bytes | str] = {"state": opstate.state_text(state)}
        if text:
            blobs["state_diff"] = text
        self.ctx.record(
            "host.state_after",
            {
                "facts": opstate.summary(state),
                "allow": self.allow,
                "explained": [d.describe() for d in explained],
                "unexplained": [d.describe() for d in unexplained],
                "commands": [t["command"] for t in sent],
                "taken": now(),
                "duration_ms": ms(took),
            },
            blobs,
        )
        if not unexplained:
            return None
        return self._failed_step(unexplained, sent, started, took)

    def after_rollback(self) -> dict[str, Any] | None:
        """The state after a rollback against the state before the change:
        ``{"equal": bool, "differences": [...]}`` (recorded with the rollback,
        not judged: sessions and neighbours may take a while to come back);
        None when there is nothing to compare or the state cannot be read."""
        if self.before_state is None:
            return None
        try:
            state, _, _ = self._take()
        except OpskitError as exc:
            return {"equal": None, "error": str(exc)}
        differences = opstate.diff(self.before_state, state, self.spec.ignore)
        return {"equal": not differences, "differences": [d.describe() for d in differences]}

    def _failed_step(
        self,
        unexplained: list[opstate.Difference],
        sent: list[dict[str, Any]],
        started: str,
        took: float,
    ) -> StepRun:
        shown = "; ".join(d.describe() for d in unexplained[:10])
        more = f" (and {len(unexplained) - 10} more)" if len(unexplained) > 10 else ""
        return StepRun(
            phase="verify",
            name=CHECK_NAME,
            connector=self._connector_name(),
            action="state_snapshot",
            started=started,
            status=HostState.FAILED,
            error=f"state changed beyond what the change allows: {shown}{more}",
            commands=[t["command"] for t in sent],
            duration=took,
        )


__all__ = ["CHECK_NAME", "StateWatch", "capture"]
