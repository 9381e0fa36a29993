"""One ansible-runner run: playbooks and single modules, per host results.

The connector (`opskit.connectors.ansible`) makes one such run per operation.

Every run gets a private data dir of its own (a 0700 temporary folder) that
holds everything ansible-runner needs and nothing else does:

- ``inventory/hosts.json``: generated from the CMDB (no secret values; the
  connection variables that need one are templates pointing into the extra
  vars, e.g. ``ansible_password: "{{ opskit_secrets['sw01'].password }}"``);
- ``env/extravars`` (0600): the caller's extra vars, the resolved secret
  vars and ``opskit_secrets``, the CIs' resolved credentials. Secrets are
  never on a command line (other users can read those in /proc);
- ``project/``: the playbook's folder, or a generated one-task play for a
  module run (so module arguments stay off the command line too).

The folder is removed after the run, always, on success, failure or
timeout; ansible-runner's events are streamed back through its
``event_handler``, never written to disk, redacted, and turned into one
`TaskResult` per host and task (ok / changed / failed / unreachable /
skipped, with the diff in diff mode).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import os
import re
import secrets as random_tokens
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from opskit.connectors import credential
from opskit.connectors.base import ConnectorTimeout
from opskit.errors import ConnectorError, RunbookError, SecretError, UsageError
from opskit.hoststate import HostState
from opskit.secrets import REDACTOR, SecretRef, redact

if TYPE_CHECKING:
    from opskit.inventory.model import CI

EventHandler = Callable[[dict[str, Any]], None]

# The variable holding the resolved credentials in the private extra vars.
SECRETS_VAR = "opskit_secrets"
DEFAULT_CONNECT_TIMEOUT = 10
DEFAULT_FORKS = 20
# Longest private data dir path that still leaves room for Ansible's sockets.
MAX_RUNTIME_PATH = 40

# platform -> the connection variables of the Ansible network platforms.
NETWORK_PLATFORMS: dict[str, dict[str, Any]] = {
    "cisco_ios": {"ansible_network_os": "cisco.ios.ios"},
    "ios": {"ansible_network_os": "cisco.ios.ios"},
    "cisco_nxos": {"ansible_network_os": "cisco.nxos.nxos"},
    "nxos": {"ansible_network_os": "cisco.nxos.nxos"},
    "arista_eos": {"ansible_network_os": "arista.eos.eos"},
    "eos": {"ansible_network_os": "arista.eos.eos"},
    "juniper_junos": {"ansible_network_os": "junipernetworks.junos.junos"},
    "junos": {"ansible_network_os": "junipernetworks.junos.junos"},
}
PYTHON_FALLBACK = [
    "/usr/bin/python3",
    "/usr/libexec/platform-python",
    *(f"python3.{minor}" for minor in range(13, 7, -1)),
    "python3",
]

_RESULT_EVENTS = {
    "runner_on_ok": HostState.OK,
    "runner_on_failed": HostState.FAILED,
    "runner_on_unreachable": HostState.UNREACHABLE,
    "runner_on_skipped": HostState.SKIPPED,
    "runner_on_async_ok": HostState.OK,
    "runner_on_async_failed": HostState.FAILED,
}
AUTH_FAILURE = re.compile(
    r"permission denied|failed to authenticate|authentication failed|auth fail", re.I
)
# Result fields worth keeping (the rest, e.g. `invocation`, may be large).
_KEPT_FIELDS = (
    "msg",
    "rc",
    "stdout",
    "stderr",
    "stdout_lines",
    "failed_when_result",
    "updates",  # network config modules: the lines sent (in check mode: to send)
    "commands",
    "ansible_facts",
)


@dataclass
class TaskResult:
    """One task's outcome on one host, redacted."""

    host: str
    task: str
    action: str
    status: HostState
    changed: bool = False
    diff: str | None = None
    message: str = ""
    play: str = ""
    ignored: bool = False  # failed, but the play has ignore_errors
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AnsibleRun:
    """The outcome of one ansible-runner run over several hosts."""

    status: str  # ansible-runner's: successful, failed, timeout, canceled
    rc: int
    hosts: dict[str, list[TaskResult]]
    stats: dict[str, dict[str, int]] = field(default_factory=dict)
    output: str = ""  # the redacted end of Ansible's own output, for errors

    def host_status(self, host: str) -> HostState:
        tasks = self.hosts.get(host, [])
        broken = [
            t
            for t in tasks
            if t.status == HostState.UNREACHABLE or (t.status == HostState.FAILED and not t.ignored)
        ]
        # network_cli reports a refused login as a failed task, ssh as unreachable.
        if any(AUTH_FAILURE.search(t.message) for t in broken):
            return HostState.AUTH_FAILED
        if any(t.status == HostState.UNREACHABLE for t in tasks):
            return HostState.UNREACHABLE
        if any(t.status == HostState.FAILED and not t.ignored for t in tasks):
            return HostState.FAILED
        if any(t.changed for t in tasks):
            return HostState.CHANGED
        if tasks and all(t.status == HostState.SKIPPED for t in tasks):
            return HostState.SKIPPED
        return HostState.OK

    def changed(self, host: str) -> bool:
        return any(t.changed for t in self.hosts.get(host, []))

    def diff(self, host: str) -> str | None:
        diffs = [t.diff for t in self.hosts.get(host, []) if t.diff]
        return "\n".join(diffs) or None


