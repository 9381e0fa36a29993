"""Configurations with repeated lines, end to end on a lab switch.

The emulated switch keeps an ``ip route`` sent twice as two lines (real
devices print repeated lines too: ``show run all``, certificate chains). The
configuration model must read such a device, verification must work on it,
and a rollback must restore it, proven, falling back method after method.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from opskit import configdiff
from opskit.connectors.base import ApplyResult, Capability, CommandRejected
from opskit.connectors.netmiko import NetmikoConnector
from opskit.connectors.pool import ConnectionPool
from opskit.hoststate import HostState
from opskit.inventory.model import CI
from opskit.runbooks import RunbookCatalog, rollback_host, run_host
from opskit.runbooks.executor import predict_diff
from opskit.runbooks.restore import SnapshotRestorer
from opskit.workspace import Workspace
from tests.fixtures.lab import restored_switch, running_config
from tests.recording import Recorder

pytestmark = pytest.mark.lab

ROUTE = "ip route 10.77.0.0 255.255.255.0 10.0.0.1"

RUNBOOK = """\
name: static-route
version: {version}
description: "Adds a static route, sent twice (the emulator then keeps it twice)."
owner: network-team
risk: low
targets:
  platforms: [cisco_ios]
parameters:
  type: object
  additionalProperties: false
  properties: {{}}
requires: [get_config, config_lines]
backup: true
apply:
  - name: add the route twice
    connector: netmiko
    action: config
    params:
      lines: ["{route}", "{route}"]
verify:
  - name: the route is configured
    connector: netmiko
    action: get_config
    expect:
      - config_contains: ["{expected}"]
rollback: auto
"""


@pytest.fixture
def switch(lab) -> Iterator[CI]:
    yield from restored_switch(lab.switches[2])


@pytest.fixture
def pool() -> Iterator[ConnectionPool]:
    with ConnectionPool(max_sessions=4) as connection_pool:
        yield connection_pool


def catalog(ws: Workspace) -> RunbookCatalog:
    folder = ws.runbooks_dir / "static-route"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "1.0.0.yaml").write_text(RUNBOOK.format(version="1.0.0", route=ROUTE, expected=ROUTE))
    wrong = ROUTE.replace("10.0.0.1", "10.0.0.2")
    (folder / "1.0.1.yaml").write_text(RUNBOOK.format(version="1.0.1", route=ROUTE, expected=wrong))
    return RunbookCatalog(ws)


def test_a_duplicated_line_is_read_verified_and_rolled_back_with_proof(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    book = catalog(workspace).get("static-route@1.0.0")
    before = running_config(switch)
    run = run_host(book, switch, {}, pool=pool, recorder=Recorder())
    now = running_config(switch)
    assert now.count(ROUTE) == 2  # the device really holds the line twice
    # Verification read the duplicated configuration (it raised DuplicateChildError).
    assert run.status == HostState.COMPLETED, run.error
    assert configdiff.missing_lines(now, [ROUTE], "cisco_ios") == []
    # A dry run (what `change assess` does) on the duplicated device.
    predicted = predict_diff(book, switch, {}, pool)
    assert predicted is None or "Traceback" not in predicted
    assert configdiff.remediation(now, now, "cisco_ios") == []

    # `change rollback` later: remediation removes one copy, the line-by-line
    # restoration the other; the proof names the method that made it equal.
    undo = Recorder()
    rolled = rollback_host(book, switch, before, pool, undo)
    assert rolled.status == HostState.ROLLED_BACK, rolled.error
    payload = undo.get("host.rolled_back")[0]
    assert payload["proof"]["equal"] is True
    assert payload["proof"]["method"] == "line_by_line"
    attempts = payload["steps"][0]["data"]["attempts"]
    assert [a["method"] for a in attempts] == ["remediation", "line_by_line"]
    assert attempts[0]["equal"] is False and attempts[0]["residual_lines"] == 1
    assert configdiff.equal(before, running_config(switch), "cisco_ios") == (True, "")


def test_a_failed_verification_on_a_duplicated_line_is_rolled_back(
    switch: CI, workspace: Workspace, pool: ConnectionPool
) -> None:
    book = catalog(workspace).get("static-route@1.0.1")
    before = running_config(switch)
    recorder = Recorder()
    run = run_host(book, switch, {}, pool=pool, recorder=recorder)
    assert run.failed_phase == "verify" and "10.0.0.2" in (run.error or "")
    assert run.status == HostState.ROLLED_BACK, (run.error, recorder.kinds)
    proof = recorder.get("host.rolled_back")[0]["proof"]
    assert proof["equal"] is True and proof["method"] == "line_by_line"
    assert proof["snapshot_hash"] == configdiff.config_hash(before, "cisco_ios")
    assert configdiff.equal(before, running_config(switch), "cisco_ios") == (True, "")


def test_an_unreadable_configuration_is_one_line_naming_host_and_line(
    switch: CI,
) -> None:
    with NetmikoConnector(switch) as conn:
        config = conn.get_config()
    broken = config + "banner motd ^C\nnever closed\n"
    with pytest.raises(configdiff.ConfigParseError) as caught:
        configdiff.remediation(broken, config, "cisco_ios", host=switch.name)
    message = str(caught.value)
    assert message.startswith(f"{switch.name}: cannot read the configuration at line ")
    assert "banner motd ^C" in message and "\n" not in message


class _ReplaceRefused(NetmikoConnector):
    """The lab switch, claiming a full replace that the device then refuses
    (a fault the emulator cannot produce by itself)."""

    @property
    def capabilities(self) -> frozenset[Capability]:
        return super().capabilities | {Capability.FULL_REPLACE}

    def apply_config(self, lines: Sequence[str], **kwargs: Any) -> ApplyResult:
        if kwargs.get("replace"):
            raise CommandRejected("configure replace: % Invalid input", command="configure replace")
        return super().apply_config(lines, **kwargs)


def test_restoration_falls_back_method_after_method(switch: CI) -> None:
    with NetmikoConnector(switch) as conn:
        before = conn.get_config()
        conn.apply_config([ROUTE, ROUTE, "vlan 377", " name fallback", "exit"])
    with _ReplaceRefused(switch) as conn:
        done = SnapshotRestorer(conn, before, "running", "cisco_ios", switch.name).restore()
    attempts = [(a.method, a.equal) for a in done.attempts]
    assert attempts == [("replace", None), ("remediation", False), ("line_by_line", True)]
    assert "configure replace" in (done.attempts[0].error or "")
    assert "no vlan 377" in done.attempts[1].commands
    assert done.method == "line_by_line" and done.final_config is not None
    assert configdiff.equal(before, done.final_config, "cisco_ios") == (True, "")
    assert configdiff.equal(before, running_config(switch), "cisco_ios") == (True, "")
