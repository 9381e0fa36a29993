"""The one connector interface.

Modelled on NAPALM's `base.py`: every connector (netmiko, napalm, fabric,
ansible) implements `Connector`; the change engine talks only to this
interface and never imports a vendor library. Each connector declares which
optional `Capability`s it has per platform, so that the engine can refuse a
runbook, or raise its risk, when a target lacks one.

Every device call appends a `TranscriptEntry` (command, output, start,
duration, status) to `Connector.transcript`, already redacted, for the ledger.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from opskit.errors import ConnectorError
from opskit.hoststate import CONNECTION_FAILED, HostState
from opskit.secrets import redact

if TYPE_CHECKING:
    from opskit.connectors.actions import ActionSpec
    from opskit.inventory.model import CI


class Capability(StrEnum):
    """Optional abilities a connector may have for a platform."""

    GET_CONFIG = "get_config"  # fetch the running configuration
    CONFIG_LINES = "config_lines"  # apply configuration lines (merge)
    DRY_RUN_DIFF = "dry_run_diff"  # predict the diff without changing anything
    SAVE = "save"  # persist running config to startup
    COMMIT_CONFIRM = "commit_confirm"  # commit with automatic revert unless confirmed
    NATIVE_ROLLBACK = "native_rollback"  # device-side rollback to the previous config
    FULL_REPLACE = "full_replace"  # replace the whole configuration
    CHECK_MODE = "check_mode"  # run a change in check (no-op) mode
    COMMANDS = "commands"  # run show / shell commands
    FILE_TRANSFER = "file_transfer"  # put / get files
    PLAYBOOK = "playbook"  # run an Ansible playbook or module
    VALIDATE = "validate"  # NAPALM-style compliance report


# -- typed errors, each mapped to a host state ----------------------------
class UnreachableError(ConnectorError):
    status = HostState.UNREACHABLE


class AuthenticationError(ConnectorError):
    status = HostState.AUTH_FAILED


class ConnectorTimeout(ConnectorError):
    status = HostState.TIMEOUT


class CommandRejected(ConnectorError):
    status = HostState.REJECTED

    def __init__(self, message: str, *, command: str | None = None, output: str = "") -> None:
        self.command = command
        self.output = output
        super().__init__(message)


class CapabilityMissing(ConnectorError):
    status = HostState.CAPABILITY_MISSING


def breaks_session(error: BaseException) -> bool:
    """True when a session that raised `error` must be closed, not reused: the
    connection itself failed (unreachable, authentication, timeout:
    `opskit.hoststate.CONNECTION_FAILED`), or the error is not a connector's
    typed error, so nothing says the session is still usable. A rejected
    command, a missing capability or another failed operation leaves it
    usable. The one definition of a broken session, for the connection pool
    and the executor's sessions.

    >>> breaks_session(UnreachableError("sw1: unreachable"))
    True
    >>> breaks_session(CommandRejected("% Invalid input"))
    False
    """
    if not isinstance(error, ConnectorError):
        return True
    return error.status in CONNECTION_FAILED


@dataclass
class TranscriptEntry:
    """One command sent in a session, as the transcript keeps it: the command,
    the device's output, when it started, how long it took and the state it
    ended in. `to_dict()` gives e.g. `{"command": "show vlan brief", "output":
    "...", "started": "2026-12-01T22:05:00+00:00", "duration": 0.21, "status":
    "ok"}`.
    """

    command: str
    output: str
    started: datetime
    duration: float
    status: str = HostState.OK

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["started"] = self.started.isoformat()
        return data


@dataclass
class CommandResult:
    """The output of one command (`Connector.send_commands`), with the TextFSM
    rows when asked to parse and ntc-templates has a template for it, e.g.
    `CommandResult("show vlan brief", "...", parsed=[{"vlan_id": "1", ...}])`.
    """

    command: str
    output: str
    # Structured rows from TextFSM (ntc-templates) when a template exists.
    parsed: list[dict[str, Any]] | None = None


@dataclass
class ApplyResult:
    """The result of `apply_config` (or a dry run of it)."""

    changed: bool
    diff: str | None = None  # unified diff of the running config, when known
    committed: bool = False
    # For commit-confirm: the change is live but reverts unless confirmed.
    pending_confirm: bool = False
    output: str = ""


@dataclass
class ActionResult:
    """The result of one runbook step (`Connector.perform`)."""

    status: HostState
    changed: bool = False
    output: str = ""
    diff: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    transcript: list[TranscriptEntry] = field(default_factory=list)


class Connector(ABC):
    """Base class of every connector. One instance is one session to one CI."""

    #: registry name used in runbooks ("netmiko", "napalm", "fabric", "ansible")
    name: ClassVar[str]
    #: capabilities per platform; the "*" key applies to every platform
    capability_map: ClassVar[Mapping[str, frozenset[Capability]]] = {}
    #: the connector's own step actions, which `perform` runs (the built-in
    #: ones, `opskit.connectors.actions.BUILTIN`, the executor maps onto the
    #: methods below)
    actions: ClassVar[Mapping[str, ActionSpec]] = {}

    def __init__(self, ci: CI, *, options: Mapping[str, Any] | None = None) -> None:
        self.ci = ci
        # Per-connector options from the CI (`connection_options[name]`) merged
        # with the caller's.
        self.options: dict[str, Any] = {
            **ci.connection_options.get(self.name, {}),
            **(options or {}),
        }
        self.transcript: list[TranscriptEntry] = []
        self.is_open = False

    # -- capabilities -------------------------------------------------------
    @classmethod
    def capabilities_for(cls, platform: str) -> frozenset[Capability]:
        """What this connector can do on ``platform`` (its own entry plus "*").

        Example: ``frozenset({Capability.COMMANDS, Capability.GET_CONFIG})``;
        empty for a platform it does not support.
        """
        return cls.capability_map.get(platform, frozenset()) | cls.capability_map.get(
            "*", frozenset()
        )

    @classmethod
    def supports(cls, platform: str) -> bool:
        """True when ``platform`` (or "*") is in the connector's capability map."""
        return platform in cls.capability_map or "*" in cls.capability_map

    @property
    def capabilities(self) -> frozenset[Capability]:
        """`capabilities_for` this session's CI platform."""
        return self.capabilities_for(self.ci.platform)

    def require(self, capability: Capability) -> None:
        """Raises CapabilityMissing, before touching the device, unless the
        connector has ``capability`` on this CI's platform."""
        if capability not in self.capabilities:
            raise CapabilityMissing(
                f"{self.ci.name}: connector {self.name} has no {capability.value} "
                f"for platform {self.ci.platform}"
            )

    def require_for_apply(self, *, replace: bool, commit_confirm: int | None) -> None:
        """Raises CapabilityMissing unless this target supports an
        `apply_config` call with these options."""
        self.require(Capability.CONFIG_LINES)
        if replace:
            self.require(Capability.FULL_REPLACE)
        if commit_confirm is not None:
            self.require(Capability.COMMIT_CONFIRM)

    # -- lifecycle ----------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Opens the session (sets ``is_open``). Raises UnreachableError,
        AuthenticationError or ConnectorTimeout, never a vendor exception."""

    @abstractmethod
    def close(self) -> None:
        """Closes the session; closing a closed session does nothing."""

    def __enter__(self) -> Connector:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the common operations (raise CapabilityMissing when not supported) --
    def get_config(self, source: str = "running") -> str:
        """The configuration ``source`` ("running", "startup", or a file path
        where the connector reads files) as text, e.g. ``"hostname sw1\n..."``.
        Requires `Capability.GET_CONFIG` (files: the connector's own rule)."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} cannot fetch configuration")

    def send_commands(self, commands: Sequence[str], *, parse: bool = False) -> list[CommandResult]:
        """Runs show / shell commands in order, one `CommandResult` each, e.g.
        ``[CommandResult("show version", "Cisco IOS ...", parsed=[{"hostname": "sw1"}])]``
        (``parsed`` with ``parse=True`` when a TextFSM template exists). A
        command the device refuses raises CommandRejected. Requires
        `Capability.COMMANDS`."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} cannot run commands")

    def apply_config(
        self,
        lines: Sequence[str],
        *,
        dry_run: bool = False,
        replace: bool = False,
        commit_confirm: int | None = None,
    ) -> ApplyResult:
        """Applies configuration lines (a merge; ``replace=True``: the lines are
        the whole configuration), e.g. ``ApplyResult(changed=True, diff="+vlan
        310\n", committed=True)``. ``dry_run=True`` changes nothing and predicts
        the diff (`Capability.DRY_RUN_DIFF`); ``commit_confirm`` (seconds) leaves
        the commit pending until `confirm_commit`. A refused line raises
        CommandRejected naming it. Requires `Capability.CONFIG_LINES` (and
        `require_for_apply`'s others for the options)."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} cannot apply configuration")

    def confirm_commit(self) -> None:
        """Confirms the commit `apply_config(commit_confirm=...)` left pending.
        Requires `Capability.COMMIT_CONFIRM`."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} has no commit-confirm")

    def rollback(self) -> None:
        """Native rollback to the configuration before the last commit.
        Requires `Capability.NATIVE_ROLLBACK`."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} has no native rollback")

    def save_config(self) -> None:
        """Writes the running configuration to startup (``write memory``).
        Requires `Capability.SAVE`."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} cannot save configuration")

    def get_facts(self) -> dict[str, Any]:
        """Facts about the device, e.g. ``{"hostname": "sw1", "vendor": "Cisco",
        "os_version": "15.0(2)SE", ...}`` (each connector documents its keys;
        ``hostname`` always)."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} cannot gather facts")

    def perform(self, action: str, params: Mapping[str, Any]) -> ActionResult:
        """Runs one of the connector's own runbook actions (``actions``; each
        connector documents their parameters), e.g. ``ActionResult(
        status=HostState.CHANGED, changed=True, output="...")``. Any other
        action raises CapabilityMissing."""
        raise CapabilityMissing(f"{self.ci.name}: {self.name} has no action {action!r}")

    # -- transcript ---------------------------------------------------------
    @contextmanager
    def record(self, command: str) -> Iterator[TranscriptEntry]:
        """Times a device call and appends its (redacted) transcript entry.

        The body sets `entry.output`; an exception marks the entry with the
        error's host status and propagates.
        """
        entry = TranscriptEntry(
            command=redact(command), output="", started=datetime.now(UTC), duration=0.0
        )
        start = time.perf_counter()
        try:
            yield entry
        except ConnectorError as exc:
            entry.status = getattr(exc, "status", HostState.FAILED)
            entry.output = entry.output or str(exc)
            raise
        except Exception:
            entry.status = HostState.FAILED
            raise
        finally:
            entry.duration = time.perf_counter() - start
            entry.output = redact(entry.output)
            self.transcript.append(entry)

    def take_transcript(self) -> list[TranscriptEntry]:
        """Returns and clears the transcript gathered since the last call."""
        entries, self.transcript = self.transcript, []
        return entries
