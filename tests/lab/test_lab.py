"""The device lab: start/stop/status of real emulator and sshd processes, its
inventory, and the IOS behaviour the launcher's patches give fake-switches."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from netmiko import ConnectHandler, NetmikoAuthenticationException
from typer.testing import CliRunner

from opskit.cli import app
from opskit.connectors.ansible import AnsibleConnector
from opskit.errors import UsageError
from opskit.inventory import load_inventory
from opskit.lab import Lab, LabError, linux_hosts_available
from opskit.lab.manager import STATE_FILE
from opskit.secrets import SecretRef
from opskit.workspace import Workspace, init_workspace
from tests.fixtures.lab import known_hosts_mentions

pytestmark = pytest.mark.lab


def _banner(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=5) as sock:
        return sock.recv(64)


def _pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _port_closed(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture
def small_lab(tmp_path: Path):
    ws = init_workspace(tmp_path / "ws")
    lab = Lab(ws)
    yield lab
    lab.down()
    ws.close()


def test_up_status_down(small_lab: Lab) -> None:
    status = small_lab.up(devices=2, linux=0)
    assert status.running and not status.already_running
    assert [d.name for d in status.switches] == ["lab-sw01", "lab-sw02"]
    ports = {d.port for d in status.switches}
    assert len(ports) == 2
    for device in status.switches:
        assert _banner(device.host, device.port).startswith(b"SSH-")
    assert small_lab.status().to_dict() == status.to_dict()

    stopped = small_lab.down()
    assert stopped.switches_pid == status.switches_pid
    assert not _pid_alive(status.switches_pid)
    assert all(_port_closed(port) for port in ports)
    after = small_lab.status()
    assert not after.running and after.devices == []
    assert not (small_lab.inventory_dir / "lab.yaml").exists()


def test_inventory_holds_references_not_secrets(small_lab: Lab) -> None:
    status = small_lab.up(devices=2, linux=0)
    inventory = load_inventory(small_lab.inventory_dir)
    assert sorted(inventory.cis) == ["lab-sw01", "lab-sw02"]
    password = small_lab.password_file.read_text().strip()
    secret = small_lab.enable_secret_file.read_text().strip()
    text = (small_lab.inventory_dir / "lab.yaml").read_text()
    assert password not in text and secret not in text
    for path in (small_lab.password_file, small_lab.enable_secret_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    ci = inventory.get("lab-sw02")
    assert ci.port == status.switches[1].port and ci.platform == "cisco_ios"
    assert isinstance(ci.credentials["password"], SecretRef)
    assert ci.credentials["password"].resolve() == password
    assert ci.credentials["enable_secret"].resolve() == secret
    # The emulator was not given the secrets on its command line.
    cmdline = Path(f"/proc/{status.switches_pid}/cmdline").read_bytes()
    assert password.encode() not in cmdline and secret.encode() not in cmdline


def test_up_twice_reports_the_running_lab(small_lab: Lab) -> None:
    first = small_lab.up(devices=2, linux=0)
    second = small_lab.up(devices=3, linux=0)
    assert second.already_running
    assert second.switches_pid == first.switches_pid
    assert len(second.switches) == 2


@pytest.mark.slow
def test_down_stops_only_this_labs_processes(tmp_path: Path, small_lab: Lab) -> None:
    other_ws = init_workspace(tmp_path / "other")
    other = Lab(other_ws)
    try:
        mine = small_lab.up(devices=1, linux=0)
        theirs = other.up(devices=1, linux=0)
        small_lab.down()
        assert not _pid_alive(mine.switches_pid)
        assert _pid_alive(theirs.switches_pid)
        assert other.status().running
    finally:
        other.down()


def test_down_leaves_a_recycled_pid_alone(small_lab: Lab) -> None:
    """A pid file naming a process that is not the lab's emulator (pid reuse)
    must not make `down` kill that process."""
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        small_lab.state_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "started": "x",
            "switches": {"pid": stranger.pid, "devices": {"lab-sw01": 1}},
            "linux": [],
        }
        (small_lab.state_dir / STATE_FILE).write_text(json.dumps(state))
        assert not small_lab.status().running
        small_lab.down()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_dead_lab_is_replaced_on_up(small_lab: Lab) -> None:
    first = small_lab.up(devices=1, linux=0)
    os.kill(first.switches_pid, 9)
    os.waitpid(first.switches_pid, 0)
    assert not small_lab.status().running
    second = small_lab.up(devices=1, linux=0)
    assert second.running and not second.already_running
    assert second.switches_pid != first.switches_pid


def test_bad_arguments_are_one_line_errors(small_lab: Lab) -> None:
    with pytest.raises(UsageError, match="--devices must be between"):
        small_lab.up(devices=-1)
    if not linux_hosts_available():
        with pytest.raises(LabError, match="openssh-server"):
            small_lab.up(devices=1, linux=1)


def test_cli_up_status_down(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws")
    runner = CliRunner()
    base = ["--workspace", str(ws.root), "lab"]
    try:
        result = runner.invoke(app, [*base, "up", "--devices", "2", "--linux", "0", "--json"])
        assert result.exit_code == 0, result.output
        started = json.loads(result.output)
        assert started["running"] and len(started["devices"]) == 2
        result = runner.invoke(app, [*base, "up", "--devices", "2", "--linux", "0"])
        assert result.exit_code == 0 and "already running" in result.output
        result = runner.invoke(app, [*base, "status", "--json"])
        assert json.loads(result.output)["switches_pid"] == started["switches_pid"]
        result = runner.invoke(app, [*base, "down"])
        assert result.exit_code == 0 and "lab-sw02" in result.output
        result = runner.invoke(app, [*base, "status", "--json"])
        assert json.loads(result.output)["running"] is False
    finally:
        Lab(Workspace.open(ws.root)).down()


@pytest.mark.sshd
def test_session_lab_has_linux_hosts_when_sshd_is_installed(lab) -> None:
    if not linux_hosts_available():
        pytest.skip("openssh-server is not installed")
    (host,) = lab.linux_hosts
    assert host.credentials["key_file"].resolve().startswith("-----BEGIN")
    assert _banner(host.host, host.port).startswith(b"SSH-2.0-OpenSSH")


# -- the emulator's IOS behaviour (the launcher's patches) -------------------
def _netmiko(lab, ci, **overrides):
    params = {
        "device_type": "cisco_ios",
        "host": ci.host,
        "port": ci.port,
        "username": ci.credentials["username"],
        "password": ci.credentials["password"].resolve(),
        "secret": ci.credentials["enable_secret"].resolve(),
        "allow_agent": False,
        "use_keys": False,
    }
    params.update(overrides)
    return ConnectHandler(**params)


def test_emulator_enable_needs_the_configured_secret(lab) -> None:
    conn = _netmiko(lab, lab.switch, secret="wrong-secret")
    try:
        assert conn.find_prompt().endswith(">")
        with pytest.raises(ValueError):
            conn.enable()
        conn.secret = ""
        with pytest.raises(ValueError):
            conn.enable()  # stock fake-switches let an empty secret in
        assert "Current privilege level is 1" in conn.send_command("show privilege")
        conn.secret = lab.switch.credentials["enable_secret"].resolve()
        conn.enable()
        assert conn.find_prompt().endswith("#")
        assert "Current privilege level is 15" in conn.send_command("show privilege")
    finally:
        conn.disconnect()


def test_emulator_end_leaves_config_mode_and_errors_keep_the_session(lab) -> None:
    conn = _netmiko(lab, lab.switch)
    try:
        conn.enable()
        conn.send_config_set(["interface FastEthernet0/4", "description lab-end-test"])
        # send_config_set left config mode with `end`; we are back in privileged EXEC.
        assert conn.find_prompt() == f"{lab.switch.name}#"
        assert not conn.check_config_mode()
        assert "% Invalid input" in conn.send_command("frobnicate now")
        assert "% Incomplete command" in conn.send_command("show ip")
        assert "description lab-end-test" in conn.send_command("show running-config")
        conn.send_config_set(["interface FastEthernet0/4", "no description"])
        assert "lab-end-test" not in conn.send_command("show running-config")
    finally:
        conn.disconnect()


def test_emulator_local_users_are_hashed_and_can_log_in(lab) -> None:
    switch = lab.switch
    secret = "Local user secret 7"  # the rest of the line, spaces included
    conn = _netmiko(lab, switch)
    try:
        conn.enable()
        conn.send_config_set([f"username labuser privilege 15 secret {secret}"])
        conn.send_config_set(["username labuser2 password 0 plain-pw"])
        lines = conn.send_command("show running-config | include username").splitlines()
        assert [line.split(" secret 9 ")[0] for line in lines[:1]] == [
            "username labuser privilege 15"
        ]
        assert lines[0].split(" secret 9 ")[1].startswith("$9$")
        assert lines[1].startswith("username labuser2 password 7 ")  # password-encryption
        assert secret not in "\n".join(lines) and "plain-pw" not in "\n".join(lines)
        config = conn.send_command("show running-config")
        assert config.index("hostname") < config.index("username labuser ") < config.index("vlan 1")
        for bad, answer in [
            ("username", "% Incomplete command"),
            ("username labuser3 privilege", "% Incomplete command"),
            ("username labuser3 privilege 16 secret x", "% Invalid input"),
            ("username labuser3 frobnicate", "% Invalid input"),
        ]:
            output = conn.send_config_set([bad], error_pattern="")
            assert answer in output, bad
        # The local user logs in with its secret (then enables as usual), not with another.
        user = _netmiko(lab, switch, username="labuser", password=secret)
        assert "Current privilege level is 1" in user.send_command("show privilege")
        user.disconnect()
        with pytest.raises(NetmikoAuthenticationException):
            _netmiko(lab, switch, username="labuser", password="wrong")
        conn.send_config_set(["no username labuser", "no username labuser2"])
        assert "username" not in conn.send_command("show running-config")
    finally:
        conn.disconnect()
    with pytest.raises(NetmikoAuthenticationException):
        _netmiko(lab, switch, username="labuser", password=secret)


@pytest.mark.slow
@pytest.mark.sshd
def test_ansible_against_lab_hosts_records_no_host_key(lab, tmp_path: Path) -> None:
    """The lab's inventory turns host key checking off: its random ports and
    fresh host keys never land in the user's known_hosts."""
    if not lab.linux_hosts:
        pytest.skip("openssh-server is not installed")
    (host,) = lab.linux_hosts
    assert all(
        ci.connection_options["ansible"]["host_key_checking"] is False for ci in lab.cis.values()
    )
    connector = AnsibleConnector(host, options={"work_dir": tmp_path})
    result = connector.perform(
        "module", {"name": "ansible.builtin.command", "args": {"cmd": "echo lab"}}
    )
    assert result.data["tasks"][0]["data"]["stdout"] == "lab"
    assert host.host is not None and host.port is not None
    assert not known_hosts_mentions(host.host, host.port)