# -- diffs ------------------------------------------------------------------
def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=True)


def diff_text(diff: Any) -> str | None:
    """Ansible's `diff` result (one dict or a list) as unified diff text."""
    if not diff:
        return None
    parts: list[str] = []
    for item in diff if isinstance(diff, list) else [diff]:
        if not isinstance(item, Mapping):
            continue
        if item.get("prepared"):
            parts.append(_as_text(item["prepared"]).rstrip("\n"))
        elif "before" in item or "after" in item:
            before, after = _as_text(item.get("before")), _as_text(item.get("after"))
            if before == after:
                continue
            lines = difflib.unified_diff(
                before.splitlines(keepends=True),
                after.splitlines(keepends=True),
                fromfile=str(item.get("before_header", "before")),
                tofile=str(item.get("after_header", "after")),
            )
            parts.append("".join(line if line.endswith("\n") else line + "\n" for line in lines))
    text = "\n".join(p.rstrip("\n") for p in parts if p.strip())
    return text or None


def _updates_text(res: Mapping[str, Any]) -> str | None:
    """A network config module's command list (its predicted change) as diff lines."""
    updates = res.get("updates") or res.get("commands")
    if not isinstance(updates, list) or not updates:
        return None
    return "\n".join(f"+ {line}" for line in updates)


# -- the inventory ----------------------------------------------------------
def build_inventory(cis: Sequence[CI]) -> dict[str, Any]:
    """The CMDB as an Ansible inventory (`opskit.inventory.ansible`), hosts by CI name."""
    from opskit.inventory.ansible import to_ansible_inventory

    return to_ansible_inventory(cis, ansible_names=False)  # results are matched by CI name


def _host_entry(inventory: dict[str, Any], name: str) -> dict[str, Any]:
    """The host's variables dict inside an inventory structure (created if missing)."""
    hosts = inventory.setdefault("all", {}).setdefault("hosts", {})
    entry = hosts.get(name)
    if entry is None:
        entry = hosts[name] = {}
    return entry


@dataclass
class _HostSecrets:
    variables: dict[str, Any]  # the templates that go into the inventory
    values: dict[str, str]  # the resolved values, for the private extra vars


