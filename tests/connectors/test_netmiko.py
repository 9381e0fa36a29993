"""The netmiko connector against the lab's emulated IOS switches (no mocks)."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import socket
import struct
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opskit.connectors import UnknownConnector, capabilities, get_connector
from opskit.connectors.base import (
    AuthenticationError,
    Capability,
    CapabilityMissing,
    CommandRejected,
    ConnectorTimeout,
    UnreachableError,
    breaks_session,
)
from opskit.connectors.netmiko import NetmikoConnector, as_hierarchy
from opskit.connectors.pool import ConnectionPool
from opskit.errors import ConnectorError
from opskit.hoststate import HostState
from opskit.secrets import SecretRef
from tests.connector_contract import ConnectorContract

pytestmark = pytest.mark.lab


@pytest.fixture
def switch(lab) -> Iterator[NetmikoConnector]:
    with NetmikoConnector(lab.switch) as conn:
        yield conn


def _secrets(ci) -> list[str]:
    return [ci.credentials["password"].resolve(), ci.credentials["enable_secret"].resolve()]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- registry and capabilities -----------------------------------------------
def test_registry_and_declared_capabilities() -> None:
    assert get_connector("netmiko") is NetmikoConnector
    with pytest.raises(UnknownConnector, match="unknown connector 'telnet'"):
        get_connector("telnet")
    ios = capabilities("netmiko", "cisco_ios")
    assert {Capability.GET_CONFIG, Capability.CONFIG_LINES, Capability.DRY_RUN_DIFF} <= ios
    # Honest: IOS over netmiko has no commit-confirm, native rollback or replace.
    assert not ios & {
        Capability.COMMIT_CONFIRM,
        Capability.NATIVE_ROLLBACK,
        Capability.FULL_REPLACE,
    }
    assert capabilities("netmiko", "linux") == {Capability.COMMANDS}
    assert capabilities("netmiko", "unknown_os") == frozenset()


def test_missing_capabilities_are_refused_before_touching_the_device(switch) -> None:
    with pytest.raises(CapabilityMissing, match="commit_confirm"):
        switch.apply_config(["vlan 900"], commit_confirm=60)
    with pytest.raises(CapabilityMissing, match="full_replace"):
        switch.apply_config(["vlan 900"], replace=True)
    with pytest.raises(CapabilityMissing):
        switch.rollback()
    assert "vlan 900" not in switch.get_config()


# -- reading ----------------------------------------------------------------------
def test_get_config_is_the_running_configuration(switch, lab) -> None:
    config = switch.get_config()
    assert config.startswith("version 12.1")
    assert f"hostname {lab.switch.name}" in config
    assert "Building configuration" not in config and "Current configuration" not in config
    assert config.rstrip().endswith("end")


def test_show_commands_are_parsed_with_ntc_templates(switch, lab) -> None:
    version, vlans, clock = switch.send_commands(
        ["show version", "show vlan brief", "show privilege"], parse=True
    )
    assert version.parsed[0]["hostname"] == lab.switch.name
    assert version.parsed[0]["version"] == "12.2(58)SE2"
    assert {"vlan_id": "1", "vlan_name": "default"}.items() <= vlans.parsed[0].items()
    assert "Fa0/1" in vlans.parsed[0]["interfaces"]
    assert clock.parsed is None  # no template: raw output only
    assert "privilege level is 15" in clock.output


def test_facts_come_from_show_version(switch, lab) -> None:
    facts = switch.get_facts()
    assert facts["hostname"] == lab.switch.name
    assert facts["model"] == "WS-C3750G-24TS-1U"
    assert facts["os_version"] == "12.2(58)SE2"


def test_a_rejected_show_command_is_a_failure(switch) -> None:
    with pytest.raises(CommandRejected) as caught:
        switch.send_commands(["show frobnication"])
    assert caught.value.command == "show frobnication"
    assert caught.value.status == HostState.REJECTED


# -- configuring -----------------------------------------------------------------
CHANGE = ["vlan 310", "name opskit-test", "interface FastEthernet0/3", "description uplink-test"]
UNDO = ["no vlan 310", "interface FastEthernet0/3", "no description"]


def test_apply_verify_undo_restores_the_exact_running_config(switch) -> None:
    before = switch.get_config()
    result = switch.apply_config(CHANGE)
    assert result.committed and result.changed
    during = switch.get_config()
    assert "vlan 310\n name opskit-test" in during
    assert "interface FastEthernet0/3\n description uplink-test" in during
    vlans = switch.send_commands(["show vlan brief"], parse=True)[0].parsed
    assert {"vlan_id": "310", "vlan_name": "opskit-test"}.items() <= vlans[-1].items()
    switch.apply_config(UNDO)
    assert switch.get_config() == before


def test_dry_run_predicts_the_diff_that_applying_produces(lab) -> None:
    with NetmikoConnector(lab.switch, options={"diff": True}) as conn:
        before = conn.get_config()
        predicted = conn.apply_config(CHANGE, dry_run=True)
        assert not predicted.committed and predicted.changed
        assert conn.get_config() == before  # a dry run changes nothing
        try:
            applied = conn.apply_config(CHANGE)
            assert applied.diff == predicted.diff
            assert "+ vlan 310\n  + name opskit-test" in applied.diff
            assert "interface FastEthernet0/3\n  + description uplink-test" in applied.diff
            again = conn.apply_config(CHANGE, dry_run=True)
            assert not again.changed and again.diff == ""  # already in place
        finally:
            conn.apply_config(UNDO)
        assert conn.get_config() == before


def test_a_rejected_line_is_named_and_the_session_survives(switch) -> None:
    before = switch.get_config()
    try:
        with pytest.raises(CommandRejected) as caught:
            switch.apply_config(["vlan 311", "interface FastEthernet0/99", "vlan 312"])
        error = caught.value
        assert error.command == "interface FastEthernet0/99"
        assert "line 2 'interface FastEthernet0/99'" in str(error)
        assert "% Invalid input" in str(error)
        assert switch.transcript[-1].status == HostState.REJECTED
        # Lines after the rejected one were not sent; the session left config mode.
        config = switch.get_config()
        assert "vlan 311" in config and "vlan 312" not in config
    finally:
        switch.apply_config(["no vlan 311"])
    assert switch.get_config() == before


def test_save_config_copies_running_to_startup(lab) -> None:
    with NetmikoConnector(lab.dedicated_switch) as conn:
        conn.apply_config(["interface FastEthernet0/6", "description saved-by-opskit"])
        assert "saved-by-opskit" not in conn.get_config("startup")
        conn.save_config()
        assert "[OK]" in conn.transcript[-1].output
        assert conn.get_config("startup") == conn.get_config("running")
        conn.apply_config(["interface FastEthernet0/6", "no description"])
        assert "saved-by-opskit" in conn.get_config("startup")


def test_as_hierarchy_reads_flat_lines_like_the_device() -> None:
    lines = ["vlan 5", "name five", "exit", "hostname x", "interface Gi0/1", " mtu 9000"]
    assert as_hierarchy(lines) == "vlan 5\n name five\nhostname x\ninterface Gi0/1\n mtu 9000"


# -- failures are typed ---------------------------------------------------------
def test_unreachable_port(lab) -> None:
    ci = dataclasses.replace(lab.switch, port=_closed_port())
    conn = NetmikoConnector(ci)
    with pytest.raises(UnreachableError) as caught:
        conn.open()
    assert caught.value.status == HostState.UNREACHABLE
    assert conn.transcript[-1].status == HostState.UNREACHABLE


def test_wrong_password(lab, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-password\n")
    credentials = {**lab.switch.credentials, "password": SecretRef(file=str(wrong))}
    ci = dataclasses.replace(lab.switch, credentials=credentials)
    with pytest.raises(AuthenticationError, match="authentication failed") as caught:
        NetmikoConnector(ci).open()
    assert "not-the-password" not in str(caught.value)


def test_wrong_enable_secret(lab, tmp_path: Path) -> None:
    wrong = tmp_path / "wrong"
    wrong.write_text("not-the-secret\n")
    credentials = {**lab.switch.credentials, "enable_secret": SecretRef(file=str(wrong))}
    ci = dataclasses.replace(lab.switch, credentials=credentials)
    with pytest.raises(AuthenticationError, match="enable secret was refused"):
        NetmikoConnector(ci).open()


def _pump(source: socket.socket, target: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            target.sendall(data)
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def test_connect_retries_after_a_connection_reset(lab) -> None:
    """A real TCP front that resets the first connection, then relays to the switch."""
    accepted: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def front() -> None:
        first, _ = listener.accept()
        accepted.append(1)
        first.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        first.close()  # RST: a transient failure
        client, _ = listener.accept()
        accepted.append(2)
        upstream = socket.create_connection((lab.switch.host, lab.switch.port))
        threading.Thread(target=_pump, args=(upstream, client), daemon=True).start()
        _pump(client, upstream)

    thread = threading.Thread(target=front, daemon=True)
    thread.start()
    ci = dataclasses.replace(lab.switch, port=listener.getsockname()[1])
    with listener, NetmikoConnector(ci, options={"retry_delay": 0.05}) as conn:
        assert f"hostname {lab.switch.name}" in conn.get_config()
    assert accepted == [1, 2]
    thread.join(timeout=10)


def test_a_connection_reset_every_time_is_unreachable(lab) -> None:
    listener = socket.create_server(("127.0.0.1", 0))

    def reset_all() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = listener.accept()
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                conn.close()

    threading.Thread(target=reset_all, daemon=True).start()
    ci = dataclasses.replace(lab.switch, port=listener.getsockname()[1])
    with listener, pytest.raises(UnreachableError, match="reset"):
        NetmikoConnector(ci, options={"retry_delay": 0.01, "retries": 1}).open()


@pytest.mark.slow
def test_a_port_that_never_speaks_times_out(lab) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        ci = dataclasses.replace(lab.switch, port=listener.getsockname()[1])
        with pytest.raises(ConnectorTimeout) as caught:
            NetmikoConnector(ci, options={"banner_timeout": 1, "retries": 0}).open()
    assert caught.value.status == HostState.TIMEOUT


# -- transcripts and secrets -----------------------------------------------------
def test_transcript_is_complete_and_never_holds_a_secret(lab, tmp_path: Path) -> None:
    log = tmp_path / "session.log"
    with NetmikoConnector(lab.switch, options={"session_log": str(log)}) as conn:
        conn.send_commands(["show version"])
        conn.apply_config(["interface FastEthernet0/5", "description transcript-test"])
        conn.apply_config(["interface FastEthernet0/5", "no description"])
        entries = conn.take_transcript()
    commands = [e.command for e in entries]
    assert commands[0].startswith("connect 127.0.0.1:")
    assert "show version" in commands
    assert "interface FastEthernet0/5\ndescription transcript-test" in commands
    assert all(e.status == HostState.OK and e.duration >= 0 for e in entries)
    assert "description transcript-test" in entries[2].output
    dumped = json.dumps([e.to_dict() for e in entries])
    log_text = log.read_text()
    assert "transcript-test" in log_text  # the log is real...
    for secret in _secrets(lab.switch):  # ...and neither it nor the transcript leaks
        assert secret not in dumped
        assert secret not in log_text


def test_errors_never_carry_the_enable_secret(lab, tmp_path: Path) -> None:
    secret = lab.switch.credentials["enable_secret"].resolve()
    wrong = tmp_path / "pw"
    wrong.write_text(secret + "\n")  # the enable secret offered as the login password
    credentials = {**lab.switch.credentials, "password": SecretRef(file=str(wrong))}
    ci = dataclasses.replace(lab.switch, credentials=credentials)
    conn = NetmikoConnector(ci)
    with pytest.raises(AuthenticationError) as caught:
        conn.open()
    assert secret not in str(caught.value)
    assert secret not in json.dumps([e.to_dict() for e in conn.transcript])


# -- the operations runbook steps use (netmiko has no action of its own) -----------
def test_the_operations_behind_the_built_in_actions(switch, lab) -> None:
    switch.take_transcript()
    (result,) = switch.send_commands(["show version"], parse=True)
    assert result.parsed[0]["hostname"] == lab.switch.name
    assert [e.command for e in switch.take_transcript()] == ["show version"]
    dry = switch.apply_config(["vlan 320"], dry_run=True)
    assert dry.changed and not dry.committed and "+ vlan 320" in dry.diff
    assert "vlan 320" not in switch.get_config()
    assert switch.get_facts()["hostname"] == lab.switch.name
    with pytest.raises(CapabilityMissing):
        switch.perform("reboot", {})


# -- the pool -----------------------------------------------------------------------
def test_pool_reuses_one_session_per_ci(lab) -> None:
    with ConnectionPool(max_sessions=4) as pool:
        with pool.session(lab.switch, "netmiko") as first:
            first.get_config()
        with pool.session(lab.switch, "netmiko") as second:
            assert second is first and second.is_open
        assert (pool.stats.opened, pool.stats.reused) == (1, 1)
    assert not first.is_open  # close_all closed it


def test_pool_closes_a_broken_session_and_reuses_one_a_command_failed_on(lab) -> None:
    """One rule for a broken session (`breaks_session`), the pool's and the executor's."""
    with ConnectionPool(max_sessions=2) as pool:
        with pytest.raises(CommandRejected) as rejected, pool.session(lab.switch) as first:
            first.send_commands(["show frobnication"])
        with pytest.raises(ConnectorError) as failed, pool.session(lab.switch) as second:
            second.get_config("candidate")  # netmiko has no candidate: a plain failure
        assert second is first and first.is_open
        assert failed.value.status == HostState.FAILED
        assert not breaks_session(rejected.value) and not breaks_session(failed.value)
        assert (pool.stats.opened, pool.stats.reused, pool.stats.discarded) == (1, 1, 0)
        # A bug in the caller's code: nothing says the session is still usable.
        with pytest.raises(KeyError), pool.session(lab.switch) as third:
            third.get_config()
            raise KeyError("not a connector's error")
        assert third is first and not first.is_open and pool.stats.discarded == 1
    dead = dataclasses.replace(lab.switch, name="dead-switch", port=_closed_port())
    with pytest.raises(UnreachableError) as unreachable:
        NetmikoConnector(dead).open()
    assert breaks_session(unreachable.value)


def test_pool_close_idle_frees_the_slot_for_the_next_checkout(lab) -> None:
    first_ci, second_ci = lab.switches[0], lab.switches[1]
    with ConnectionPool(max_sessions=1) as pool:
        with pool.session(first_ci, "netmiko") as first:
            first.get_config()
            assert pool.close_idle(first_ci.name) == 0  # busy: left alone
            assert first.is_open
        assert pool.close_idle(second_ci.name) == 0  # another CI's idle session stays
        assert pool.open_sessions == 1 and first.is_open
        assert pool.close_idle(first_ci.name) == 1
        assert not first.is_open and pool.open_sessions == 0
        with pool.session(second_ci, "netmiko") as second:
            assert second.send_commands(["show version"], parse=True)[0].parsed
        # The slot was free: nothing had to be evicted to open the second session.
        assert (pool.stats.opened, pool.stats.evicted) == (2, 0)


def test_pool_bounds_open_sessions_and_isolates_an_unreachable_host(lab) -> None:
    dead = dataclasses.replace(lab.switch, name="dead-switch", port=_closed_port())
    targets = [*lab.switches, dead] * 2
    handed_out: set[int] = set()
    connectors: list = []
    lock = threading.Lock()
    peak = 0

    def work(ci):
        nonlocal peak
        try:
            with pool.session(ci, "netmiko") as conn:
                with lock:
                    if id(conn) not in handed_out:
                        handed_out.add(id(conn))
                        connectors.append(conn)
                    peak = max(peak, sum(c.is_open for c in connectors))
                return ci.name, conn.send_commands(["show version"], parse=True)[0].parsed[0][
                    "hostname"
                ]
        except ConnectorError as exc:
            return ci.name, exc.status

    with ConnectionPool(max_sessions=2) as pool, ThreadPoolExecutor(max_workers=6) as executor:
        results = list(executor.map(work, targets))
    assert peak <= 2 and pool.stats.peak_open <= 2
    assert pool.stats.evicted > 0  # sessions were closed to stay within the bound
    for name, outcome in results:
        expected = HostState.UNREACHABLE if name == "dead-switch" else name
        assert outcome == expected
    assert all(not c.is_open for c in connectors)


@pytest.mark.sshd
def test_linux_host_commands_with_the_cis_own_key(lab) -> None:
    if not lab.linux_hosts:
        pytest.skip("openssh-server is not installed")
    with NetmikoConnector(lab.linux_hosts[0]) as conn:
        (result,) = conn.send_commands(["echo opskit-$((6*7))"])
        assert "opskit-42" in result.output
        with pytest.raises(CapabilityMissing):
            conn.get_config()
    key = lab.linux_hosts[0].credentials["key_file"].resolve()
    assert key.splitlines()[1] not in json.dumps([e.to_dict() for e in conn.transcript])


# -- the connector contract (tests/connector_contract.py), on a lab switch -------------
class TestNetmikoContract(ConnectorContract):
    connector_class = NetmikoConnector
    probe_command = "show version"

    @pytest.fixture
    def connector(self, switch: NetmikoConnector) -> NetmikoConnector:
        return switch
