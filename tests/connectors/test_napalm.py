"""The NAPALM connector: the configuration path through NAPALM's own mock
driver (answers in tests/napalm_mock/), and the real `ios` driver's getters
against the lab's emulated switches."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.connectors import capabilities, get_connector
from opskit.connectors.base import (
    AuthenticationError,
    Capability,
    CapabilityMissing,
    CommandRejected,
    ConnectorTimeout,
    UnreachableError,
)
from opskit.connectors.napalm import NapalmConnector
from opskit.errors import ConnectorError
from opskit.hoststate import HostState
from opskit.inventory import CI, CIType
from opskit.secrets import SecretRef
from tests.connector_contract import ConnectorContract

MOCK = Path(__file__).parents[1] / "napalm_mock"
C = Capability


def mock_ci(scenario: str, tmp_path: Path, **optional_args: object) -> CI:
    password = tmp_path / "password"
    password.write_text("mock-password-7f3a\n")
    return CI(
        name="mock-r1",
        type=CIType.ROUTER,
        platform="cisco_ios",
        host="127.0.0.1",
        credentials={"username": "opskit", "password": SecretRef(file=str(password))},
        connection_options={
            "napalm": {
                "driver": "mock",
                "optional_args": {"path": str(MOCK / scenario), **optional_args},
            }
        },
    )


def mock(scenario: str, tmp_path: Path, **optional_args: object) -> NapalmConnector:
    conn = NapalmConnector(mock_ci(scenario, tmp_path, **optional_args))
    conn.open()
    return conn


def calls(conn: NapalmConnector) -> dict[str, int]:
    """How often the mock driver saw each method (NAPALM's own bookkeeping)."""
    return dict(conn.device.calls)


# -- capabilities follow NAPALM's support matrix ------------------------------
def test_capabilities_follow_the_support_matrix() -> None:
    assert get_connector("napalm") is NapalmConnector
    assert {C.COMMIT_CONFIRM, C.NATIVE_ROLLBACK, C.FULL_REPLACE} <= capabilities(
        "napalm", "juniper_junos"
    )
    assert C.COMMIT_CONFIRM in capabilities("napalm", "arista_eos")
    assert C.COMMIT_CONFIRM in capabilities("napalm", "cisco_ios")
    assert C.COMMIT_CONFIRM not in capabilities("napalm", "cisco_xr")
    assert C.NATIVE_ROLLBACK in capabilities("napalm", "cisco_xr")
    nxos = capabilities("napalm", "cisco_nxos")
    assert C.FULL_REPLACE in nxos and not nxos & {C.COMMIT_CONFIRM, C.NATIVE_ROLLBACK}
    assert capabilities("napalm", "linux") == frozenset()


def test_a_platform_without_a_driver_is_refused(tmp_path: Path) -> None:
    ci = dataclasses.replace(mock_ci("change", tmp_path), platform="linux", connection_options={})
    with pytest.raises(CapabilityMissing, match="no NAPALM driver"):
        NapalmConnector(ci).open()


# -- the configuration path (mock driver) ----------------------------------------
def test_dry_run_compares_then_discards(tmp_path: Path) -> None:
    conn = mock("change", tmp_path)
    result = conn.apply_config(["vlan 400", " name mocked-vlan"], dry_run=True)
    assert result.changed and not result.committed
    assert result.diff == "+vlan 400\n+ name mocked-vlan"
    assert conn.device.config == None  # noqa: E711 - the candidate is gone
    assert calls(conn) == {"load_merge_candidate": 1, "compare_config": 1, "discard_config": 1}


def test_merge_commit(tmp_path: Path) -> None:
    conn = mock("change", tmp_path)
    result = conn.apply_config(["vlan 400", " name mocked-vlan"])
    assert result.committed and result.changed and not result.pending_confirm
    assert "+vlan 400" in result.diff
    assert calls(conn) == {"load_merge_candidate": 1, "compare_config": 1, "commit_config": 1}
    commands = [entry.command for entry in conn.transcript]
    assert commands[1] == "load_merge_candidate\nvlan 400\n name mocked-vlan\n"
    assert commands[2] == "commit_config"


def test_replace_uses_the_replace_candidate(tmp_path: Path) -> None:
    conn = mock("change", tmp_path)
    conn.apply_config(["hostname mock-r1", "vlan 400"], replace=True)
    assert calls(conn)["load_replace_candidate"] == 1
    assert "load_merge_candidate" not in calls(conn)


def test_commit_confirm_then_confirm(tmp_path: Path) -> None:
    conn = mock("change", tmp_path)
    result = conn.apply_config(["vlan 400"], commit_confirm=120)
    assert result.pending_confirm and result.committed
    assert conn.has_pending_commit()
    conn.confirm_commit()
    assert not conn.has_pending_commit()
    assert calls(conn)["confirm_commit"] == 1
    with pytest.raises(ConnectorError, match="no commit is waiting"):
        conn.confirm_commit()


def test_commit_confirm_then_native_rollback(tmp_path: Path) -> None:
    conn = mock("change", tmp_path)
    conn.apply_config(["vlan 400"], commit_confirm=60)
    conn.rollback()
    assert not conn.has_pending_commit()
    assert conn.transcript[-1].command == "rollback"
    assert conn.transcript[-1].status == HostState.OK


def test_an_empty_diff_commits_nothing(tmp_path: Path) -> None:
    conn = mock("unchanged", tmp_path)
    result = conn.apply_config(["vlan 1"])
    assert not result.changed and not result.committed and result.diff == ""
    assert "commit_config" not in calls(conn) and calls(conn)["discard_config"] == 1


def test_a_refused_candidate_is_rejected_and_discarded(tmp_path: Path) -> None:
    conn = mock("rejected", tmp_path)
    with pytest.raises(CommandRejected, match="frobnicate the router") as caught:
        conn.apply_config(["frobnicate the router"])
    assert caught.value.status == HostState.REJECTED
    assert calls(conn)["discard_config"] == 1
    assert conn.transcript[0].command.startswith("open napalm/mock")
    assert conn.transcript[1].status == HostState.REJECTED


def test_a_failed_commit_is_rejected_and_discarded(tmp_path: Path) -> None:
    conn = mock("commit_error", tmp_path)
    with pytest.raises(CommandRejected, match="database locked"):
        conn.apply_config(["vlan 401"])
    assert calls(conn)["discard_config"] == 1


def test_getter_errors_are_typed(tmp_path: Path) -> None:
    conn = mock("errors", tmp_path)
    with pytest.raises(ConnectorTimeout, match="show version timed out"):
        conn.get_facts()
    with pytest.raises(UnreachableError, match="closed by the device"):
        conn.get("get_interfaces")
    with pytest.raises(AuthenticationError):
        conn.get("get_vlans")
    with pytest.raises(CapabilityMissing):
        conn.get("get_bgp_neighbors")  # no answer file: NotImplementedError


def test_open_failure_is_unreachable(tmp_path: Path) -> None:
    conn = NapalmConnector(mock_ci("change", tmp_path, fail_on_open=True))
    with pytest.raises(UnreachableError):
        conn.open()
    assert not conn.is_open


def test_getters_and_validate(tmp_path: Path) -> None:
    conn = mock("change", tmp_path)
    result = conn.perform("getters", {"getters": ["get_facts", "get_vlans"]})
    assert result.data["get_facts"]["model"] == "ISR4321"
    assert result.data["get_vlans"]["1"]["name"] == "default"
    assert [e.command for e in result.transcript] == ["get_facts", "get_vlans"]

    good = mock("change", tmp_path).perform(
        "validate", {"validation": {"get_facts": {"hostname": "mock-r1", "vendor": "Cisco"}}}
    )
    assert good.status == HostState.OK and good.data["report"]["complies"] is True
    bad = mock("change", tmp_path).perform(
        "validate", {"validation": {"get_facts": {"os_version": "17.3.1"}}}
    )
    assert bad.status == HostState.FAILED and bad.data["report"]["complies"] is False


def test_transcripts_hold_no_secret(tmp_path: Path) -> None:
    conn = mock("change", tmp_path)
    conn.get_facts()
    conn.apply_config(["vlan 400"])
    conn.close()
    dumped = json.dumps([e.to_dict() for e in conn.transcript])
    assert "mock-password-7f3a" not in dumped
    assert "get_facts" in dumped and "commit_config" in dumped


# -- the ios driver against the emulated switches ------------------------------------


@pytest.mark.lab
def test_ios_getters_on_the_lab(lab) -> None:
    conn = NapalmConnector(lab.switch)
    assert conn.driver_name == "ios"
    try:
        config = conn.get_config()
        assert f"hostname {lab.switch.name}" in config
        vlans = conn.get("get_vlans")
        assert vlans["1"]["name"] == "default"
        assert "FastEthernet0/1" in vlans["1"]["interfaces"]
        (version,) = conn.send_commands(["show version"], parse=True)
        assert version.parsed[0]["hostname"] == lab.switch.name
    finally:
        conn.close()
    secrets = [lab.switch.credentials[k].resolve() for k in ("password", "enable_secret")]
    dumped = json.dumps([e.to_dict() for e in conn.transcript])
    assert not any(secret in dumped for secret in secrets)


@pytest.mark.lab
def test_ios_merge_on_the_emulator_fails_typed_and_changes_nothing(lab) -> None:
    """fake-switches has no flash file system, so NAPALM's ios merge (SCP)
    cannot work there: the failure is a typed rejection, not a hang."""
    with NapalmConnector(lab.switch) as conn:
        before = conn.get_config()
        with pytest.raises(CommandRejected, match="load_merge_candidate refused"):
            conn.apply_config(["vlan 450"])
        assert conn.get_config() == before


@pytest.mark.lab
def test_ios_unreachable(lab) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(UnreachableError):
        NapalmConnector(dataclasses.replace(lab.switch, port=port)).open()


# -- the connector contract (tests/connector_contract.py), on a lab switch -------------
@pytest.mark.lab
class TestNapalmContract(ConnectorContract):
    connector_class = NapalmConnector
    probe_command = "show version"

    @pytest.fixture
    def connector(self, lab: Any) -> Iterator[NapalmConnector]:
        with NapalmConnector(lab.switch) as conn:
            yield conn  # type: ignore[misc]
