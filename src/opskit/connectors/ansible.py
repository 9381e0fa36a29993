"""Ansible as a connector: one CI, each operation one ansible-runner run.

The run itself (private data dir, generated inventory, secrets in the
private extra vars, events to per-host `TaskResult`s) is
`opskit.connectors.ansible_run`; its public names are importable from here
too (`execute`, `run_playbook`, `AnsibleRun`, `TaskResult`, `diff_text`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from opskit.connectors.actions import CONNECTOR_ACTIONS, ActionSpec
from opskit.connectors.ansible_run import (
    AUTH_FAILURE,
    DEFAULT_CONNECT_TIMEOUT,
    NETWORK_PLATFORMS,
    AnsibleRun,
    TaskResult,
    build_inventory,
    diff_text,
    execute,
    resolve_playbook,
    run_playbook,
)
from opskit.connectors.base import (
    ActionResult,
    ApplyResult,
    AuthenticationError,
    Capability,
    CommandRejected,
    CommandResult,
    Connector,
    ConnectorTimeout,
    UnreachableError,
)
from opskit.errors import UsageError
from opskit.hoststate import HostState

# Modules used for the common operations, per network OS.
COMMAND_MODULE = {
    "cisco.ios.ios": "cisco.ios.ios_command",
    "cisco.nxos.nxos": "cisco.nxos.nxos_command",
    "arista.eos.eos": "arista.eos.eos_command",
    "junipernetworks.junos.junos": "junipernetworks.junos.junos_command",
}
CONFIG_MODULE = {"cisco.ios.ios": "cisco.ios.ios_config", "arista.eos.eos": "arista.eos.eos_config"}


class AnsibleConnector(Connector):
    """Ansible for one CI. Each operation is one ansible-runner run (seconds).

    Options (``connection_options.ansible`` and the caller's): any
    ``ansible_*`` host variable, ``host_key_checking`` (default true; the lab
    turns it off), ``playbooks_dir``, ``timeout`` (s, per run),
    ``connect_timeout``.
    """

    name = "ansible"
    capability_map: ClassVar[Mapping[str, frozenset[Capability]]] = {
        "*": frozenset({Capability.PLAYBOOK, Capability.CHECK_MODE, Capability.COMMANDS}),
        "cisco_ios": frozenset({Capability.CONFIG_LINES, Capability.DRY_RUN_DIFF}),
        "ios": frozenset({Capability.CONFIG_LINES, Capability.DRY_RUN_DIFF}),
    }
    actions: ClassVar[Mapping[str, ActionSpec]] = CONNECTOR_ACTIONS["ansible"]

    def open(self) -> None:
        # Nothing to connect: each run opens (and closes) its own sessions.
        self.is_open = True

    def close(self) -> None:
        self.is_open = False

    @property
    def network_os(self) -> str | None:
        return self.ci.connection_options.get("ansible", {}).get(
            "ansible_network_os",
            NETWORK_PLATFORMS.get(self.ci.platform, {}).get("ansible_network_os"),
        )

    def _run(self, label: str, **kwargs: Any) -> AnsibleRun:
        options = {
            "playbooks_dir": Path(self.options["playbooks_dir"])
            if self.options.get("playbooks_dir")
            else None,
            "timeout": self.options.get("timeout"),
            "connect_timeout": int(self.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
        }
        with self.record(label) as entry:
            run = execute([self.ci], **{**options, **kwargs})
            tasks = run.hosts.get(self.ci.name, [])
            entry.output = "\n".join(
                f"{t.status.value}: {t.task}" + (f": {t.message}" if t.message else "")
                for t in tasks
            )
            self._raise_for(run, label)
        return run

    def _raise_for(self, run: AnsibleRun, label: str) -> None:
        tasks = run.hosts.get(self.ci.name, [])
        status = run.host_status(self.ci.name)
        if status == HostState.AUTH_FAILED:
            message = next(t.message for t in tasks if AUTH_FAILURE.search(t.message))
            raise AuthenticationError(f"{self.ci.name}: authentication failed: {message}")
        if status == HostState.UNREACHABLE:
            message = next(t.message for t in tasks if t.status == HostState.UNREACHABLE)
            if re.search(r"timed out|timeout", message, re.I):
                raise ConnectorTimeout(f"{self.ci.name}: {message}")
            raise UnreachableError(f"{self.ci.name}: unreachable: {message}")
        if status == HostState.FAILED:
            failed = next(t for t in tasks if t.status == HostState.FAILED and not t.ignored)
            raise CommandRejected(
                f"{self.ci.name}: {label}: task '{failed.task}' failed: {failed.message}",
                command=label,
                output=failed.message,
            )

    def _result(self, run: AnsibleRun, start: int) -> ActionResult:
        tasks = run.hosts.get(self.ci.name, [])
        return ActionResult(
            status=run.host_status(self.ci.name),
            changed=run.changed(self.ci.name),
            output="\n".join(f"{t.status.value}: {t.task}" for t in tasks),
            diff=run.diff(self.ci.name),
            data={"tasks": [t.to_dict() for t in tasks], "rc": run.rc},
            transcript=self.transcript[start:],
        )

    def perform(self, action: str, params: Mapping[str, Any]) -> ActionResult:
        """Runbook actions.

        - ``playbook``: ``path`` (in the workspace's playbooks/), ``extra_vars``,
          ``secret_vars`` (name -> secret reference), ``check``, ``diff``, ``tags``.
        - ``module``: ``name``, ``args``, ``check``, ``diff``.
        A failed task raises CommandRejected, an unreachable host UnreachableError.
        """
        start = len(self.transcript)
        common = {
            "extra_vars": params.get("extra_vars"),
            "secret_vars": params.get("secret_vars"),
            "check": bool(params.get("check", False)),
            "diff": bool(params.get("diff", False)),
        }
        if action == "playbook":
            path = params.get("path") or params.get("playbook")
            if not path:
                raise UsageError(f"{self.ci.name}: the playbook action needs `path`")
            tags = params.get("tags")
            label = f"ansible-playbook {path}" + _flags(common)
            run = self._run(
                label, playbook=path, tags=[tags] if isinstance(tags, str) else tags, **common
            )
            return self._result(run, start)
        if action == "module":
            name = params.get("name")
            if not name:
                raise UsageError(f"{self.ci.name}: the module action needs `name`")
            label = f"ansible module {name}" + _flags(common)
            run = self._run(label, module=name, module_args=params.get("args"), **common)
            return self._result(run, start)
        return super().perform(action, params)

    # -- the common operations, each one run --------------------------------
    def send_commands(self, commands: Sequence[str], *, parse: bool = False) -> list[CommandResult]:
        network_os = self.network_os
        if network_os:
            module = COMMAND_MODULE.get(network_os)
            if module is None:
                return super().send_commands(commands, parse=parse)
            run = self._run(f"ansible {module} " + "; ".join(commands), module=module,
                            module_args={"commands": list(commands)})  # fmt: skip
            task = run.hosts[self.ci.name][-1]
            outputs = task.data.get("stdout") or []
            return [
                CommandResult(command=c, output=str(o))
                for c, o in zip(commands, outputs, strict=False)
            ]
        # One run for all the commands: a task per command.
        tasks = [{"name": c, "ansible.builtin.shell": {"cmd": c}} for c in commands]
        run = self._run("ansible shell " + "; ".join(commands), tasks=tasks)
        return [
            CommandResult(command=c, output=str(t.data.get("stdout", "")))
            for c, t in zip(commands, run.hosts[self.ci.name], strict=False)
        ]

    def apply_config(
        self,
        lines: Sequence[str],
        *,
        dry_run: bool = False,
        replace: bool = False,
        commit_confirm: int | None = None,
    ) -> ApplyResult:
        self.require_for_apply(replace=replace, commit_confirm=commit_confirm)
        module = CONFIG_MODULE.get(self.network_os or "")
        if module is None:
            return super().apply_config(lines, dry_run=dry_run)
        run = self._run(
            f"ansible {module}" + (" --check" if dry_run else "") + " --diff",
            module=module,
            module_args={"lines": list(lines)},
            check=dry_run,
            diff=True,
        )
        return ApplyResult(
            changed=run.changed(self.ci.name),
            diff=run.diff(self.ci.name),
            committed=not dry_run and run.changed(self.ci.name),
        )

    def get_facts(self) -> dict[str, Any]:
        if self.network_os == "cisco.ios.ios":
            module, args = "cisco.ios.ios_facts", {"gather_subset": ["min"]}
        elif self.network_os:
            return super().get_facts()
        else:
            module, args = "ansible.builtin.setup", {"gather_subset": ["min"]}
        run = self._run(f"ansible {module}", module=module, module_args=args)
        return dict(run.hosts[self.ci.name][-1].data.get("ansible_facts", {}))


def _flags(common: Mapping[str, Any]) -> str:
    return (" --check" if common["check"] else "") + (" --diff" if common["diff"] else "")


__all__ = [
    "AnsibleConnector",
    "AnsibleRun",
    "TaskResult",
    "build_inventory",
    "diff_text",
    "execute",
    "resolve_playbook",
    "run_playbook",
]
