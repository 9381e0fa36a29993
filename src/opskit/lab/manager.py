"""`Lab`: start, describe and stop the device lab of a workspace.

What runs is recorded in ``.opskit/lab/lab.json`` (with the pid of every
process the lab started), so that `down` from another process stops exactly
those processes and `up` twice reports the running lab instead of starting a
second one. The lab's CMDB entries are written to ``inventories/lab/lab.yaml``
with credentials by reference to files under ``.opskit/lab/`` (mode 0600).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from opskit.errors import OpskitError, UsageError
from opskit.lab.switches import READY_FILE
from opskit.workspace import Workspace

LAB_INVENTORY = "lab"
INVENTORY_FILE = "lab.yaml"
STATE_FILE = "lab.json"
USERNAME = "admin"
LOOPBACK = "127.0.0.1"
SWITCH_PREFIX = "lab-sw"
LINUX_PREFIX = "lab-srv"
MAX_DEVICES = 1000
# About 9 s for 200 devices on one core; generous for a loaded CI machine.
START_TIMEOUT = 120.0
GENERATED_MARKER = "# Written by `opskit lab up`"


class LabError(OpskitError):
    """The lab cannot start, or its state is unreadable."""


@dataclass(frozen=True)
class LabDevice:
    name: str
    kind: str  # "ios" | "junos" | "linux"
    host: str
    port: int
    pid: int

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class LabStatus:
    running: bool
    workspace: str
    devices: list[LabDevice] = field(default_factory=list)
    switches_pid: int | None = None
    inventory: str | None = None
    started: str | None = None
    #: True when `up` found a lab already running and started nothing.
    already_running: bool = False

    @property
    def switches(self) -> list[LabDevice]:
        return [d for d in self.devices if d.kind == "ios"]

    @property
    def junos_devices(self) -> list[LabDevice]:
        return [d for d in self.devices if d.kind == "junos"]

    @property
    def linux_hosts(self) -> list[LabDevice]:
        return [d for d in self.devices if d.kind == "linux"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "running": self.running,
            "workspace": self.workspace,
            "switches_pid": self.switches_pid,
            "inventory": self.inventory,
            "started": self.started,
            "already_running": self.already_running,
            "devices": [d.to_dict() for d in self.devices],
        }


def sshd_api() -> Any | None:
    """The sshd host helpers (`opskit.lab.sshd`), when that module exists."""
    try:
        from opskit.lab import sshd
    except ImportError:
        return None
    return sshd


def linux_hosts_available() -> bool:
    api = sshd_api()
    return bool(api and api.sshd_available())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _pid_cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return True


def _alive(pid: int, *markers: str) -> bool:
    """True when `pid` runs and its command line holds every marker (i.e. is ours)."""
    if pid <= 0 or _is_zombie(pid):
        return False
    cmdline = _pid_cmdline(pid)
    return bool(cmdline) and all(m in cmdline for m in markers)


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    os.chmod(path, 0o600)


class Lab:
    """The device lab of one workspace."""

    def __init__(self, ws: Workspace, *, owner_pid: int | None = None) -> None:
        """`owner_pid`: tie the emulator's life to that process (test sessions),
        so a killed test run leaves no emulator behind."""
        self.ws = ws
        self.owner_pid = owner_pid
        self.state_dir = ws.state_dir / "lab"
        self.state_file = self.state_dir / STATE_FILE
        self.inventory_dir = ws.inventories_dir / LAB_INVENTORY
        self.password_file = self.state_dir / "password"
        self.enable_secret_file = self.state_dir / "enable_secret"

    # -- public API -----------------------------------------------------------
    def up(self, devices: int = 4, linux: int | None = None, junos: int = 0) -> LabStatus:
        """Starts the lab, or reports the one already running.

        `devices` emulated IOS switches, `linux` sshd hosts (default: 1 when
        openssh-server is installed), `junos` Juniper NETCONF devices."""
        if not 0 <= devices <= MAX_DEVICES:
            raise UsageError(f"--devices must be between 0 and {MAX_DEVICES}, not {devices}")
        if linux is None:
            linux = 1 if linux_hosts_available() else 0
        if linux < 0:
            raise UsageError(f"--linux must not be negative, not {linux}")
        if not 0 <= junos <= MAX_DEVICES:
            raise UsageError(f"--junos must be between 0 and {MAX_DEVICES}, not {junos}")
        if not devices and not linux and not junos:
            raise UsageError("nothing to start: give --devices or --linux a positive number")
        if linux and not linux_hosts_available():
            raise LabError(
                "Linux lab hosts need Debian's openssh-server (run scripts/system-deps.sh)"
            )
        with self._locked():
            current = self._status_unlocked()
            if current.running:
                current.already_running = True
                return current
            self._stop_recorded()  # leftovers of a lab that died
            self._start(devices, linux, junos)
            return self._status_unlocked()

    def down(self) -> LabStatus:
        """Stops exactly the processes this lab started; returns what was stopped."""
        with self._locked():
            stopped = self._status_unlocked()
            self._stop_recorded()
            return stopped

    def status(self) -> LabStatus:
        return self._status_unlocked()

    # -- state ------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.state_dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_state(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise LabError(f"{self.state_file}: unreadable lab state ({exc})") from None

    def _write_state(self, state: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2))
        tmp.replace(self.state_file)

    def _switch_markers(self) -> tuple[str, str]:
        return ("opskit.lab.switches", str(self.state_dir))

    def _status_unlocked(self) -> LabStatus:
        state = self._read_state()
        status = LabStatus(running=False, workspace=str(self.ws.root))
        if not state:
            return status
        devices: list[LabDevice] = []
        switches_pid = state.get("switches", {}).get("pid")
        switches_alive = bool(switches_pid) and _alive(switches_pid, *self._switch_markers())
        if switches_alive:
            kinds = state["switches"].get("kinds", {})
            for name, port in state["switches"]["devices"].items():
                kind = kinds.get(name, "ios")
                devices.append(LabDevice(name, kind, LOOPBACK, int(port), switches_pid))
        linux_alive = []
        for host in state.get("linux", []):
            if _alive(host["pid"], "sshd", str(self.state_dir)):
                linux_alive.append(host)
                devices.append(
                    LabDevice(host["name"], "linux", host["host"], int(host["port"]), host["pid"])
                )
        expected_linux = len(state.get("linux", []))
        running = (switches_alive or not switches_pid) and len(linux_alive) == expected_linux
        running = running and bool(devices)
        status.running = running
        status.devices = devices
        status.switches_pid = switches_pid if switches_alive else None
        status.started = state.get("started")
        inventory = self.inventory_dir / INVENTORY_FILE
        status.inventory = str(inventory) if inventory.is_file() else None
        return status

    # -- start / stop -------------------------------------------------------
    def _start(self, devices: int, linux: int, junos: int = 0) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.state_dir, 0o700)
        _write_secret(self.password_file, secrets.token_urlsafe(18))
        _write_secret(self.enable_secret_file, secrets.token_urlsafe(18))
        state: dict[str, Any] = {
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "switches": {},
            "linux": [],
        }
        try:
            if devices or junos:
                state["switches"] = self._start_switches(devices, junos)
                self._write_state(state)
            for index in range(1, linux + 1):
                host = self._start_linux(f"{LINUX_PREFIX}{index:02d}")
                state["linux"].append(host)
                self._write_state(state)
            self._write_state(state)
            self._write_inventory(state)
        except BaseException:
            try:
                self._write_state(state)
            finally:
                self._stop_recorded()
            raise

    def _start_switches(self, devices: int, junos: int = 0) -> dict[str, Any]:
        ready = self.state_dir / READY_FILE
        ready.unlink(missing_ok=True)
        log_path = self.state_dir / "switches.log"
        command = [
            sys.executable,
            "-m",
            "opskit.lab.switches",
            "--state-dir",
            str(self.state_dir),
            "--devices",
            str(devices),
            "--junos",
            str(junos),
            "--prefix",
            SWITCH_PREFIX,
            "--username",
            USERNAME,
            "--password-file",
            str(self.password_file),
            "--enable-secret-file",
            str(self.enable_secret_file),
        ]
        if self.owner_pid is not None:
            command += ["--owner-pid", str(self.owner_pid)]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # survives the CLI that started it
                close_fds=True,
            )
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.is_file():
            if process.poll() is not None:
                tail = log_path.read_text(errors="replace").strip().splitlines()[-1:]
                raise LabError(
                    f"the switch emulator exited with code {process.returncode}: "
                    f"{tail[0] if tail else 'no output'} (see {log_path})"
                )
            if time.monotonic() > deadline:
                process.terminate()
                raise LabError(f"the switch emulator did not start within {START_TIMEOUT:.0f} s")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        return {
            "pid": process.pid,
            "model": info["model"],
            "devices": info["devices"],
            "kinds": info.get("kinds", {}),
        }

    def _start_linux(self, name: str) -> dict[str, Any]:
        api = sshd_api()
        assert api is not None
        host = api.start_sshd_host(self.state_dir / "linux", name, _free_port())
        return {
            k: str(v) if isinstance(v, Path) else v for k, v in dataclasses.asdict(host).items()
        }

    def _stop_recorded(self) -> None:
        state = self._read_state()
        if state:
            pid = state.get("switches", {}).get("pid")
            if pid and _alive(pid, *self._switch_markers()):
                _terminate(pid)
            api = sshd_api()
            for host in state.get("linux", []):
                if api is not None:
                    with suppress(OSError, TypeError):
                        api.stop_sshd_host(_sshd_host(api, host))
                if _alive(host["pid"], "sshd", str(self.state_dir)):
                    _terminate(host["pid"])
        self.state_file.unlink(missing_ok=True)
        (self.state_dir / READY_FILE).unlink(missing_ok=True)
        inventory = self.inventory_dir / INVENTORY_FILE
        if inventory.is_file() and inventory.read_text().startswith(GENERATED_MARKER):
            inventory.unlink()

    # -- inventory ----------------------------------------------------------
    def _write_inventory(self, state: dict[str, Any]) -> None:
        self.inventory_dir.mkdir(parents=True, exist_ok=True)
        kinds = state["switches"].get("kinds", {})
        all_devices = state["switches"].get("devices", {})
        document = lab_inventory(
            switches={n: p for n, p in all_devices.items() if kinds.get(n, "ios") == "ios"},
            junos={n: p for n, p in all_devices.items() if kinds.get(n) == "junos"},
            linux=state["linux"],
            inventory_dir=self.inventory_dir,
            secrets_dir=Path(os.path.relpath(self.state_dir, self.inventory_dir)),
        )
        text = (
            f"{GENERATED_MARKER} (workspace {self.ws.root}); `opskit lab down` removes it.\n"
            "# Credentials are references to files under .opskit/lab/ (mode 0600).\n"
            + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
        )
        target = self.inventory_dir / INVENTORY_FILE
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(target)


def _sshd_host(api: Any, saved: dict[str, Any]) -> Any:
    """Rebuilds the sshd module's host record from lab.json (paths back to Path)."""
    fields = {f.name: f for f in dataclasses.fields(api.SshdHost)}
    values = {
        k: Path(v) if k in fields and "Path" in str(fields[k].type) and v is not None else v
        for k, v in saved.items()
        if k in fields
    }
    return api.SshdHost(**values)


