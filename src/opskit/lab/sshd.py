"""Real Linux hosts for the lab: Debian's OpenSSH server run as plain processes.

Each host is a second `sshd` with its own configuration, host key and
generated client key, listening on 127.0.0.1 on its own port, key-only
login. It is the machine itself seen over SSH, so Fabric and Ansible meet a
real SSH server, a real shell, real sudo and real file transfer (SFTP).

The lab manager (`opskit.lab`) calls `start_sshd_host` / `stop_sshd_host`;
the tests use the `sshd_host` fixture (tests/fixtures/sshd.py).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from opskit.errors import OpskitError
from opskit.processes import pid_alive

SSHD = Path("/usr/sbin/sshd")
PRIVSEP_DIR = Path("/run/sshd")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

# Popen objects of the sshd processes this process started, so that stopping
# one also reaps it (no zombie left behind in a long test session).
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class SshdError(OpskitError):
    """An sshd lab host cannot be started."""


@dataclass(frozen=True)
class SshdHost:
    name: str
    port: int
    pid: int
    user: str
    key_path: Path  # the client's private key (ed25519, 0600, no passphrase)
    host_key_path: Path
    workdir: Path
    host: str = "127.0.0.1"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: str(v) if isinstance(v, Path) else v for k, v in data.items()}


def sshd_available() -> bool:
    """True when Debian's sshd and ssh-keygen are installed and usable here."""
    if not (SSHD.is_file() and os.access(SSHD, os.X_OK) and shutil.which("ssh-keygen")):
        return False
    # Without root the privilege separation directory must already exist.
    return PRIVSEP_DIR.is_dir() or os.geteuid() == 0


def _login_user() -> str:
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def _keygen(path: Path, comment: str) -> None:
    if path.exists():
        return
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
    )
    path.chmod(0o600)


def _config_text(workdir: Path, port: int, user: str) -> str:
    # Why each line: LAB.md. StrictModes off because the temp folders are not
    # root-owned 0755 paths; PAM off because there is no login stack to use.
    return "\n".join(
        [
            "ListenAddress 127.0.0.1",
            f"Port {port}",
            f"HostKey {workdir / 'host_key'}",
            f"PidFile {workdir / 'sshd.pid'}",
            f"AuthorizedKeysFile {workdir / 'authorized_keys'}",
            "PubkeyAuthentication yes",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            f"AllowUsers {user}",
            "UsePAM no",
            "StrictModes no",
            "UseDNS no",
            "PrintMotd no",
            "MaxStartups 100:30:200",
            "MaxSessions 50",
            "Subsystem sftp internal-sftp",
            "LogLevel INFO",
            "",
        ]
    )


def _wait_for_banner(host: str, port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Waits until sshd answers with its SSH banner (the port accepts and speaks)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            raise SshdError(
                f"sshd for port {port} exited with code {proc.returncode}"
                + (f": {tail[0]}" if tail else "")
            )
        try:
            with socket.create_connection((host, port), timeout=1.0) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SshdError(f"sshd on {host}:{port} did not answer within {START_TIMEOUT:.0f} s")


def start_sshd_host(state_dir: Path, name: str, port: int) -> SshdHost:
    """Starts one sshd host on 127.0.0.1:`port`; returns once it answers.

    Keys and configuration live in `state_dir/sshd/<name>/` and are kept
    across restarts, so a client key handed out once stays valid.
    """
    if not sshd_available():
        raise SshdError(f"{SSHD} is not installed (run scripts/system-deps.sh)")
    workdir = Path(state_dir).resolve() / "sshd" / name
    workdir.mkdir(parents=True, exist_ok=True)
    workdir.chmod(0o700)
    if os.geteuid() == 0:
        PRIVSEP_DIR.mkdir(mode=0o755, exist_ok=True)
    user = _login_user()
    _keygen(workdir / "host_key", f"opskit-lab-host-{name}")
    _keygen(workdir / "client_key", f"opskit-lab-client-{name}")
    shutil.copyfile(workdir / "client_key.pub", workdir / "authorized_keys")
    config = workdir / "sshd_config"
    config.write_text(_config_text(workdir, port, user))
    log = workdir / "sshd.log"
    # -D: stay in the foreground so that the pid is ours; -E: log to a file.
    # A new session so that Ctrl-C in a terminal does not stop the lab.
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [str(SSHD), "-D", "-f", str(config), "-E", str(log)],
            stdin=devnull,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    _CHILDREN[proc.pid] = proc
    try:
        _wait_for_banner("127.0.0.1", port, proc, log)
    except BaseException:
        _terminate(proc.pid)
        raise
    return SshdHost(
        name=name,
        port=port,
        pid=proc.pid,
        user=user,
        key_path=workdir / "client_key",
        host_key_path=workdir / "host_key",
        workdir=workdir,
    )


def _terminate(pid: int) -> None:
    proc = _CHILDREN.pop(pid, None)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if proc is not None:
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    if pid_alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _is_our_sshd(host: SshdHost) -> bool:
    """Guards against a recycled pid: the process must run our config file."""
    try:
        cmdline = Path(f"/proc/{host.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return str(host.workdir / "sshd_config").encode() in cmdline


def stop_sshd_host(host: SshdHost) -> None:
    """Stops the host's sshd (only if the pid still is that sshd); idempotent.

    The per-connection children share the listener's process group (it was
    started in a session of its own), so open connections end too.
    """
    if host.pid in _CHILDREN or _is_our_sshd(host):
        _terminate(host.pid)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(host.pid, signal.SIGTERM)
    with contextlib.suppress(FileNotFoundError):
        (host.workdir / "sshd.pid").unlink()
