"""Linux hosts over SSH through Fabric: run, sudo, put, get and facts.

Credentials (the CI's ``credentials``) are resolved when the session opens,
never before: ``username`` (a string or a reference), and one of
``key_file`` (a reference whose value is either a private key or the path of
one; a plain string is a path), ``password``; optional ``key_passphrase``
and ``sudo_password`` (defaults to ``password``). Every resolved value is
registered for redaction, so it is masked in transcripts, results and
errors.

Options (the CI's ``connection_options.fabric`` merged with the caller's):
``connect_timeout`` (s, default 10), ``command_timeout`` (s, default none),
``known_hosts`` (a file: host keys are then verified strictly; without it an
unknown host key is accepted for the session only, like the lab needs).

A command that exits non-zero raises `CommandRejected` naming the exit code
and the end of stderr, unless ``warn=True``.
"""

from __future__ import annotations

import hashlib
import io
import shlex
import socket
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from opskit.connectors import credential
from opskit.connectors.actions import CONNECTOR_ACTIONS, ActionSpec
from opskit.connectors.base import (
    ActionResult,
    AuthenticationError,
    Capability,
    CommandRejected,
    CommandResult,
    Connector,
    ConnectorTimeout,
    UnreachableError,
)
from opskit.connectors.ssh import quiet_library_logs, tune_paramiko
from opskit.errors import ConnectorError, SecretError, UsageError
from opskit.hoststate import HostState
from opskit.secrets import redact

if TYPE_CHECKING:
    import fabric
    import paramiko

    from opskit.inventory.model import CI

DEFAULT_CONNECT_TIMEOUT = 10.0
# How much of stderr an error message quotes (its end, where the reason is).
STDERR_IN_MESSAGE = 300

# One round trip for all facts; each section starts with a marker line.
_FACTS_SCRIPT = r"""
echo '@@hostname'; hostname
echo '@@fqdn'; hostname -f 2>/dev/null || hostname
echo '@@uname'; uname -s; uname -r; uname -m
echo '@@os-release'; cat /etc/os-release 2>/dev/null
echo '@@uptime'; cat /proc/uptime
echo '@@loadavg'; cat /proc/loadavg
echo '@@nproc'; nproc 2>/dev/null || getconf _NPROCESSORS_ONLN
echo '@@meminfo'; cat /proc/meminfo
echo '@@df'; df -P -B1 {paths}
"""


def load_private_key(text_or_path: str, passphrase: str | None, *, ci_name: str) -> paramiko.PKey:
    """A paramiko key from key text (a resolved secret) or from a key file path."""
    import paramiko

    text = text_or_path
    if "-----BEGIN" not in text_or_path:
        try:
            text = Path(text_or_path).expanduser().read_text()
        except OSError as exc:
            raise SecretError(f"{ci_name}: key file {text_or_path}: {exc.strerror}") from None
    errors: list[str] = []
    for key_class in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return key_class.from_private_key(io.StringIO(text), password=passphrase)
        except paramiko.PasswordRequiredException:
            raise AuthenticationError(
                f"{ci_name}: the private key is encrypted and no key_passphrase is set"
            ) from None
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(str(exc))
    # "checkints do not match": an OpenSSH key opened with the wrong passphrase.
    if passphrase and any(
        word in e.lower() for e in errors for word in ("passphrase", "decrypt", "checkints")
    ):
        raise AuthenticationError(f"{ci_name}: the key_passphrase does not open the private key")
    raise SecretError(f"{ci_name}: key_file is not a private key paramiko can read")


