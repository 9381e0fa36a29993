"""The Fabric connector against a real sshd host (tests/fixtures/sshd.py)."""

from __future__ import annotations

import dataclasses
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from opskit.connectors.base import (
    AuthenticationError,
    Capability,
    CommandRejected,
    ConnectorTimeout,
    UnreachableError,
)
from opskit.connectors.fabric import FabricConnector, parse_facts
from opskit.hoststate import HostState
from opskit.inventory.model import CI
from opskit.secrets import SecretRef
from tests.connector_contract import ConnectorContract
from tests.fixtures.servers import free_port
from tests.fixtures.sshd import SshdLabHost

pytestmark = pytest.mark.sshd


@pytest.fixture
def fabric(sshd_host: SshdLabHost) -> Iterator[FabricConnector]:
    with FabricConnector(sshd_host.ci) as connector:
        yield connector  # type: ignore[misc]


def test_run_captures_stdout_stderr_and_exit_code(fabric: FabricConnector) -> None:
    result = fabric.run("echo out; echo err >&2")
    assert (result.stdout, result.stderr, result.exit_code) == ("out\n", "err\n", 0)
    entry = fabric.transcript[-1]
    assert entry.command == "echo out; echo err >&2"
    assert "out" in entry.output and "err" in entry.output
    assert entry.status == HostState.OK


def test_non_zero_exit_is_rejected_with_code_and_stderr(fabric: FabricConnector) -> None:
    with pytest.raises(CommandRejected) as caught:
        fabric.run("echo nope >&2; exit 3")
    assert "exited 3" in str(caught.value) and "nope" in str(caught.value)
    assert fabric.transcript[-1].status == HostState.REJECTED

    warned = fabric.run("exit 4", warn=True)
    assert warned.exit_code == 4
    assert fabric.transcript[-1].status == HostState.FAILED


def test_sudo_runs_as_another_user(fabric: FabricConnector) -> None:
    assert fabric.sudo("id -un", user="nobody").stdout.strip() == "nobody"
    assert fabric.transcript[-1].command == "sudo -u nobody id -un"


def test_put_is_idempotent_and_get_returns_the_bytes(
    fabric: FabricConnector, tmp_path: Path
) -> None:
    local = tmp_path / "motd"
    local.write_bytes(b"maintenance tonight\n\x00binary-safe\n")
    remote = str(tmp_path / "remote-motd")
    assert fabric.put(local, remote, mode=0o640) is True
    assert fabric.put(local, remote) is False  # same bytes: nothing to do
    assert fabric.put(local, remote, mode=0o640) is False
    assert oct(Path(remote).stat().st_mode & 0o777) == "0o640"
    assert fabric.put(local, remote, mode=0o600) is True  # only the mode changes
    assert oct(Path(remote).stat().st_mode & 0o777) == "0o600"
    back = fabric.get(remote, tmp_path / "back")
    assert back.read_bytes() == local.read_bytes()
    with pytest.raises(Exception, match="No such file"):
        fabric.get(str(tmp_path / "missing"), tmp_path / "x")


def test_perform_actions(fabric: FabricConnector, tmp_path: Path) -> None:
    result = fabric.perform("run", {"commands": ["echo a", "exit 5"], "warn": True})
    assert result.status == HostState.FAILED
    assert [r["exit_code"] for r in result.data["results"]] == [0, 5]
    assert len(result.transcript) == 2

    (tmp_path / "src").write_text("x\n")
    put = fabric.perform("put", {"local": str(tmp_path / "src"), "remote": str(tmp_path / "dst")})
    assert put.changed and put.status == HostState.CHANGED
    assert fabric.perform(
        "put", {"local": tmp_path / "src", "remote": str(tmp_path / "dst")}
    ).status == (HostState.OK)
    assert fabric.get_config(str(tmp_path / "dst")) == "x\n"
    assert FabricConnector.capabilities_for("linux") >= {
        Capability.COMMANDS,
        Capability.FILE_TRANSFER,
    }


def test_facts_describe_the_host(fabric: FabricConnector) -> None:
    facts = fabric.get_facts()
    assert facts["hostname"] == socket.gethostname()
    assert facts["kernel"]["name"] == "Linux"
    assert (
        facts["kernel"]["release"]
        == subprocess.run(
            ["uname", "-r"], capture_output=True, text=True, check=True
        ).stdout.strip()
    )
    os_release = Path("/etc/os-release").read_text()
    assert f"ID={facts['os']['id']}" in os_release
    assert facts["uptime_seconds"] > 0
    assert facts["memory"]["total_bytes"] > facts["memory"]["available_bytes"] > 0
    assert facts["cpu"]["count"] >= 1 and len(facts["cpu"]["load_average"]) == 3
    (root,) = facts["disks"]
    assert root["mount"] == "/" and 0 < root["used_percent"] <= 100


