"""opskit.configdiff on real IOS configurations fetched from the lab."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opskit import configdiff
from opskit.connectors.netmiko import NetmikoConnector

pytestmark = pytest.mark.lab


@pytest.fixture
def device(lab) -> Iterator[NetmikoConnector]:
    # The shared switch: every test here puts back what it changes.
    with NetmikoConnector(lab.switch) as conn:
        yield conn


def raw_running(conn: NetmikoConnector) -> str:
    """`show running-config` as the device prints it (with its volatile preamble)."""
    return conn.send_commands(["show running-config"])[0].output


def test_normalize_ignores_volatile_lines_of_a_real_config(device: NetmikoConnector) -> None:
    raw = raw_running(device)
    assert "Current configuration :" in raw and "Building configuration" in raw
    normal = configdiff.normalize(raw, "cisco_ios")
    assert "Current configuration" not in normal and "Building configuration" not in normal
    assert "\n!\n" not in normal and not normal.rstrip().endswith("end")
    assert "hostname " in normal and "interface FastEthernet0/1" in normal
    # The connector's cleaned text and the raw text are the same configuration.
    assert configdiff.equal(raw, device.get_config(), "cisco_ios") == (True, "")
    # Timestamps and clock drift are volatile; a hostname is not.
    noisy = raw.replace(
        "version 12.1",
        "! Last configuration change at 10:12:01 UTC Mon Nov 23 2026 by admin\n"
        "ntp clock-period 36028797018963968\nversion 12.1",
    )
    assert configdiff.config_hash(noisy, "cisco_ios") == configdiff.config_hash(raw, "cisco_ios")
    changed = raw.replace("hostname ", "hostname x-")
    equal, residual = configdiff.equal(raw, changed, "cisco_ios")
    assert not equal
    assert residual.startswith("--- before\n+++ after\n")
    assert "-hostname " in residual and "+hostname x-" in residual


def test_remediation_turns_a_changed_device_back(device: NetmikoConnector) -> None:
    before = device.get_config()
    device.apply_config(
        [
            "vlan 341",
            " name compliance-test",
            "exit",
            "interface FastEthernet0/11",
            " description compliance test",
            " switchport access vlan 341",
            "exit",
        ]
    )
    try:
        changed = device.get_config()
        assert not configdiff.equal(before, changed, "cisco_ios")[0]
        assert (
            configdiff.missing_lines(changed, ["vlan 341", " name compliance-test"], "cisco_ios")
            == []
        )
        lines = configdiff.remediation(changed, before, "cisco_ios")
        assert "no vlan 341" in lines
        assert "interface FastEthernet0/11" in lines
        assert "  no description compliance test" in lines
        assert "  no switchport access vlan 341" in lines
        device.apply_config(lines)
        after = device.get_config()
        assert configdiff.equal(before, after, "cisco_ios") == (True, "")
        assert configdiff.config_hash(after, "cisco_ios") == configdiff.config_hash(
            before, "cisco_ios"
        )
        # Nothing left to do: the remediation of equal configurations is empty.
        assert configdiff.remediation(after, before, "cisco_ios") == []
    finally:
        current = device.get_config()
        if not configdiff.equal(before, current, "cisco_ios")[0]:
            device.apply_config(configdiff.remediation(current, before, "cisco_ios"))


def test_hierarchical_membership_and_prediction(device: NetmikoConnector) -> None:
    config = device.get_config()
    # A description exists nowhere yet; the interface does.
    assert configdiff.present_lines(config, ["interface FastEthernet0/2"], "cisco_ios") == [
        "interface FastEthernet0/2"
    ]
    missing = configdiff.missing_lines(
        config, ["interface FastEthernet0/2", " description uplink"], "cisco_ios"
    )
    assert missing == ["interface FastEthernet0/2 > description uplink"]
    predicted = configdiff.predict(
        config,
        ["vlan 342", " name p", "interface FastEthernet0/2", " description uplink"],
        "cisco_ios",
    )
    assert "+ vlan 342" in predicted and "+ description uplink" in predicted
    assert device.get_config() == config  # predicting touched nothing
