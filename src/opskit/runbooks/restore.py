"""Restoring a configuration snapshot, method after method, until it holds.

The automatic rollback tries, in order, every method the connector offers:

1. ``native_rollback``: the device's own rollback of the commit this run made;
2. ``replace``: a full replace with the snapshot (connectors that can);
3. ``remediation``: the lines hier_config computes from the current
   configuration to the snapshot;
4. ``line_by_line``: every line the device has more often than the snapshot
   negated, every missing line added, duplicates counted (IOS-like platforms).

A method that raises (hier_config cannot compute a remediation, the device
refuses a line) or leaves the configuration different from the snapshot
hands over to the next one. The configuration is fetched after each method;
the method after which it equals the snapshot is the one reported, and that
last fetch is the one the executor's proof compares.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from opskit import configdiff
from opskit.connectors.base import Capability, Connector
from opskit.errors import ConnectorError, OpskitError
from opskit.hoststate import CONNECTION_FAILED


@dataclass
class Attempt:
    """One restoration method tried: the commands sent, whether the configuration
    then `equal`s the snapshot (None: it could not be fetched), the error, and
    how many lines still differ.
    """

    method: str
    commands: list[str] = field(default_factory=list)
    equal: bool | None = None  # None: not checked (the connector cannot fetch a configuration)
    error: str | None = None
    residual_lines: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "commands": len(self.commands),
            "equal": self.equal,
            "error": self.error,
            "residual_lines": self.residual_lines,
        }


@dataclass
class Restoration:
    """How a snapshot was restored: the `method` that made the device equal to
    it (or the last tried), every attempt in order, the commands, and the
    configuration fetched last (what the equality proof compares).
    """

    method: str  # the method that left the device equal to the snapshot (or the last tried)
    attempts: list[Attempt]
    commands: list[str] = field(default_factory=list)
    diff: str | None = None
    output: str = ""
    changed: bool = False
    # The configuration fetched after the last method (the proof reuses it).
    final_config: str | None = None


@dataclass
class SnapshotRestorer:
    """Restores `config` on an open connector, trying `methods()` in order until
    one leaves the device equal to the snapshot; `restore()` returns the
    `Restoration` (see the module).
    """

    conn: Connector
    config: str
    source: str
    platform: str
    host: str
    # The device's rollback of what this run committed, when there is one.
    native: Callable[[], None] | None = None
    result: Restoration = field(init=False, default_factory=lambda: Restoration("none", []))

    def methods(self) -> list[str]:
        caps = self.conn.capabilities
        methods = ["native_rollback"] if self.native is not None else []
        if Capability.FULL_REPLACE in caps:
            methods.append("replace")
        if Capability.GET_CONFIG in caps and Capability.CONFIG_LINES in caps:
            methods.append("remediation")
            if self.platform in configdiff.LINE_BY_LINE_PLATFORMS:
                methods.append("line_by_line")
        return methods

    def restore(self) -> Restoration:
        methods = self.methods()
        if not methods:
            raise OpskitError(
                f"{self.host}: {self.conn.name} can neither replace nor fetch and apply "
                "a configuration; the snapshot cannot be restored automatically"
            )
        self.result = Restoration(method=methods[0], attempts=[])
        last_error: OpskitError | None = None
        for method in methods:
            attempt = Attempt(method)
            self.result.attempts.append(attempt)
            self.result.method = method
            try:
                self._run(method, attempt)
                holds = self._holds(attempt)
            except ConnectorError as exc:
                attempt.error = str(exc)
                if exc.status in CONNECTION_FAILED:  # gone: no other method can do better
                    raise
                last_error = exc
                continue
            except OpskitError as exc:
                attempt.error = str(exc)
                last_error = exc
                continue
            last_error = None
            if holds:
                break
        if last_error is not None and not any(a.error is None for a in self.result.attempts):
            raise last_error
        return self.result

    def _run(self, method: str, attempt: Attempt) -> None:
        if method == "native_rollback":
            if self.native is not None:
                self.native()
            self.result.changed = True
            return
        if method == "replace":
            attempt.commands = self.config.splitlines()
            self._apply(attempt.commands, replace=True)
            return
        current = self.conn.get_config(self.source)
        compute = configdiff.remediation if method == "remediation" else configdiff.line_restoration
        attempt.commands = compute(current, self.config, self.platform, host=self.host)
        self.result.commands += attempt.commands
        if attempt.commands:
            self._apply(attempt.commands)

    def _apply(self, lines: list[str], *, replace: bool = False) -> None:
        applied = self.conn.apply_config(lines, replace=replace)
        self.result.diff = applied.diff
        self.result.output = getattr(applied, "output", "") or ""
        self.result.changed = self.result.changed or applied.changed

    def _holds(self, attempt: Attempt) -> bool:
        """True when the device now equals the snapshot (fetched again)."""
        if Capability.GET_CONFIG not in self.conn.capabilities:
            return True  # nothing to compare with here: the proof decides
        now = self.conn.get_config(self.source)
        self.result.final_config = now
        attempt.equal, residual = configdiff.equal(self.config, now, self.platform)
        attempt.residual_lines = sum(
            1
            for line in residual.splitlines()
            if line[:1] in "+-" and line[:3] not in ("+++", "---")
        )
        return attempt.equal
