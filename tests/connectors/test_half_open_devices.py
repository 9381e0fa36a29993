"""Devices that accept TCP and then misbehave: one line per host, no traceback.

Real loopback servers (no mocks): one accepts and closes at once, one sends
an SSH banner and closes, one answers with something that is not SSH, one
accepts and never says anything. paramiko's transport thread logs each failed
handshake as a traceback; with no logging configured (as in the `opskit`
command) Python prints it on stderr. Everything runs in a subprocess: pytest's
own log capture would otherwise swallow what a user sees.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.workspace import Workspace

KINDS = ("close", "banner-close", "not-ssh", "silent")


class HalfOpenServer:
    """A loopback listener that accepts every connection and misbehaves as `kind` says."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.held: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self.listener.accept()
                self._misbehave(conn)

    def _misbehave(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            if self.kind == "banner-close":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n")
            elif self.kind == "not-ssh":
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 3)
            if self.kind == "silent":
                self.held.append(conn)  # open, never a byte
            else:
                conn.close()

    def close(self) -> None:
        self.listener.close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def servers() -> Iterator[dict[str, HalfOpenServer]]:
    started = {kind: HalfOpenServer(kind) for kind in KINDS}
    yield started
    for server in started.values():
        server.close()


OPEN_ONE = """
import sys
from opskit.connectors import get_connector
from opskit.errors import OpskitError
from opskit.inventory.model import CI, CIType

connector, name, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
ci = CI(
    name=name, type=CIType.SWITCH, platform="linux" if connector == "fabric" else "cisco_ios",
    host="127.0.0.1", port=port, credentials={"username": "admin", "password": "pw"},
    connection_options={
        "netmiko": {"banner_timeout": 1, "auth_timeout": 2, "retries": 0},
        "napalm": {"timeout": 2, "optional_args": {"banner_timeout": 1, "auth_timeout": 2}},
        "fabric": {"connect_timeout": 1},
    },
)
try:
    get_connector(connector)(ci).open()
except OpskitError as exc:
    print(f"error: {exc}", file=sys.stderr)
    sys.exit(1)
"""


@pytest.mark.parametrize("connector", ["netmiko", "napalm", "fabric"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_half_open_device_is_one_error_line(
    connector: str, kind: str, servers: dict[str, HalfOpenServer]
) -> None:
    name = f"dev-{kind}"
    done = subprocess.run(
        [sys.executable, "-c", OPEN_ONE, connector, name, str(servers[kind].port)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: {name}")


INVENTORY = """\
defaults: {{owner: netops, site: lab, lifecycle: operational}}
cis:
{cis}
"""
CI_ENTRY = """\
- name: {name}
  type: switch
  platform: cisco_ios
  host: 127.0.0.1
  port: {port}
  credentials: {{username: admin, password: {{file: ../../device-password}}}}
  connection_options: {{netmiko: {{banner_timeout: 1, auth_timeout: 2, retries: 0}}}}
"""


def _half_open_inventory(ws: Workspace, servers: dict[str, HalfOpenServer]) -> list[str]:
    (ws.root / "device-password").write_text("pw\n")
    (ws.root / "device-password").chmod(0o600)
    folder = ws.root / "inventories" / "halfopen"
    folder.mkdir(parents=True)
    entries = [CI_ENTRY.format(name=f"dev-{k}", port=s.port) for k, s in servers.items()]
    (folder / "devices.yaml").write_text(INVENTORY.format(cis="".join(entries)))
    return [f"dev-{kind}" for kind in servers]


def _cli(ws: Path, user: str, *args: str) -> subprocess.CompletedProcess[str]:
    # As in a CI job: output to a pipe, no COLUMNS (readline, loaded by pytest,
    # exports COLUMNS=80 to child processes unless the environment is given).
    env = {key: value for key, value in os.environ.items() if key != "COLUMNS"}
    return subprocess.run(
        [sys.executable, "-m", "opskit", "-w", str(ws), "--as", user, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _host_lines(text: str, host: str) -> list[str]:
    return [line for line in text.splitlines() if host in line]


def test_assess_and_apply_print_one_line_per_half_open_host(
    workspace: Workspace, servers: dict[str, HalfOpenServer]
) -> None:
    hosts = _half_open_inventory(workspace, servers)
    root = workspace.root
    created = _cli(
        root, "alice", "change", "create", "--runbook", "vlan-interface@1.0.0",
        "--select", "name:dev-*", "--title", "half-open devices", "--inventory", "halfopen",
        "--param", "vlan_id=10", "--param", "vlan_name=x",
        "--param", "interface=GigabitEthernet0/1", "--json",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    change_id = json.loads(created.stdout)["id"]
    assert _cli(root, "alice", "change", "submit", change_id).returncode == 0

    assessed = _cli(root, "alice", "change", "assess", change_id)
    assert assessed.returncode == 0, assessed.stderr
    assert assessed.stderr == ""  # nothing from paramiko
    for host in hosts:  # each host's failure: one line, with its reason
        (line,) = _host_lines(assessed.stdout, host + ":")
        assert "cannot predict the diff" in line and ("unreachable" in line or "timed out" in line)
        assert line.count(host) == 1, line  # the host is named once

    for approver in ("bob", "carol"):
        assert _cli(root, approver, "change", "approve", change_id).returncode == 0
    applied = _cli(root, "alice", "change", "apply", change_id, "--json")
    assert applied.returncode == 1
    assert applied.stderr == ""
    summary = json.loads(applied.stdout)
    assert set(summary["hosts"]) == set(hosts)
    for host, entry in summary["hosts"].items():
        error = entry.get("error") or ""
        assert "\n" not in error and (entry["status"] == "skipped" or error.startswith(host))
