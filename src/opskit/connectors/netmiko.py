"""The netmiko connector: CLI sessions to network devices over SSH.

Credentials are resolved when the session opens (and registered for
redaction). Connecting retries transient socket errors; refused or
unroutable connections fail fast as `UnreachableError`. Configuration lines
are sent one at a time and every device answer is checked for IOS-style
rejections ("% Invalid input", "% Incomplete command", ...), so that a refused
line is a `CommandRejected` naming the line, never a silent success.

Dry runs predict the diff with hier_config (running config + the lines ->
future config), for the platforms hier_config models. netmiko has no
commit-confirm, native rollback or full replace for IOS: those capabilities
are not declared (use the napalm connector where the driver has them).

Actions for runbook steps (`perform`):
    commands    params: commands (list), parse (bool)  -> data.results
    config      params: lines (list), dry_run (bool)   -> diff, changed
    save        -> copies running to startup
    get_config  params: source ("running"|"startup")   -> data.config
    facts       -> data.facts
"""

from __future__ import annotations

import contextlib
import errno
import io
import re
import socket
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import paramiko
from netmiko import ConnectHandler
from netmiko.exceptions import (
    NetmikoAuthenticationException,
    NetmikoBaseException,
    NetmikoTimeoutException,
    ReadTimeout,
)
from paramiko.ssh_exception import NoValidConnectionsError

