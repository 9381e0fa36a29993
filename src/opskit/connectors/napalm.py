"""The NAPALM connector: structured getters and transactional configuration.

The driver follows the CI's platform (``cisco_ios`` -> ``ios``, ``arista_eos``
-> ``eos``, ``juniper_junos`` -> ``junos``, ``cisco_nxos`` -> ``nxos_ssh``,
``cisco_xr`` -> ``iosxr``); ``connection_options.napalm.driver`` overrides it
(``mock`` for NAPALM's own mock driver) and ``connection_options.napalm.optional_args``
are passed to the driver.

Configuration goes through NAPALM's candidate: load (merge, or replace when
asked), `compare_config` is the diff, a dry run discards the candidate, and
a commit may carry ``revert_in`` (commit-confirm) where the driver supports
it; `rollback` is the driver's native rollback. The capability map follows
NAPALM's configuration support matrix.

Actions for runbook steps (`perform`):
    getters     params: getters (list of names, e.g. ["get_facts", "get_vlans"])
    get_config  params: source ("running"|"startup"|"candidate")
    commands    params: commands (list), parse (bool)
    config      params: lines or config (text), replace, dry_run, commit_confirm (seconds)
    confirm     confirms a pending commit-confirm
    rollback    native rollback to the configuration before the last commit
    validate    params: validation (a NAPALM validation document) -> data.report
    facts       -> data.facts
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from napalm import get_network_driver
from napalm.base import exceptions as napalm_errors

from opskit.connectors import credential
from opskit.connectors.actions import CONNECTOR_ACTIONS, ActionSpec
from opskit.connectors.base import (
    ActionResult,
    ApplyResult,
    AuthenticationError,
    Capability,
    CapabilityMissing,
    CommandRejected,
    CommandResult,
    Connector,
    ConnectorTimeout,
    UnreachableError,
)
from opskit.connectors.netmiko import map_error as map_netmiko_error
from opskit.connectors.ssh import quiet_library_logs
from opskit.errors import ConnectorError
from opskit.hoststate import HostState
from opskit.secrets import redact

if TYPE_CHECKING:
    from opskit.inventory.model import CI

# The drivers' SSH/NETCONF libraries log at DEBUG, not on stderr (opskit.connectors.ssh).
quiet_library_logs()

C = Capability

#: NAPALM driver per CI platform (netmiko device_type names).
DRIVERS: dict[str, str] = {
    "cisco_ios": "ios",
    "cisco_xe": "ios",
    "arista_eos": "eos",
    "juniper_junos": "junos",
    "cisco_nxos": "nxos_ssh",
    "cisco_xr": "iosxr",
}

_BASE = frozenset({C.GET_CONFIG, C.CONFIG_LINES, C.DRY_RUN_DIFF, C.COMMANDS, C.VALIDATE, C.SAVE})
# NAPALM's configuration support matrix (docs/support): replace and merge
# everywhere; commit-confirm on EOS, Junos and IOS; native rollback on EOS
# (emulated by the driver), Junos, IOS-XR and IOS. NX-OS rolls back replaces
# only ("No for merges"), so it is not declared.
DRIVER_CAPABILITIES: dict[str, frozenset[Capability]] = {
    "ios": _BASE | {C.FULL_REPLACE, C.COMMIT_CONFIRM, C.NATIVE_ROLLBACK},
    "eos": _BASE | {C.FULL_REPLACE, C.COMMIT_CONFIRM, C.NATIVE_ROLLBACK},
    "junos": _BASE | {C.FULL_REPLACE, C.COMMIT_CONFIRM, C.NATIVE_ROLLBACK},
    "iosxr": _BASE | {C.FULL_REPLACE, C.NATIVE_ROLLBACK},
    "iosxr_netconf": _BASE | {C.FULL_REPLACE, C.NATIVE_ROLLBACK},
    "nxos": _BASE | {C.FULL_REPLACE},
    "nxos_ssh": _BASE | {C.FULL_REPLACE},
    # NAPALM's mock driver models the whole interface (tests, demos).
    "mock": _BASE | {C.FULL_REPLACE, C.COMMIT_CONFIRM, C.NATIVE_ROLLBACK},
}

DEFAULTS: dict[str, Any] = {"timeout": 30, "conn_timeout": 5.0}


def map_error(ci_name: str, exc: BaseException, *, during: str) -> ConnectorError:
    """A typed, one-line, redacted error for a NAPALM (or underlying netmiko) exception."""
    if isinstance(exc, ConnectorError):
        return exc
    detail = " ".join(redact(str(exc)).split())[:300] or type(exc).__name__
    if isinstance(exc, napalm_errors.ConnectAuthError):
        return AuthenticationError(f"{ci_name}: authentication failed ({during})")
    if isinstance(exc, napalm_errors.ConnectTimeoutError | napalm_errors.CommandTimeoutException):
        return ConnectorTimeout(f"{ci_name}: timed out ({during}): {detail}")
    if isinstance(exc, napalm_errors.ConnectionException):  # incl. ConnectionClosedException
        return UnreachableError(f"{ci_name}: unreachable ({during}): {detail}")
    if isinstance(
        exc,
        napalm_errors.MergeConfigException
        | napalm_errors.ReplaceConfigException
        | napalm_errors.CommandErrorException
        | napalm_errors.CommitError
        | napalm_errors.CommitConfirmException,
    ):
        return CommandRejected(f"{ci_name}: {during} refused by the device: {detail}")
    if isinstance(exc, NotImplementedError):
        return CapabilityMissing(f"{ci_name}: the NAPALM driver cannot {during}")
    if isinstance(exc, napalm_errors.NapalmException):
        return ConnectorError(f"{ci_name}: {during} failed: {detail}")
    # The ios/nxos_ssh drivers run on netmiko, whose exceptions pass through.
    return map_netmiko_error(ci_name, exc, during=during)


class NapalmConnector(Connector):
    """One NAPALM driver session to one network device (driver by platform)."""

    name = "napalm"
    capability_map: ClassVar[Mapping[str, frozenset[Capability]]] = {
        platform: DRIVER_CAPABILITIES[driver] for platform, driver in DRIVERS.items()
    }
    actions: ClassVar[Mapping[str, ActionSpec]] = CONNECTOR_ACTIONS["napalm"]

    def __init__(self, ci: CI, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(ci, options=options)
        self.settings: dict[str, Any] = {**DEFAULTS, **self.options}
        self.driver_name: str = self.settings.get("driver") or DRIVERS.get(ci.platform, "")
        self.device: Any = None

    @property
    def capabilities(self) -> frozenset[Capability]:
        """What the effective driver can do (the CI may override the driver)."""
        return DRIVER_CAPABILITIES.get(self.driver_name, frozenset())

    # -- lifecycle ----------------------------------------------------------
    def open(self) -> None:
        if self.is_open:
            return
        if not self.driver_name:
            raise CapabilityMissing(
                f"{self.ci.name}: no NAPALM driver for platform {self.ci.platform!r}; "
                "set connection_options.napalm.driver"
            )
        with self.record(f"open napalm/{self.driver_name} {self.ci.host}:{self.ci.port}") as entry:
            optional_args: dict[str, Any] = {
                "allow_agent": False,  # only the CI's own credentials
                "use_keys": False,
                "conn_timeout": self.settings["conn_timeout"],
                **dict(self.settings.get("optional_args") or {}),
            }
            if self.ci.port:
                optional_args.setdefault("port", self.ci.port)
            secret = credential(self.ci, "enable_secret")
            if secret is not None:
                optional_args["secret"] = secret
            key_file = self.ci.credentials.get("key_file")
            if key_file is not None and getattr(key_file, "file", None):
                credential(self.ci, "key_file")  # registered for redaction
                optional_args["key_file"] = key_file.file
                optional_args["use_keys"] = True
            try:
                driver_class = get_network_driver(self.driver_name)
            except napalm_errors.ModuleImportError as exc:
                raise CapabilityMissing(f"{self.ci.name}: NAPALM driver: {exc}") from None
            device = driver_class(
                self.ci.host or "",
                credential(self.ci, "username") or "",
                credential(self.ci, "password") or "",
                timeout=int(self.settings["timeout"]),
                optional_args=optional_args,
            )
            try:
                device.open()
            except Exception as exc:
                raise map_error(self.ci.name, exc, during="open") from None
            self.device = device
            entry.output = f"driver {self.driver_name}"
        self.is_open = True

    def close(self) -> None:
        device, self.device = self.device, None
        self.is_open = False
        if device is not None:
            try:
                device.close()
            except Exception:  # the session may already be gone; closing is best effort
                return

    def _call(self, during: str, method: str, *args: Any, **kwargs: Any) -> Any:
        if not self.is_open:
            self.open()
        try:
            return getattr(self.device, method)(*args, **kwargs)
        except Exception as exc:
            raise map_error(self.ci.name, exc, during=during) from None

    # -- reading --------------------------------------------------------------
    def get(self, getter: str, **kwargs: Any) -> Any:
        """Runs one NAPALM getter (``get_facts``, ``get_vlans``, ``get_interfaces``...)."""
        if not getter.startswith("get_"):
            raise ConnectorError(f"{self.ci.name}: {getter!r} is not a NAPALM getter")
        with self.record(getter) as entry:
            result = self._call(getter, getter, **kwargs)
            entry.output = _summary(result)
        return result

    def get_facts(self) -> dict[str, Any]:
        return dict(self.get("get_facts"))

    def get_config(self, source: str = "running") -> str:
        self.require(C.GET_CONFIG)
        if source not in ("running", "startup", "candidate"):
            raise ConnectorError(f"{self.ci.name}: unknown configuration source {source!r}")
        with self.record(f"get_config {source}") as entry:
            configs = self._call("get_config", "get_config", retrieve=source)
            entry.output = str(configs.get(source, ""))
        return str(configs.get(source, ""))

    def send_commands(self, commands: Sequence[str], *, parse: bool = False) -> list[CommandResult]:
        self.require(C.COMMANDS)
        results = []
        for command in commands:
            with self.record(command) as entry:
                output = str(self._call(command, "cli", [command]).get(command, ""))
                entry.output = output
            parsed = None
            if parse:
                from ntc_templates.parse import parse_output

                try:
                    parsed = parse_output(platform=self.ci.platform, command=command, data=output)
                except Exception:  # no template for this command
                    parsed = None
            results.append(CommandResult(command, redact(output), parsed or None))
        return results

    # -- configuring -----------------------------------------------------------
    def apply_config(
        self,
        lines: Sequence[str],
        *,
        dry_run: bool = False,
        replace: bool = False,
        commit_confirm: int | None = None,
    ) -> ApplyResult:
        self.require_for_apply(replace=replace, commit_confirm=commit_confirm)
        if commit_confirm is not None and commit_confirm <= 0:
            raise ConnectorError(f"{self.ci.name}: commit_confirm must be positive seconds")
        text = "\n".join(lines) + "\n"
        load = "load_replace_candidate" if replace else "load_merge_candidate"
        try:
            with self.record(f"{load}\n{text}") as entry:
                self._call(load, load, config=text)
                diff = str(self._call("compare_config", "compare_config") or "")
                entry.output = diff
        except ConnectorError:
            self._discard_quietly()
            raise
        if dry_run or not diff.strip():
            self.discard()
            return ApplyResult(changed=bool(diff.strip()), diff=diff, committed=False)
        command = "commit_config" + (f" revert_in={commit_confirm}" if commit_confirm else "")
        try:
            with self.record(command):
                if commit_confirm:
                    self._call("commit_config", "commit_config", revert_in=commit_confirm)
                else:
                    self._call("commit_config", "commit_config")
        except ConnectorError:
            self._discard_quietly()
            raise
        return ApplyResult(
            changed=True, diff=diff, committed=True, pending_confirm=bool(commit_confirm)
        )

    def discard(self) -> None:
        with self.record("discard_config"):
            self._call("discard_config", "discard_config")

    def _discard_quietly(self) -> None:
        """After a failed load or commit: drop the candidate, keep the first error."""
        with contextlib.suppress(ConnectorError):
            self.discard()

    def has_pending_commit(self) -> bool:
        try:
            return bool(self._call("has_pending_commit", "has_pending_commit"))
        except CapabilityMissing:
            return False

    def confirm_commit(self) -> None:
        self.require(C.COMMIT_CONFIRM)
        with self.record("confirm_commit"):
            if not self.has_pending_commit():
                raise ConnectorError(f"{self.ci.name}: no commit is waiting for confirmation")
            self._call("confirm_commit", "confirm_commit")

    def rollback(self) -> None:
        self.require(C.NATIVE_ROLLBACK)
        with self.record("rollback"):
            self._call("rollback", "rollback")

    def save_config(self) -> None:
        """NAPALM's commit already persists the configuration (e.g. `write mem` on IOS)."""
        self.require(C.SAVE)
        with self.record("save_config") as entry:
            entry.output = "nothing to do: the NAPALM commit saved the configuration"

    def compliance_report(self, validation: Mapping[str, Any] | Sequence[Any]) -> dict[str, Any]:
        """NAPALM validate: does the device state match the validation document?"""
        self.require(C.VALIDATE)
        document = list(validation) if not isinstance(validation, Mapping) else [dict(validation)]
        with self.record("compliance_report") as entry:
            report = self._call("validate", "compliance_report", validation_source=document)
            entry.output = f"complies: {report.get('complies')}"
        return dict(report)

    # -- runbook steps ------------------------------------------------------
    def perform(self, action: str, params: Mapping[str, Any]) -> ActionResult:
        """Runbook actions of NAPALM's own (`opskit.connectors.actions`).

        - ``getters``: ``getters`` (names, default ``["get_facts"]``); ``data``
          maps each name to its answer.
        - ``validate``: ``validation`` (a NAPALM validation document); status
          FAILED when the device does not comply, ``data["report"]``.
        - ``confirm``: confirms a pending commit-confirm.
        - ``rollback``: the device's rollback of the last commit.
        """
        if action not in self.actions:
            raise CapabilityMissing(f"{self.ci.name}: napalm has no action {action!r}")
        start = len(self.transcript)
        result = ActionResult(status=HostState.OK)
        if action == "getters":
            names = list(params.get("getters") or ["get_facts"])
            result.data = {name: self.get(name) for name in names}
        elif action == "confirm":
            self.confirm_commit()
        elif action == "rollback":
            self.rollback()
            result.status, result.changed = HostState.CHANGED, True
        else:  # validate
            report = self.compliance_report(params.get("validation") or {})
            result.data = {"report": report}
            if not report.get("complies"):
                result.status = HostState.FAILED
                result.output = "the device does not comply with the validation document"
        result.transcript = self.transcript[start:]
        return result


def _summary(result: Any) -> str:
    """A short transcript line for a getter's structured answer."""
    import json

    text = json.dumps(result, default=str, sort_keys=True)
    return text if len(text) <= 2000 else text[:2000] + "..."