def _connection_setup(ci: CI, existing: Mapping[str, Any]) -> _HostSecrets:
    """The connection variables (with secret values by template) of one CI."""
    options = ci.connection_options.get("ansible", {})
    ref = f"{SECRETS_VAR}[{json.dumps(ci.name)}]"
    variables: dict[str, Any] = {}
    values: dict[str, str] = {}

    def secret(var: str, key: str, value: str | None) -> None:
        if value:
            values[key] = value
            # Ansible prints values JSON-escaped (a key's newlines as "\n").
            escaped = json.dumps(value)[1:-1]
            if escaped != value:
                REDACTOR.register(escaped)
            variables[var] = "{{ " + f"{ref}[{json.dumps(key)}]" + " }}"

    def default(var: str, value: Any) -> None:
        if var not in existing and var not in options:
            variables[var] = value

    resolved: dict[str, str | None] = {}

    def credential_of(key: str) -> str | None:  # each reference resolved once (prompts!)
        if key not in resolved:
            resolved[key] = credential(ci, key)
        return resolved[key]

    username = credential_of("username")
    if username:
        default("ansible_user", username)
    if ci.host:
        default("ansible_host", ci.host)
    if ci.port:
        default("ansible_port", ci.port)
    network = NETWORK_PLATFORMS.get(ci.platform)
    connection = options.get("ansible_connection", existing.get("ansible_connection"))
    if network:
        for var, value in network.items():
            default(var, value)
        default("ansible_connection", "ansible.netcommon.network_cli")
        secret("ansible_password", "password", credential_of("password"))
        enable = credential_of("enable_secret") or credential_of("secret")
        if enable:
            default("ansible_become", True)
            default("ansible_become_method", "enable")
            secret("ansible_become_password", "become_password", enable)
    else:
        # The distribution's Python first: modules such as apt need its
        # bindings, and a user's pyenv shim on PATH may not even run.
        default("ansible_python_interpreter", "auto_silent")
        default("ansible_interpreter_python_fallback", PYTHON_FALLBACK)
    if not network and connection != "local":
        key = credential_of("key_file")
        if key:
            if "-----BEGIN" not in key:
                try:
                    key = Path(key).expanduser().read_text()
                except OSError as exc:
                    raise SecretError(f"{ci.name}: key file {key}: {exc.strerror}") from None
                REDACTOR.register(key)
            # ansible-core 2.19 loads a key given by content into its own
            # ssh-agent: no key file and no passphrase prompt are needed.
            secret("ansible_private_key", "private_key", key)
            secret(
                "ansible_private_key_passphrase", "key_passphrase", credential_of("key_passphrase")
            )
        secret("ansible_password", "password", credential_of("password"))
        sudo = credential_of("sudo_password") or credential_of("password")
        secret("ansible_become_password", "become_password", sudo)
    if not options.get("host_key_checking", True):
        if network:
            default("ansible_host_key_checking", False)
        else:
            default(
                "ansible_ssh_common_args",
                "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
            )
    return _HostSecrets(variables=variables, values=values)


# -- the run ----------------------------------------------------------------
class _EventCollector:
    """ansible-runner's event_handler: results per host, nothing written to disk."""

    def __init__(self, hosts: Iterable[str], on_event: EventHandler | None) -> None:
        self.hosts: dict[str, list[TaskResult]] = {h: [] for h in hosts}
        self.stats: dict[str, dict[str, int]] = {}
        self.output: list[str] = []
        self.on_event = on_event

    def __call__(self, event: dict[str, Any]) -> bool:
        event = REDACTOR.redact_obj(event)
        name = event.get("event", "")
        data = event.get("event_data") or {}
        if event.get("stdout"):
            self.output.append(event["stdout"])
            del self.output[:-50]
        if name in _RESULT_EVENTS and data.get("host"):
            self._task_result(name, data, str(event.get("stdout") or ""))
        elif name == "playbook_on_stats":
            for key in ("ok", "changed", "failures", "dark", "skipped", "rescued", "ignored"):
                for host, count in (data.get(key) or {}).items():
                    self.stats.setdefault(host, {})[key] = count
        if self.on_event is not None:
            self.on_event(event)
        return False  # never write the event to the private data dir

    def _task_result(self, name: str, data: dict[str, Any], stdout: str) -> None:
        res = data.get("res") or {}
        if not isinstance(res, dict):
            res = {"msg": str(res)}
        status = _RESULT_EVENTS[name]
        changed = bool(res.get("changed")) and status == HostState.OK
        if "censored" in res:  # no_log: only Ansible's own output line tells
            changed = status == HostState.OK and stdout.lstrip().startswith("changed:")
        if changed:
            status = HostState.CHANGED
        message = res.get("msg") or res.get("reason") or ""
        if isinstance(message, list):
            message = "; ".join(str(m) for m in message)
        stderr = str(res.get("stderr") or "").strip()
        if stderr and stderr not in str(message):
            message = f"{message}: {stderr}" if message else stderr
        host = data["host"]
        self.hosts.setdefault(host, []).append(
            TaskResult(
                host=host,
                task=data.get("task") or data.get("task_action") or "",
                action=data.get("task_action") or data.get("resolved_action") or "",
                status=status,
                changed=changed,
                diff=diff_text(res.get("diff")) or _updates_text(res if changed else {}),
                message=" ".join(str(message).split())[:2000],
                play=data.get("play") or "",
                ignored=bool(data.get("ignore_errors")),
                data={k: res[k] for k in _KEPT_FIELDS if k in res},
            )
        )


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def _stop_ssh_masters(control_dir: Path) -> None:
    """Ends the SSH ControlPersist masters of a run (they outlive it otherwise)."""
    if not control_dir.is_dir():
        return
    for socket_path in control_dir.iterdir():
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                ["ssh", "-O", "exit", "-o", f"ControlPath={socket_path}", "opskit-run"],
                capture_output=True,
                timeout=5,
            )