from opskit.configdiff.model import SECTION_OPENERS
from opskit.connectors import credential
from opskit.connectors.actions import CONNECTOR_ACTIONS, ActionSpec
from opskit.connectors.base import (
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
from opskit.connectors.ssh import quiet_library_logs, tune_paramiko
from opskit.errors import ConnectorError, OpskitError, SecretError
from opskit.secrets import REDACTOR, redact

if TYPE_CHECKING:
    from opskit.inventory.model import CI

# Every packet's MAC compared in C; paramiko's handshake tracebacks at DEBUG,
# not on stderr (see opskit.connectors.ssh).
tune_paramiko()
quiet_library_logs()

C = Capability
_NETWORK = frozenset({C.GET_CONFIG, C.CONFIG_LINES, C.SAVE, C.COMMANDS})
_PREDICTABLE = _NETWORK | {C.DRY_RUN_DIFF}

# hier_config platform per netmiko device_type (dry-run diff prediction).
HIER_PLATFORMS: dict[str, str] = {
    "cisco_ios": "CISCO_IOS",
    "cisco_xe": "CISCO_IOS",
    "cisco_nxos": "CISCO_NXOS",
    "cisco_xr": "CISCO_XR",
    "arista_eos": "ARISTA_EOS",
    "juniper_junos": "JUNIPER_JUNOS",
    "hp_procurve": "HP_PROCURVE",
    "hp_comware": "HP_COMWARE5",
    "huawei": "HUAWEI_VRP",
    "vyos": "VYOS",
    "fortinet": "FORTINET_FORTIOS",
}

# Device answers that mean "this line was refused".
REJECTION = re.compile(
    r"^\s*(?:"
    r"% ?Invalid input"
    r"|% ?Incomplete command"
    r"|% ?Ambiguous command"
    r"|% ?Unknown command"
    r"|% ?Unrecognized command"
    r"|% ?Error"
    r"|% ?Bad "
    r"|% ?Access denied"
    r"|% ?Invalid"
    r"|Command rejected"
    r"|syntax error"
    r"|error: "
    r"|ERROR: "
    r")[^\r\n]*",
    re.M,
)

DEFAULTS: dict[str, Any] = {
    "conn_timeout": 5.0,  # TCP connect
    "auth_timeout": 10.0,
    "banner_timeout": 10.0,  # SSH banner: a port that accepts but never speaks
    "read_timeout": 30.0,  # per command
    "retries": 2,  # extra attempts on transient socket errors
    "retry_delay": 0.5,
}
# Our option names; everything else in connection_options.netmiko goes to ConnectHandler.
_OWN_OPTIONS = {"read_timeout", "retries", "retry_delay", "device_type", "session_log", "diff"}


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _is_unreachable(exc: BaseException) -> bool:
    for item in _chain(exc):
        if isinstance(item, ConnectionRefusedError | NoValidConnectionsError):
            return True
        if isinstance(item, OSError) and item.errno in (
            errno.ECONNREFUSED,
            errno.EHOSTUNREACH,
            errno.ENETUNREACH,
            errno.EADDRNOTAVAIL,
        ):
            return True
        if isinstance(item, socket.gaierror):
            return True
    return False


def _is_transient(exc: BaseException) -> bool:
    """Errors worth another attempt: the peer dropped the connection mid-handshake."""
    for item in _chain(exc):
        if isinstance(item, ConnectionResetError | BrokenPipeError | EOFError):
            return True
        if isinstance(item, paramiko.SSHException) and "reset" in str(item).lower():
            return True
    return False


def map_error(ci_name: str, exc: BaseException, *, during: str) -> ConnectorError:
    """A typed, one-line, redacted error for a netmiko/paramiko exception."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, NetmikoAuthenticationException | paramiko.AuthenticationException):
        return AuthenticationError(f"{ci_name}: authentication failed ({during})")
    if _is_unreachable(exc):
        return UnreachableError(f"{ci_name}: unreachable ({during}: refused or no route)")
    if any(isinstance(item, socket.timeout | TimeoutError) for item in _chain(exc)) and (
        during == "connect" and "TCP connection" in str(exc)
    ):
        return UnreachableError(f"{ci_name}: unreachable ({during}: TCP connect timed out)")
    if _is_transient(exc):  # still reset after the retries
        return UnreachableError(f"{ci_name}: unreachable ({during}: the connection was reset)")
    if isinstance(exc, NetmikoTimeoutException | ReadTimeout | socket.timeout | TimeoutError):
        return ConnectorTimeout(f"{ci_name}: timed out ({during})")
    if isinstance(exc, paramiko.SSHException) and "banner" in str(exc).lower():
        return ConnectorTimeout(f"{ci_name}: timed out waiting for the SSH banner ({during})")
    first_line = redact(str(exc)).strip().splitlines()[:1]
    detail = first_line[0] if first_line else type(exc).__name__
    return ConnectorError(f"{ci_name}: {during} failed: {detail}")


def _strip_config_preamble(text: str) -> str:
    """Drops IOS's 'Building configuration...', 'Current configuration : N bytes'
    and 'Using N out of M bytes' lines: not configuration, and they change with
    every edit."""
    lines = text.splitlines()
    while lines and (
        not lines[0].strip()
        or lines[0].startswith("Building configuration")
        or lines[0].startswith("Current configuration")
        or (lines[0].startswith("Using ") and "bytes" in lines[0])
    ):
        lines.pop(0)
    return "\n".join(lines).rstrip() + "\n" if lines else ""


def config_diff(platform: str, before: str, after: str) -> str:
    """A configuration-aware diff ('+'/'-' lines under their parents)."""
    name = HIER_PLATFORMS.get(platform)
    if name is None:
        import difflib

        return "".join(
            difflib.unified_diff(
                before.splitlines(True), after.splitlines(True), "before", "after", n=1
            )
        )
    # opskit.configdiff reads any configuration a device prints (repeated lines too).
    from opskit.configdiff import diff as text_diff
    from opskit.configdiff import hier_diff

    try:
        diff = hier_diff(before, after, platform)
    except OpskitError:
        # The lines are on the device already: a plain diff is still a record of them.
        return text_diff(before, after, platform)
    return diff + "\n" if diff else ""


# Commands that open a configuration sub-mode (IOS family, opskit.configdiff):
# the flat lines a user sends ("interface X", "description Y") become a
# hierarchy for hier_config.
def as_hierarchy(lines: Sequence[str]) -> str:
    """Indents the lines that follow a sub-mode command, as the device would read them.

    Lines already indented are kept; ``exit``/``!`` closes a section. A global
    command right after a section without ``exit`` is read as part of the
    section: indent or close sections for an exact prediction.
    """
    out: list[str] = []
    in_section = False
    for line in lines:
        if line[:1] in (" ", "\t"):
            out.append(line)
            continue
        text = line.strip()
        if text in ("exit", "end", "!"):
            in_section = False
        elif SECTION_OPENERS.match(text):
            out.append(text)
            in_section = True
        else:
            out.append(f" {text}" if in_section else text)
    return "\n".join(out)


def predicted_diff(platform: str, running: str, lines: Sequence[str]) -> str:
    """The diff that merging `lines` into `running` should produce (hier_config)."""
    from opskit.configdiff import predict

    diff = predict(running, as_hierarchy(lines).splitlines(), platform)
    return diff + "\n" if diff else ""


class _RedactingLog(io.BufferedIOBase):
    """netmiko session log that masks every registered secret before writing."""

    def __init__(self, path: str) -> None:
        self._handle = open(path, "ab")  # noqa: SIM115 - closed in close()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raw = data.encode() if isinstance(data, str) else bytes(data)
        if not self._handle.closed:
            self._handle.write(REDACTOR.redact_bytes(raw))
        return len(data)

    def flush(self) -> None:
        if not self._handle.closed:
            self._handle.flush()

    def close(self) -> None:
        # netmiko closes the log on disconnect and may flush it afterwards.
        if not self._handle.closed:
            self._handle.close()
        super().close()


class NetmikoConnector(Connector):
    """One CLI session to one network device through netmiko (SSH)."""

    name = "netmiko"
    capability_map: ClassVar[Mapping[str, frozenset[Capability]]] = {
        "cisco_ios": _PREDICTABLE,
        "cisco_xe": _PREDICTABLE,
        "cisco_nxos": _PREDICTABLE,
        "cisco_xr": _PREDICTABLE,
        "arista_eos": _PREDICTABLE,
        "juniper_junos": _PREDICTABLE - {C.SAVE},  # a commit is the save
        "hp_procurve": _PREDICTABLE,
        "hp_comware": _PREDICTABLE,
        "huawei": _PREDICTABLE,
        "vyos": _PREDICTABLE - {C.SAVE},
        "fortinet": _PREDICTABLE - {C.SAVE},
        "dell_os10": _NETWORK,
        "linux": frozenset({C.COMMANDS}),
    }
    # No action of its own: runbook steps use the built-in ones.
    actions: ClassVar[Mapping[str, ActionSpec]] = CONNECTOR_ACTIONS["netmiko"]

    def __init__(self, ci: CI, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(ci, options=options)
        self.settings: dict[str, Any] = {**DEFAULTS, **self.options}
        self.device_type: str = self.settings.get("device_type") or ci.platform
        self._conn: Any = None
        self._log: _RedactingLog | None = None

    # -- lifecycle ----------------------------------------------------------
    def _connect_params(self) -> dict[str, Any]:
        ci = self.ci
        if not ci.host:
            raise ConnectorError(f"{ci.name}: no host in the inventory")
        params: dict[str, Any] = {
            k: v for k, v in self.settings.items() if k not in _OWN_OPTIONS and k not in DEFAULTS
        }
        params.update(
            device_type=self.device_type,
            host=ci.host,
            port=ci.port or 22,
            conn_timeout=self.settings["conn_timeout"],
            auth_timeout=self.settings["auth_timeout"],
            banner_timeout=self.settings["banner_timeout"],
            timeout=self.settings["read_timeout"],
            # Never the user's agent or ~/.ssh keys: only the CI's own credentials.
            allow_agent=False,
            ssh_config_file=None,
        )
        username = credential(ci, "username")
        if username:
            params["username"] = username
        password = credential(ci, "password")
        if password is not None:
            params["password"] = password
        secret = credential(ci, "enable_secret")
        if secret is not None:
            params["secret"] = secret
        key_text = credential(ci, "key_file")
        if key_text is not None:
            # The key itself (paramiko passes `pkey` straight to the login).
            params["pkey"] = _load_key(ci.name, key_text, credential(ci, "key_passphrase"))
        # use_keys would search ~/.ssh and the agent: only the CI's own key counts.
        params["use_keys"] = False
        if self.settings.get("session_log"):
            self._log = _RedactingLog(str(self.settings["session_log"]))
            params["session_log"] = self._log
        return params

    def open(self) -> None:
        if self.is_open:
            return
        with self.record(f"connect {self.ci.host}:{self.ci.port or 22}") as entry:
            params = self._connect_params()
            attempts = int(self.settings["retries"]) + 1
            for attempt in range(1, attempts + 1):
                try:
                    self._conn = ConnectHandler(**params)
                    break
                except Exception as exc:  # mapped below; nothing else escapes
                    if attempt < attempts and _is_transient(exc) and not _is_unreachable(exc):
                        time.sleep(float(self.settings["retry_delay"]) * attempt)
                        continue
                    raise map_error(self.ci.name, exc, during="connect") from None
            if params.get("secret"):
                try:
                    self._conn.enable()
                except (ValueError, ReadTimeout, NetmikoBaseException) as exc:
                    self._disconnect()
                    if isinstance(exc, ValueError):
                        raise AuthenticationError(
                            f"{self.ci.name}: the enable secret was refused"
                        ) from None
                    raise map_error(self.ci.name, exc, during="enable") from None
            entry.output = str(self._conn.base_prompt)  # known from the login, no round trip
        self.is_open = True

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # The session may already be gone: closing is best effort.
            with contextlib.suppress(Exception):
                conn.disconnect()
        if self._log is not None:
            self._log.close()
            self._log = None

    def close(self) -> None:
        self._disconnect()
        self.is_open = False

    @property
    def connection(self) -> Any:
        """The underlying netmiko session (opened on first use)."""
        if not self.is_open:
            self.open()
        return self._conn

    # -- helpers --------------------------------------------------------------
    def _send(self, command: str, *, during: str) -> str:
        try:
            return str(
                self.connection.send_command(
                    command, read_timeout=float(self.settings["read_timeout"])
                )
            )
        except ConnectorError:
            raise
        except Exception as exc:
            raise map_error(self.ci.name, exc, during=during) from None

    def _check_answer(self, command: str, output: str) -> None:
        match = REJECTION.search(output)
        if match:
            raise CommandRejected(
                f"{self.ci.name}: the device rejected {command!r}: {match.group(0).strip()}",
                command=command,
                output=redact(output),
            )

    # -- operations -------------------------------------------------------
    def get_config(self, source: str = "running") -> str:
        self.require(C.GET_CONFIG)
        if source not in ("running", "startup"):
            raise ConnectorError(f"{self.ci.name}: unknown configuration source {source!r}")
        command = f"show {source}-config"
        if self.device_type == "juniper_junos":
            command = "show configuration | display set" if source == "running" else command
        with self.record(command) as entry:
            output = self._send(command, during=command)
            self._check_answer(command, output)
            entry.output = output
        return _strip_config_preamble(output)

    def send_commands(self, commands: Sequence[str], *, parse: bool = False) -> list[CommandResult]:
        self.require(C.COMMANDS)
        results = []
        for command in commands:
            with self.record(command) as entry:
                output = self._send(command, during=command)
                entry.output = output
                self._check_answer(command, output)
            results.append(
                CommandResult(
                    command=command,
                    output=redact(output),
                    parsed=self._parse(command, output) if parse else None,
                )
            )
        return results

    def _parse(self, command: str, output: str) -> list[dict[str, Any]] | None:
        """Rows from the ntc-templates TextFSM template for this command, if one exists."""
        from ntc_templates.parse import parse_output

        try:
            rows = parse_output(platform=self.device_type, command=command, data=output)
        except Exception:  # no template for this platform/command, or it did not match
            return None
        return [dict(row) for row in rows] if rows else None

    def apply_config(
        self,
        lines: Sequence[str],
        *,
        dry_run: bool = False,
        replace: bool = False,
        commit_confirm: int | None = None,
    ) -> ApplyResult:
        self.require_for_apply(replace=replace, commit_confirm=commit_confirm)
        lines = [line.rstrip() for line in lines if line.strip()]
        if dry_run:
            return self._dry_run(lines)
        before = self.get_config() if self.settings.get("diff") else None
        output = self._send_config(lines)
        if before is None:
            return ApplyResult(changed=bool(lines), diff=None, committed=True, output=output)
        diff = config_diff(self.ci.platform, before, self.get_config())
        return ApplyResult(changed=bool(diff.strip()), diff=diff, committed=True, output=output)

    def _dry_run(self, lines: list[str]) -> ApplyResult:
        if C.DRY_RUN_DIFF not in self.capabilities:
            # Nothing can be predicted here; say so rather than guess.
            return ApplyResult(changed=bool(lines), diff=None, output="no diff prediction")
        running = self.get_config()
        with self.record("dry-run:\n" + "\n".join(lines)) as entry:
            diff = predicted_diff(self.ci.platform, running, lines)
            entry.output = diff
        return ApplyResult(changed=bool(diff.strip()), diff=diff, committed=False)

    def _send_config(self, lines: list[str]) -> str:
        conn = self.connection
        read_timeout = float(self.settings["read_timeout"])
        output: list[str] = []
        with self.record("\n".join(lines)) as entry:
            try:
                output.append(conn.config_mode())
                try:
                    for number, line in enumerate(lines, 1):
                        answer = conn.send_config_set(
                            [line],
                            enter_config_mode=False,
                            exit_config_mode=False,
                            read_timeout=read_timeout,
                        )
                        output.append(answer)
                        match = REJECTION.search(answer)
                        if match:
                            raise CommandRejected(
                                f"{self.ci.name}: the device rejected line {number} {line!r}: "
                                f"{match.group(0).strip()}",
                                command=line,
                                output=redact("".join(output)),
                            )
                    if hasattr(conn, "commit") and self.device_type in (
                        "juniper_junos",
                        "cisco_xr",
                        "vyos",
                    ):
                        output.append(conn.commit())
                finally:
                    # Leave config mode even after a rejection, so the session stays usable.
                    if self._conn is not None:
                        output.append(conn.exit_config_mode())
            except ConnectorError:
                entry.output = "".join(output)
                raise
            except Exception as exc:
                entry.output = "".join(output)
                raise map_error(self.ci.name, exc, during="configure") from None
            entry.output = "".join(output)
        return redact(entry.output)

    def save_config(self) -> None:
        self.require(C.SAVE)
        with self.record("save_config") as entry:
            try:
                entry.output = str(self.connection.save_config())
            except ConnectorError:
                raise
            except NotImplementedError:
                raise CapabilityMissing(
                    f"{self.ci.name}: netmiko cannot save on {self.device_type}"
                ) from None
            except Exception as exc:
                raise map_error(self.ci.name, exc, during="save") from None
            self._check_answer("save_config", entry.output)

    def get_facts(self) -> dict[str, Any]:
        command = "uname -a" if self.device_type == "linux" else "show version"
        result = self.send_commands([command], parse=True)[0]
        facts: dict[str, Any] = {"platform": self.ci.platform}
        rows = result.parsed or []
        if rows:
            row = rows[0]
            facts.update(
                hostname=row.get("hostname"),
                os_version=row.get("version"),
                model=_first(row.get("hardware")),
                serial_number=_first(row.get("serial")),
                uptime=row.get("uptime"),
                image=row.get("running_image") or row.get("software_image"),
                parsed=row,
            )
        else:
            facts["raw"] = result.output
        return facts


def _first(value: Any) -> Any:
    if isinstance(value, list):
        return value[0] if value else None
    return value


def _load_key(ci_name: str, key_text: str, passphrase: str | None) -> paramiko.PKey:
    """A paramiko key from the resolved key_file secret (the key's text)."""
    errors = []
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(key_text), password=passphrase)
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(type(exc).__name__)
    raise SecretError(f"{ci_name}: credentials.key_file is not a usable private key")