VLAN_XML = (
    "<config><configuration><vlans><vlan><name>v{0}</name><vlan-id>{0}</vlan-id>"
    "</vlan></vlans></configuration></config>"
)


@pytest.mark.slow
def test_junos_device_speaks_stateful_netconf(small_lab: Lab) -> None:
    """`--junos`: fake-switches' Juniper model over NETCONF (ncclient), and
    NAPALM's junos driver opens a session to it."""
    from ncclient import manager

    from opskit.connectors.napalm import NapalmConnector
    from opskit.errors import ConnectorError

    status = small_lab.up(devices=1, linux=0, junos=1)
    assert [d.kind for d in status.devices] == ["ios", "junos"]
    ci = load_inventory(small_lab.inventory_dir).get("lab-jun01")
    assert ci.platform == "juniper_junos" and ci.connection_options["napalm"]["driver"] == "junos"
    params = {
        "host": ci.host,
        "port": ci.port,
        "username": ci.credentials["username"],
        "password": ci.credentials["password"].resolve(),
        "hostkey_verify": False,
        "allow_agent": False,
        "look_for_keys": False,
        "device_params": {"name": "junos"},
        "timeout": 10,
    }
    with manager.connect(**params) as session:
        session.discard_changes()
        session.lock(target="candidate")
        session.edit_config(target="candidate", config=VLAN_XML.format(120))
        session.commit()
        session.unlock(target="candidate")
    with manager.connect(**params) as session:
        running = str(session.get_config(source="running"))
    assert "<name>v120</name>" in running and "<vlan-id>120</vlan-id>" in running

    conn = NapalmConnector(ci)
    conn.open()
    try:
        assert conn.is_open and conn.driver_name == "junos"
        with pytest.raises(ConnectorError, match="get_config failed"):
            conn.get_config()  # the emulator lacks Junos' get-configuration RPC
    finally:
        conn.close()


def _wait_gone(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _pid_alive(pid):
            return True
        time.sleep(0.1)
    return False


def test_the_emulator_stops_when_its_owner_is_gone(tmp_path: Path) -> None:
    """A test session that is killed leaves no emulator behind."""
    owner = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    ws = init_workspace(tmp_path / "ws")
    lab = Lab(ws, owner_pid=owner.pid)
    try:
        status = lab.up(devices=1, linux=0)
        assert _pid_alive(status.switches_pid)
        owner.kill()
        owner.wait()
        assert _wait_gone(status.switches_pid)
        assert not lab.status().running
    finally:
        owner.kill()
        lab.down()
