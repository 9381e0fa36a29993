"""Operational state snapshots against the lab's emulated IOS switches and the
real ledger: a change that changes only what it allows passes; one that
changes more (itself, or something else on the device meanwhile) fails
verification naming the difference, and is rolled back with its proof."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from opskit import configdiff
from opskit.connectors.netmiko import NetmikoConnector
from opskit.connectors.pool import ConnectionPool
from opskit.hoststate import HostState
from opskit.inventory.model import CI
from opskit.ledger import Ledger
from opskit.runbooks import RunbookCatalog, run_host
from opskit.runbooks.opstate_capture import CHECK_NAME, StateWatch, capture
from opskit.secrets import REDACTOR
from opskit.workspace import Workspace
from tests.fixtures.lab import restored_switch, running_config
from tests.recording import Recorder
from tests.runbooks.opstate_support import BOOK, greedy_version

pytestmark = pytest.mark.lab

VLAN = {"vlan_id": 361, "vlan_name": "state-test", "interface": "FastEthernet0/7"}


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(max_sessions=10) as connection_pool:
        yield connection_pool


@pytest.fixture
def switch(lab) -> Iterator[CI]:
    yield from restored_switch(lab.switches[2])


def states(ledger: Ledger, kind: str) -> list[tuple[dict, dict]]:
    """(payload, {blob name: text}) of every `kind` event of the test change."""
    found = []
    for event in ledger.events(change_id="CHG-TEST", kind=kind):
        blobs = {name: ledger.get_blob(ref).decode() for name, ref in event.blobs.items()}
        found.append((event.payload, blobs))
    return found


def test_capture_reads_the_lab_switch_without_changing_it(switch: CI) -> None:
    before = running_config(switch)
    with NetmikoConnector(switch) as conn:
        state = capture(conn, "cisco_ios", ("interfaces", "vlans", "routes", "ospf"))
        sent = [t.command for t in conn.take_transcript() if not t.command.startswith("connect")]
    assert sent == ["show interfaces", "show vlan", "show ip route", "show ip ospf neighbor"]
    assert state["vlans"]["1"]["name"] == "default"
    assert "FastEthernet0/7" in state["interfaces"]
    assert "input_packets" not in state["interfaces"]["FastEthernet0/7"]  # volatile
    # The emulator has no routing table: unavailable, with the device's reason.
    assert "show ip route" in state["routes"]["unavailable"]
    assert configdiff.equal(before, running_config(switch), "cisco_ios")[0]


def test_a_change_that_stays_within_its_allowance_passes(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    book = RunbookCatalog(workspace).get(BOOK)
    recorder = Recorder(Ledger.open(workspace))
    run = run_host(book, switch, book.validate_params(VLAN), pool=pool, recorder=recorder)
    try:
        assert run.status == HostState.COMPLETED, run.error
        assert recorder.kinds == [
            "host.precheck",
            "host.backup",
            "host.state_before",
            "host.applied",
            "host.state_after",
            "host.verified",
        ]
        ledger = recorder.ledger
        assert ledger is not None and ledger.verify().ok
        ((before, before_blobs),) = states(ledger, "host.state_before")
        ((after, after_blobs),) = states(ledger, "host.state_after")
        assert before["allow"] == [
            "vlans.361",
            "vlans.*.interfaces",
            "interfaces.FastEthernet0/7.description",
        ]
        assert "361" not in json.loads(before_blobs["state"])["vlans"]
        assert json.loads(after_blobs["state"])["vlans"]["361"]["name"] == "state-test"
        assert after["unexplained"] == []
        assert any(line.startswith("vlans.361: added") for line in after["explained"])
        assert "vlans.361: added" in after_blobs["state_diff"]
    finally:
        with NetmikoConnector(switch) as conn:
            conn.apply_config(["default interface FastEthernet0/7", "no vlan 361"])


def test_a_change_that_changes_more_than_it_allows_is_rolled_back(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    book = greedy_version(workspace).get(f"{BOOK}@1.0.1")
    config_before = running_config(switch)
    recorder = Recorder(Ledger.open(workspace))
    run = run_host(book, switch, book.validate_params(VLAN), pool=pool, recorder=recorder)
    assert run.status == HostState.ROLLED_BACK, (run.error, recorder.kinds)
    assert run.failed_phase == "verify"
    assert "vlans.362: added" in (run.error or "") and "vlans.361" not in (run.error or "")
    assert recorder.kinds == [
        "host.precheck",
        "host.backup",
        "host.state_before",
        "host.applied",
        "host.state_after",
        "host.verify_failed",
        "host.rolled_back",
        "host.failed",
    ]
    failed, _ = recorder.get("host.verify_failed")
    assert failed["step"]["name"] == CHECK_NAME
    rolled_back = recorder.get("host.rolled_back")[0]
    assert rolled_back["proof"]["equal"] is True
    # The operational state is back too (recorded with the rollback).
    assert rolled_back["state_proof"] == {"equal": True, "differences": []}
    assert configdiff.equal(config_before, running_config(switch), "cisco_ios") == (True, "")
    ledger = recorder.ledger
    assert ledger is not None and ledger.verify().ok
    ((after, blobs),) = states(ledger, "host.state_after")
    assert [line.split(":")[0] for line in after["unexplained"]] == ["vlans.362"]
    assert "vlans.362: added" in blobs["state_diff"]


def test_something_else_changing_meanwhile_fails_verification(
    switch: CI, workspace: Workspace, pool: ConnectionPool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another hand shuts an unrelated port on the real switch between the snapshots."""
    book = RunbookCatalog(workspace).get(BOOK)
    config_before = running_config(switch)
    real_after = StateWatch.after

    def someone_shuts_a_port(self: StateWatch):  # type: ignore[no-untyped-def]
        with NetmikoConnector(switch) as other:
            other.apply_config(["interface FastEthernet0/11", " shutdown"])
        return real_after(self)

    monkeypatch.setattr(StateWatch, "after", someone_shuts_a_port)
    recorder = Recorder(Ledger.open(workspace))
    run = run_host(book, switch, book.validate_params(VLAN), pool=pool, recorder=recorder)
    assert run.status == HostState.ROLLED_BACK, (run.error, recorder.kinds)
    assert "interfaces.FastEthernet0/11.link_status" in (run.error or "")
    assert "vlans.361" not in (run.error or "")
    # The automatic rollback restores the whole snapshot: the port is up again.
    assert recorder.get("host.rolled_back")[0]["state_proof"]["equal"] is True
    assert configdiff.equal(config_before, running_config(switch), "cisco_ios") == (True, "")
    assert recorder.ledger is not None and recorder.ledger.verify().ok