@dataclass
class RunResult:
    """One shell command run over SSH: its output streams and exit code; `ok`
    when the exit code is 0.
    """

    command: str
    stdout: str
    stderr: str
    exit_code: int

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class FabricConnector(Connector):
    """One SSH session (Fabric `Connection`) to one Linux host."""

    name = "fabric"
    capability_map: ClassVar[Mapping[str, frozenset[Capability]]] = {
        "linux": frozenset({Capability.COMMANDS, Capability.FILE_TRANSFER}),
    }
    actions: ClassVar[Mapping[str, ActionSpec]] = CONNECTOR_ACTIONS["fabric"]

    def __init__(self, ci: CI, *, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(ci, options=options)
        self._connection: fabric.Connection | None = None
        self._sudo_password: str | None = None

    @property
    def target(self) -> str:
        return f"{self.ci.host or self.ci.name}:{self.ci.port or 22}"

    # -- lifecycle ----------------------------------------------------------
    def open(self) -> None:
        if self.is_open:
            return
        import fabric
        import paramiko

        tune_paramiko()
        quiet_library_logs()
        username = credential(self.ci, "username")
        password = credential(self.ci, "password")
        key_text = credential(self.ci, "key_file")
        passphrase = credential(self.ci, "key_passphrase")
        self._sudo_password = credential(self.ci, "sudo_password") or password
        connect_timeout = float(self.options.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT))
        connect_kwargs: dict[str, Any] = {
            # Only the CI's own credentials: never the agent or ~/.ssh keys.
            "look_for_keys": False,
            "allow_agent": False,
            "banner_timeout": connect_timeout,
            "auth_timeout": connect_timeout,
            "channel_timeout": connect_timeout,
        }
        if key_text:
            connect_kwargs["pkey"] = load_private_key(key_text, passphrase, ci_name=self.ci.name)
        if password:
            connect_kwargs["password"] = password
        if not key_text and not password:
            raise SecretError(f"{self.ci.name}: credentials need key_file or password")
        config = fabric.Config(
            ssh_config=paramiko.SSHConfig(),  # explicit: no ~/.ssh/config surprises
            # The sudo password is handed to each sudo() call instead: invoke
            # logs its whole configuration at DEBUG level.
            overrides={"run": {"in_stream": False}},
        )
        connection = fabric.Connection(
            self.ci.host or self.ci.name,
            user=username,
            port=self.ci.port or 22,
            config=config,
            connect_timeout=connect_timeout,
            connect_kwargs=connect_kwargs,
        )
        known_hosts = self.options.get("known_hosts")
        if known_hosts:
            connection.client.load_host_keys(str(Path(known_hosts).expanduser()))
            connection.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            connection.open()
        except Exception as exc:
            connection.close()
            raise self._connect_error(exc) from None
        self._connection = connection
        self.is_open = True

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection = None
        self.is_open = False

    def _connect_error(self, exc: Exception) -> ConnectorError:
        import paramiko

        where = f"{self.ci.name} ({self.target})"
        reason = redact(" ".join(str(exc).split())) or type(exc).__name__
        if isinstance(exc, paramiko.BadHostKeyException):
            return AuthenticationError(f"{where}: host key does not match known_hosts")
        if isinstance(exc, paramiko.AuthenticationException):
            return AuthenticationError(f"{where}: authentication failed: {reason}")
        if isinstance(exc, paramiko.SSHException) and "not found in known_hosts" in reason:
            return AuthenticationError(f"{where}: unknown host key (not in known_hosts)")
        # "No existing session": the negotiation outlived connect_timeout.
        if (
            isinstance(exc, TimeoutError | socket.timeout)
            or "banner" in reason.lower()
            or "No existing session" in reason
        ):
            return ConnectorTimeout(f"{where}: no SSH answer in time: {reason}")
        if isinstance(exc, OSError | paramiko.ssh_exception.NoValidConnectionsError):
            return UnreachableError(f"{where}: unreachable: {reason}")
        if isinstance(exc, paramiko.SSHException | EOFError):
            return UnreachableError(f"{where}: SSH session failed: {reason}")
        if isinstance(exc, ConnectorError):
            return exc
        return ConnectorError(f"{where}: {type(exc).__name__}: {reason}")

    @property
    def connection(self) -> fabric.Connection:
        if self._connection is None:
            self.open()
        assert self._connection is not None
        return self._connection

    # -- the primitives -----------------------------------------------------
    def run(
        self,
        command: str,
        *,
        sudo: bool = False,
        user: str | None = None,
        warn: bool = False,
        timeout: float | None = None,
        label: str | None = None,
    ) -> RunResult:
        """Runs a shell command (as `user` through sudo when `sudo`).

        Raises CommandRejected on a non-zero exit unless `warn`,
        ConnectorTimeout when it runs longer than `timeout` seconds.
        """
        from invoke.exceptions import AuthFailure, CommandTimedOut

        timeout = timeout if timeout is not None else self.options.get("command_timeout")
        if label is None:
            label = f"sudo {'-u ' + user + ' ' if user else ''}{command}" if sudo else command
        connection = self.connection
        with self.record(label) as entry:
            started = time.monotonic()
            try:
                if sudo:
                    result = connection.sudo(
                        command,
                        user=user,
                        hide=True,
                        warn=True,
                        timeout=timeout,
                        password=self._sudo_password or "",
                    )
                else:
                    result = connection.run(command, hide=True, warn=True, timeout=timeout)
            except CommandTimedOut:
                raise self._timed_out(label, timeout) from None
            except AuthFailure:
                raise AuthenticationError(
                    f"{self.ci.name}: sudo refused the password for `{redact(label)}`"
                ) from None
            except Exception as exc:
                raise self._connect_error(exc) from None
            # invoke's timer kills the command by closing the channel, which
            # leaves no exit status (-1); invoke only says CommandTimedOut when
            # its timer thread has already finished, which under load it may
            # not have. No process exits -1, so after the deadline it is ours.
            if (
                result.exited == -1
                and timeout is not None
                and time.monotonic() - started >= float(timeout)
            ):
                raise self._timed_out(label, timeout)
            stdout, stderr = redact(result.stdout), redact(result.stderr)
            entry.output = stdout + (f"\n[stderr]\n{stderr}" if stderr.strip() else "")
            run = RunResult(
                command=redact(label), stdout=stdout, stderr=stderr, exit_code=result.exited
            )
            if not run.ok:
                if not warn:
                    raise CommandRejected(
                        f"{self.ci.name}: `{run.command}` exited {run.exit_code}: "
                        f"{stderr.strip()[-STDERR_IN_MESSAGE:] or '(no stderr)'}",
                        command=run.command,
                        output=entry.output,
                    )
                entry.status = HostState.FAILED
        return run

    def _timed_out(self, label: str, timeout: float | None) -> ConnectorTimeout:
        return ConnectorTimeout(
            f"{self.ci.name}: `{redact(label)}` still running after {timeout} s; stopped"
        )

    def sudo(self, command: str, **kwargs: Any) -> RunResult:
        return self.run(command, sudo=True, **kwargs)

    def put(self, local: str | Path, remote: str, *, mode: int | None = None) -> bool:
        """Uploads `local` to `remote` unless it already holds the same bytes,
        and sets its `mode` when given.

        Returns whether the remote file changed (content or mode).
        """
        local_path = Path(local)
        with self.record(f"put {local_path} {remote}") as entry:
            try:
                data = local_path.read_bytes()
            except OSError as exc:
                raise ConnectorError(f"put: {local_path}: {exc.strerror}") from None
            digest = hashlib.sha256(data).hexdigest()
            remote_digest = self._remote_sha256(remote)
            changed = remote_digest != digest
            if changed:
                try:
                    self.connection.put(str(local_path), remote)
                except OSError as exc:
                    raise ConnectorError(
                        f"{self.ci.name}: put {remote}: {exc.strerror or exc}"
                    ) from None
            entry.output = f"{'uploaded' if changed else 'unchanged'} {len(data)} bytes"
            if mode is not None:
                sftp = self.connection.sftp()
                if (sftp.stat(remote).st_mode or 0) & 0o7777 != mode:
                    sftp.chmod(remote, mode)
                    entry.output += f", mode {mode:o}"
                    changed = True
        return changed

    def get(self, remote: str, local: str | Path) -> Path:
        """Downloads `remote` to `local` (a file path); returns the local path."""
        local_path = Path(local)
        with self.record(f"get {remote} {local_path}") as entry:
            try:
                self.connection.get(remote, str(local_path))
            except OSError as exc:
                raise ConnectorError(
                    f"{self.ci.name}: get {remote}: {exc.strerror or exc}"
                ) from None
            entry.output = f"downloaded {local_path.stat().st_size} bytes"
        return local_path

    def _remote_sha256(self, remote: str) -> str | None:
        result = self.connection.run(
            f"sha256sum {shlex.quote(remote)} 2>/dev/null", hide=True, warn=True
        )
        return result.stdout.split()[0] if result.ok and result.stdout.strip() else None

    # -- the common interface -----------------------------------------------
    def send_commands(self, commands: Sequence[str], *, parse: bool = False) -> list[CommandResult]:
        return [CommandResult(command=c, output=self.run(c).stdout) for c in commands]

    def get_config(self, source: str = "running") -> str:
        """The content of a file: `source` is its absolute path.

        A Linux host has no running configuration as such; runbooks snapshot
        the configuration files they change.
        """
        if not source.startswith("/"):
            return super().get_config(source)
        return self.run(f"cat {shlex.quote(source)}").stdout

    def get_facts(self) -> dict[str, Any]:
        paths = self.options.get("disk_paths", ["/"])
        script = _FACTS_SCRIPT.format(paths=" ".join(shlex.quote(p) for p in paths))
        return parse_facts(self.run(script.strip(), label="facts").stdout)

    def perform(self, action: str, params: Mapping[str, Any]) -> ActionResult:
        """Runbook actions.

        - ``run`` / ``sudo``: ``command`` (or ``commands``), ``warn``, ``timeout``,
          ``user`` (sudo), ``changes`` (default true: a shell command may change
          the host; false for read-only commands).
        - ``put``: ``local``, ``remote``, ``mode`` (octal string or int).
        - ``get``: ``remote``, ``local``.
        """
        start = len(self.transcript)
        if action in ("run", "sudo"):
            commands = params.get("commands") or [params.get("command")]
            if not all(isinstance(c, str) and c for c in commands):
                raise UsageError(f"{self.ci.name}: {action} needs `command` or `commands`")
            results = [
                self.run(
                    c,
                    sudo=action == "sudo",
                    user=params.get("user"),
                    warn=bool(params.get("warn", False)),
                    timeout=params.get("timeout"),
                )
                for c in commands
            ]
            failed = [r for r in results if not r.ok]
            return ActionResult(
                status=HostState.FAILED if failed else HostState.OK,
                changed=bool(params.get("changes", True)) and not failed,
                output="\n".join(r.stdout for r in results),
                data={
                    "results": [
                        {"command": r.command, "exit_code": r.exit_code, "stderr": r.stderr}
                        for r in results
                    ]
                },
                transcript=self.transcript[start:],
            )
        if action == "put":
            mode = params.get("mode")
            changed = self.put(
                params["local"],
                params["remote"],
                mode=int(mode, 8) if isinstance(mode, str) else mode,
            )
            return ActionResult(
                status=HostState.CHANGED if changed else HostState.OK,
                changed=changed,
                transcript=self.transcript[start:],
            )
        if action == "get":
            path = self.get(params["remote"], params["local"])
            return ActionResult(
                status=HostState.OK, data={"local": str(path)}, transcript=self.transcript[start:]
            )
        return super().perform(action, params)