def _terminate(pid: int, timeout: float = 10.0) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            # Reap it when it is our child (the fixture's case); ignore otherwise.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            pass
        if _is_zombie(pid) or not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.05)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


# Lab devices come and go on random loopback ports with fresh host keys:
# Ansible must neither check them nor record them in ~/.ssh/known_hosts.
LAB_ANSIBLE: dict[str, Any] = {"host_key_checking": False}


def lab_inventory(
    *,
    switches: dict[str, int],
    linux: list[dict[str, Any]],
    inventory_dir: Path,
    secrets_dir: Path,
    junos: dict[str, int] | None = None,
) -> dict[str, Any]:
    """The lab's CMDB entries in the opskit inventory format."""
    password = {"file": str(secrets_dir / "password")}
    enable_secret = {"file": str(secrets_dir / "enable_secret")}
    cis: list[dict[str, Any]] = []
    for name, port in switches.items():
        cis.append(
            {
                "name": name,
                "type": "switch",
                "platform": "cisco_ios",
                "host": LOOPBACK,
                "port": int(port),
                "groups": ["lab_switches"],
                "criticality": "low",
                "credentials": {
                    "username": USERNAME,
                    "password": dict(password),
                    "enable_secret": dict(enable_secret),
                },
                "connection_options": {
                    "napalm": {"driver": "ios"},
                    "ansible": {
                        "ansible_connection": "ansible.netcommon.network_cli",
                        "ansible_network_os": "cisco.ios.ios",
                        "ansible_become": True,
                        "ansible_become_method": "enable",
                        **LAB_ANSIBLE,
                    },
                },
                "attributes": {"emulator": "fake-switches", "model": "cisco_generic"},
            }
        )
    for name, port in (junos or {}).items():
        cis.append(
            {
                "name": name,
                "type": "switch",
                "platform": "juniper_junos",
                "host": LOOPBACK,
                "port": int(port),
                "groups": ["lab_junos"],
                "criticality": "low",
                "credentials": {"username": USERNAME, "password": dict(password)},
                "connection_options": {"napalm": {"driver": "junos"}, "ansible": dict(LAB_ANSIBLE)},
                "attributes": {"emulator": "fake-switches", "model": "juniper_generic"},
            }
        )
    for host in linux:
        key_path = Path(os.path.relpath(host["key_path"], inventory_dir))
        cis.append(
            {
                "name": host["name"],
                "type": "server",
                "platform": "linux",
                "host": host["host"],
                "port": int(host["port"]),
                "groups": ["lab_linux"],
                "criticality": "low",
                "credentials": {"username": host["user"], "key_file": {"file": str(key_path)}},
                "connection_options": {"ansible": dict(LAB_ANSIBLE)},
                "attributes": {"emulator": "openssh-server"},
            }
        )
    return {
        "defaults": {
            "owner": "netops",
            "department": "Network Operations",
            "site": "lab",
            "lifecycle": "operational",
        },
        "groups": {
            "lab": {"vars": {}},
            "lab_switches": {"groups": ["lab"], "vars": {}},
            "lab_linux": {"groups": ["lab"], "vars": {}},
            **({"lab_junos": {"groups": ["lab"], "vars": {}}} if junos else {}),
        },
        "cis": cis,
    }
