"""`opskit` commands that append events start a background sender; a
receiver that is down never blocks or fails the command; `opskit notify
status` and `deliver` show and finish what is pending."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest

from opskit.workspace import Workspace
from tests.audit_support import cli
from tests.changes_support import write_policy, write_runbook
from tests.notify.receiver import Receiver, notify_policy

SECRET = "cli-hook-secret-77a1"


@pytest.fixture
def setup(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Workspace, Receiver]]:
    monkeypatch.setenv("NOTIFY_TEST_SECRET", SECRET)
    receiver = Receiver(SECRET.encode()).start()
    write_policy(workspace, inventory="example", extra=notify_policy(receiver.url))
    write_runbook(workspace, "1.0.0")
    try:
        yield workspace, receiver
    finally:
        receiver.stop()


def _create(ws: Workspace, vlan: int) -> str:
    done = cli(
        "change", "create", "--runbook", "chg-test@1.0.0", "--select", "core-sw1",
        "--title", f"VLAN {vlan}", "--param", f"vlan_id={vlan}", "--json", ws=ws,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_command_is_followed_by_its_notification(setup: tuple[Workspace, Receiver]) -> None:
    ws, receiver = setup
    _create(ws, 710)
    (doc,) = receiver.wait_for(1)
    assert doc["event"] == "change.created" and doc["summary"]["title"] == "VLAN 710"
    assert receiver.received[0].signature_ok
    deadline = time.monotonic() + 20
    while "delivered 1" not in (out := cli("notify", "status", ws=ws).stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert out.startswith("pending 0, delivered 1, failed 0"), out


def test_receiver_down_never_blocks_the_command(setup: tuple[Workspace, Receiver]) -> None:
    ws, receiver = setup
    port = receiver.port
    receiver.stop()
    started = time.monotonic()
    _create(ws, 711)
    assert time.monotonic() - started < 30
    # The background sender tried once, recorded the error, and left it pending.
    deadline = time.monotonic() + 20
    while not re.search(r"[1-9]\d* attempts", out := cli("notify", "status", ws=ws).stdout):
        assert time.monotonic() < deadline, out
        time.sleep(0.2)
    assert out.startswith("pending 1, delivered 0, failed 0"), out
    assert "change.created" in out and "cannot reach the webhook" in out
    receiver.start(port)
    done = cli("notify", "deliver", "--once", "--now", ws=ws)
    assert done.returncode == 0 and "delivered 1" in done.stdout, done.stdout + done.stderr
    (doc,) = receiver.unique()
    assert doc["summary"]["title"] == "VLAN 711"
    log = (ws.state_dir / "notify.log").read_text()
    assert "cannot reach the webhook" in log and SECRET not in log