def _sections(text: str) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("@@"):
            current = sections.setdefault(line[2:].strip(), [])
        elif current is not None:
            current.append(line)
    return sections


def parse_facts(text: str) -> dict[str, Any]:
    """Turns the output of the facts script into a structured dict."""
    s = _sections(text)
    os_release: dict[str, str] = {}
    for line in s.get("os-release", []):
        key, sep, value = line.partition("=")
        if sep:
            os_release[key.strip().lower()] = value.strip().strip('"')
    uname = [*s.get("uname", []), "", "", ""]
    meminfo: dict[str, int] = {}
    for line in s.get("meminfo", []):
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            meminfo[key] = int(parts[0]) * (1024 if parts[1:2] == ["kB"] else 1)
    mem_total = meminfo.get("MemTotal", 0)
    mem_available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    disks = []
    for line in s.get("df", [])[1:]:
        fields = line.split()
        if len(fields) >= 6 and fields[1].isdigit():
            used, available = int(fields[2]), int(fields[3])
            disks.append(
                {
                    "filesystem": fields[0],
                    "mount": fields[5],
                    "size_bytes": int(fields[1]),
                    "used_bytes": used,
                    "available_bytes": available,
                    # As df counts it: reserved blocks are not available.
                    "used_percent": round(100.0 * used / (used + available), 1)
                    if used + available
                    else 0.0,
                }
            )
    load = (s.get("loadavg") or ["0 0 0"])[0].split()
    nproc = (s.get("nproc") or ["0"])[0].strip()
    return {
        "hostname": (s.get("hostname") or [""])[0].strip(),
        "fqdn": (s.get("fqdn") or [""])[0].strip(),
        "kernel": {"name": uname[0], "release": uname[1], "machine": uname[2]},
        "os": {
            "id": os_release.get("id", ""),
            "version_id": os_release.get("version_id", ""),
            "pretty_name": os_release.get("pretty_name", ""),
        },
        "uptime_seconds": float((s.get("uptime") or ["0"])[0].split()[0]),
        "cpu": {
            "count": int(nproc) if nproc.isdigit() else 0,
            "load_average": [float(x) for x in load[:3]],
        },
        "memory": {
            "total_bytes": mem_total,
            "available_bytes": mem_available,
            "used_percent": round(100.0 * (mem_total - mem_available) / mem_total, 1)
            if mem_total
            else 0.0,
        },
        "disks": disks,
    }