def _end_leftover_processes(marker: Path) -> None:
    """Kills what the run left running (a timed-out module, a worker).

    ansible-runner kills ansible-playbook's process group on a timeout, but a
    module it started may live on and keep writing into the private data dir.
    Such processes are found by their environment, which names `marker` (the
    run's own temporary folder), so nothing else is ever touched.
    """
    needle = f"ANSIBLE_LOCAL_TEMP={marker / 't'}".encode()
    own = os.getpid()
    for _attempt in range(20):
        leftovers = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == own:
                continue
            try:
                if needle in (entry / "environ").read_bytes().split(b"\0"):
                    leftovers.append(int(entry.name))
            except OSError:
                continue
        if not leftovers:
            return
        for pid in leftovers:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.1)


def resolve_playbook(playbook: str | Path, playbooks_dir: Path | None) -> Path:
    path = Path(playbook)
    if not path.is_absolute():
        base = playbooks_dir or Path.cwd() / "playbooks"
        path = base / path
    if not path.is_file():
        raise RunbookError(f"playbook {playbook} not found in {path.parent}")
    return path.resolve()


def execute(
    cis: Sequence[CI],
    *,
    playbook: str | Path | None = None,
    module: str | None = None,
    module_args: Mapping[str, Any] | str | None = None,
    tasks: Sequence[Mapping[str, Any]] | None = None,
    playbooks_dir: Path | None = None,
    extra_vars: Mapping[str, Any] | None = None,
    secret_vars: Mapping[str, SecretRef | Mapping[str, Any] | str] | None = None,
    check: bool = False,
    diff: bool = False,
    tags: Sequence[str] | None = None,
    limit: Sequence[str] | None = None,
    forks: int | None = None,
    timeout: int | None = None,
    connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    on_event: EventHandler | None = None,
    work_dir: Path | None = None,
) -> AnsibleRun:
    """Runs a playbook, one module or a list of tasks on `cis`.

    A module or a task list runs as a play generated into the private data dir
    (so that its arguments never appear on a command line).

    `secret_vars` are extra vars whose values are secrets (references are
    resolved here); like the CIs' credentials they exist only in the private
    data dir during the run and are redacted from everything returned.
    `work_dir` is where the private data dir is made (default: the system's
    temporary folder).
    """
    import ansible_runner

    if sum(x is not None for x in (playbook, module, tasks)) != 1:
        raise UsageError("an Ansible run needs exactly one of playbook, module or tasks")
    if not cis:
        raise UsageError("an Ansible run needs at least one CI")
    names = [ci.name for ci in cis]
    if len(set(names)) != len(names):
        raise UsageError("an Ansible run got the same CI twice")

    playbook_path = resolve_playbook(playbook, playbooks_dir) if playbook is not None else None
    private = Path(tempfile.mkdtemp(prefix="opskit-ansible-", dir=work_dir))
    # Ansible's local temp folder holds Unix sockets (ssh-agent, SSH and
    # network_cli control sockets): their paths must stay under ~100 bytes.
    runtime = private
    if len(str(private)) > MAX_RUNTIME_PATH:
        runtime = Path(
            tempfile.mkdtemp(prefix="opskit-", dir="/tmp" if Path("/tmp").is_dir() else None)
        )
    try:
        private.chmod(0o700)
        for sub in ("env", "inventory", "project"):
            (private / sub).mkdir(mode=0o700)
        for sub in ("t", "cp", "pc"):
            (runtime / sub).mkdir(mode=0o700)

        inventory = build_inventory(cis)
        credentials: dict[str, dict[str, str]] = {}
        for ci in cis:
            entry = _host_entry(inventory, ci.name)
            setup = _connection_setup(ci, entry)
            entry.update(setup.variables)
            if setup.values:
                credentials[ci.name] = setup.values
        resolved_vars: dict[str, Any] = {}
        for var, value in (secret_vars or {}).items():
            if isinstance(value, str):
                REDACTOR.register(value)
                resolved_vars[var] = value
            else:
                resolved_vars[var] = SecretRef.parse(value, where=f"secret var {var}").resolve()
        all_vars = {**(extra_vars or {}), **resolved_vars, SECRETS_VAR: credentials}

        _write_private(private / "inventory" / "hosts.json", json.dumps(inventory, default=str))
        _write_private(private / "env" / "extravars", json.dumps(all_vars, default=str))
        (private / "ansible.cfg").write_text("")  # not the one in the current folder

        if playbook_path is not None:
            project_dir, playbook_name = playbook_path.parent, playbook_path.name
        else:
            if module is not None:
                args: Any = module_args
                if isinstance(module_args, str):
                    args = {"_raw_params": module_args} if "=" not in module_args else module_args
                tasks = [{"name": module, module: args or {}}]
            play = [{"name": "opskit", "hosts": "all", "gather_facts": False,
                     "tasks": [dict(t) for t in tasks or []]}]  # fmt: skip
            project_dir, playbook_name = private / "project", "play.yml"
            _write_private(project_dir / playbook_name, yaml.safe_dump(play))

        cmdline = []
        if check:
            cmdline.append("--check")
        if diff:
            cmdline.append("--diff")
        envvars = {
            # ansible-playbook and its helpers come from this environment.
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
            "ANSIBLE_CONFIG": str(private / "ansible.cfg"),
            "ANSIBLE_LOCAL_TEMP": str(runtime / "t"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(runtime / "cp"),
            "ANSIBLE_PERSISTENT_CONTROL_PATH_DIR": str(runtime / "pc"),
            "ANSIBLE_SSH_AGENT": "auto",
            "ANSIBLE_TIMEOUT": str(connect_timeout),
            "ANSIBLE_PERSISTENT_CONNECT_TIMEOUT": str(max(30, connect_timeout)),
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "False",
            # Ansible's own log would hold its output outside the private dir.
            "ANSIBLE_LOG_PATH": os.devnull,
        }
        collector = _EventCollector(names, on_event)
        runner = ansible_runner.run(
            private_data_dir=str(private),
            project_dir=str(project_dir),
            playbook=playbook_name,
            cmdline=" ".join(cmdline) or None,
            envvars=envvars,
            limit=",".join(limit) if limit else None,
            tags=",".join(tags) if tags else None,
            forks=forks or min(len(cis), DEFAULT_FORKS),
            timeout=timeout,
            ident=random_tokens.token_hex(8),
            quiet=True,
            event_handler=collector,
            settings={"suppress_output_file": True, "suppress_ansible_output": True},
        )
        run = AnsibleRun(
            status=str(runner.status),
            rc=int(runner.rc if runner.rc is not None else -1),
            hosts=collector.hosts,
            stats=collector.stats,
            output=redact("\n".join(collector.output))[-4000:],
        )
    finally:
        _stop_ssh_masters(runtime / "cp")
        _end_leftover_processes(runtime)
        for folder in {private, runtime}:
            shutil.rmtree(folder, ignore_errors=True)
            if folder.exists():  # a file ansible was still writing: try once more
                shutil.rmtree(folder, ignore_errors=True)

    if run.status == "timeout":
        raise ConnectorTimeout(f"ansible run on {', '.join(names)} exceeded {timeout} s; stopped")
    if run.rc != 0 and not any(run.hosts.values()):
        # Nothing ran at all: a syntax error, a missing module, a bad option.
        lines = [line.strip() for line in run.output.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith(("[ERROR]", "ERROR"))]
        reason = " ".join(errors[:2] or lines[-3:]) or run.status
        raise ConnectorError(f"ansible run failed (rc {run.rc}): {reason}")
    return run


def run_playbook(
    cis: Sequence[CI], playbook: str | Path, **kwargs: Any
) -> dict[str, list[TaskResult]]:
    """Runs `playbook` once over all `cis`; the task results per host.

    One unreachable host is reported as such and does not stop the others.
    Keyword arguments as for `execute` (extra_vars, secret_vars, check, diff,
    tags, playbooks_dir, forks, timeout, on_event).
    """
    return execute(cis, playbook=playbook, **kwargs).hosts


# -- the connector ----------------------------------------------------------