def test_a_secret_on_the_device_never_reaches_the_recorded_state(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    canary = "canary-opstate-5f1c9e"
    REDACTOR.register(canary)
    with NetmikoConnector(switch) as conn:
        conn.apply_config(["interface FastEthernet0/12", f" description {canary}"])
    book = RunbookCatalog(workspace).get(BOOK)
    recorder = Recorder(Ledger.open(workspace))
    try:
        run = run_host(book, switch, book.validate_params(VLAN), pool=pool, recorder=recorder)
        assert run.status == HostState.COMPLETED, run.error
        ledger = recorder.ledger
        assert ledger is not None
        ((_, blobs),) = states(ledger, "host.state_before")
        # The description was read (and redacted), not skipped.
        assert json.loads(blobs["state"])["interfaces"]["FastEthernet0/12"]["description"]
        for event in ledger.events(change_id="CHG-TEST"):
            assert canary not in json.dumps(event.payload)
            for ref in event.blobs.values():
                assert canary.encode() not in ledger.get_blob(ref)
    finally:
        with NetmikoConnector(switch) as conn:
            conn.apply_config(
                [
                    "default interface FastEthernet0/7",
                    "default interface FastEthernet0/12",
                    "no vlan 361",
                ]
            )


def test_an_allow_pattern_naming_an_unknown_parameter_fails_before_anything_changes(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    path = workspace.runbooks_dir / BOOK / "1.0.0.yaml"
    text = path.read_text().replace("version: 1.0.0", "version: 1.0.3", 1)
    text = text.replace('"vlans.{{ params.vlan_id }}"', '"vlans.{{ params.vlan }}"')
    (workspace.runbooks_dir / BOOK / "1.0.3.yaml").write_text(text)
    book = RunbookCatalog(workspace).get(f"{BOOK}@1.0.3")
    before = running_config(switch)
    recorder = Recorder()
    run = run_host(book, switch, book.validate_params(VLAN), pool=pool, recorder=recorder)
    assert run.status == HostState.FAILED and run.failed_phase == "backup"
    assert "vlan" in (run.error or "") and "\n" not in (run.error or "")
    assert recorder.kinds == ["host.precheck", "host.backup", "host.failed"]
    assert configdiff.equal(before, running_config(switch), "cisco_ios") == (True, "")