def test_parse_facts_tolerates_missing_sections() -> None:
    facts = parse_facts(
        "@@hostname\nweb1\n@@df\nFilesystem 1-blocks Used Available Capacity Mounted on\n"
    )
    assert (
        facts["hostname"] == "web1"
        and facts["disks"] == []
        and facts["memory"]["used_percent"] == 0.0
    )


def test_command_timeout(fabric: FabricConnector) -> None:
    with pytest.raises(ConnectorTimeout, match="still running after 1"):
        fabric.run("sleep 10", timeout=1)
    assert fabric.run("echo alive").stdout == "alive\n"  # the session survives


def test_a_command_killed_by_its_timeout_is_a_timeout_when_invoke_misses_it(
    fabric: FabricConnector, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under load invoke can return the killed command (exit -1, no exit status)
    before its timer thread has finished, and then raises no CommandTimedOut:
    that race is injected here, since it cannot be produced on demand."""
    from invoke.runners import Runner

    monkeypatch.setattr(Runner, "timed_out", property(lambda self: False))
    with pytest.raises(ConnectorTimeout, match="still running after 1"):
        fabric.run("sleep 10", timeout=1)
    assert fabric.transcript[-1].status == HostState.TIMEOUT
    # A command that really fails is still a rejection, timeout or not.
    with pytest.raises(CommandRejected, match="exited 3"):
        fabric.run("exit 3", timeout=5)


def test_unreachable_port(sshd_host: SshdLabHost) -> None:
    ci = dataclasses.replace(sshd_host.ci, port=free_port())
    with pytest.raises(UnreachableError, match="unreachable"):
        FabricConnector(ci, options={"connect_timeout": 2}).open()


def test_wrong_key_is_an_authentication_failure(sshd_host: SshdLabHost, tmp_path: Path) -> None:
    other_key = tmp_path / "other"
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other_key)], check=True
    )
    ci = dataclasses.replace(
        sshd_host.ci,
        credentials={"username": sshd_host.host.user, "key_file": SecretRef(file=str(other_key))},
    )
    with pytest.raises(AuthenticationError, match="authentication failed"):
        FabricConnector(ci).open()


@pytest.fixture
def silent_listener() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in accepted:
        conn.close()
    server.close()


def test_host_that_never_answers_times_out(sshd_host: SshdLabHost, silent_listener: int) -> None:
    ci = dataclasses.replace(sshd_host.ci, port=silent_listener)
    with pytest.raises(ConnectorTimeout, match="no SSH answer in time"):
        FabricConnector(ci, options={"connect_timeout": 1}).open()


def test_encrypted_key_needs_its_passphrase(sshd_host: SshdLabHost, tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_ssh_private_key(sshd_host.host.key_path.read_bytes(), None)
    protected = tmp_path / "protected"
    protected.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(b"open sesame"),
        )
    )
    (tmp_path / "right").write_text("open sesame\n")
    (tmp_path / "wrong").write_text("open barley\n")

    def ci_with(passphrase: str | None) -> CI:
        credentials: dict[str, SecretRef | str] = {
            "username": sshd_host.host.user,
            "key_file": SecretRef(file=str(protected)),
        }
        if passphrase:
            credentials["key_passphrase"] = SecretRef(file=str(tmp_path / passphrase))
        return dataclasses.replace(sshd_host.ci, credentials=credentials)

    with FabricConnector(ci_with("right")) as fabric:
        assert fabric.run("echo in").stdout == "in\n"
    with pytest.raises(AuthenticationError, match="does not open the private key"):
        FabricConnector(ci_with("wrong")).open()
    with pytest.raises(AuthenticationError, match="no key_passphrase"):
        FabricConnector(ci_with(None)).open()


# -- the connector contract (tests/connector_contract.py), on the sshd host ----------
class TestFabricContract(ConnectorContract):
    connector_class = FabricConnector
    probe_command = "uname -s"

    @pytest.fixture
    def connector(self, fabric: FabricConnector) -> FabricConnector:
        return fabric
