"""One host run's shared state: the runbook, the CI, its sessions and its record.

`HostContext` is what the step runner (`opskit.runbooks.steps`), the
snapshot keeper (`opskit.runbooks.backup`) and the phase machine
(`opskit.runbooks.phases`) share while one runbook runs on one CI: the
parameters (secret references resolved on first use), the pool sessions
held until the host is done, the recorder, and what the run has done so far
(applied anything, committed through which connector, a pending commit-confirm).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager, suppress
from pathlib import Path
from typing import Any, Literal, Protocol

from opskit.connectors.base import Connector, breaks_session
from opskit.errors import ConnectorError
from opskit.inventory.model import CI
from opskit.runbooks.model import Expectation, Runbook, Step
from opskit.runbooks.parameters import mark_multiline
from opskit.runbooks.records import record_ready, share_blob_texts
from opskit.runbooks.results import HostRun
from opskit.runbooks.templating import ci_context, render_value
from opskit.secrets import REDACTOR, SecretRef

Recorder = Callable[[str, dict[str, Any], "dict[str, bytes | str] | None"], None]
RollbackMode = Literal["on_failure", "never"]


class ConnectorPool(Protocol):
    """What the executor needs of `opskit.connectors.pool.ConnectionPool`."""

    def session(self, ci: CI, connector: str = ...) -> AbstractContextManager[Connector]: ...


class Sessions:
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
        """A connection-level failure (`breaks_session`): hand the session back
        as broken (the pool closes it); any other keeps it for the run."""
        if breaks_session(exc) and name in self._open:
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


def resolve_params(runbook: Runbook, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters with secret references resolved (values registered for redaction)."""
    resolved = dict(params)
    for name in runbook.secret_parameters:
        if name in resolved and resolved[name] is not None:
            resolved[name] = SecretRef.parse(resolved[name], where=f"parameter {name}").resolve()
    # Values a runbook lets span lines are marked for the one-line rule of rendering.
    return mark_multiline(runbook.parameters, resolved)


class HostContext:
    """The state one runbook run on one CI shares between its parts."""

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
        self.sessions = Sessions(pool, ci)
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
        # (connector, text) of the running configuration last fetched by a verify step
        self.last_running: tuple[str, str] | None = None
        # connector -> the configuration fetched right after an automatic restore
        self.restored: dict[str, str] = {}

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
            share_blob_texts(clean_payload, clean_blobs)  # a configuration once, as its blob
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


def _default_templates_dir(runbook: Runbook) -> Path | None:
    return None if runbook.path is None else _templates_dir_of(runbook.path)


@functools.lru_cache(maxsize=64)
def _templates_dir_of(runbook_path: Path) -> Path:
    # Once per runbook file, not per host: resolve() is a system call per component.
    return runbook_path.resolve().parents[2] / "templates"


__all__ = [
    "ConnectorPool",
    "HostContext",
    "Recorder",
    "RollbackMode",
    "Sessions",
    "resolve_params",
]
