"""kill -9 of the sender while it posts loses nothing: after a restart every
notification arrives, the interrupted one possibly twice, and a receiver
that deduplicates by seq keeps each once, in ledger order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from opskit.ledger import Ledger
from opskit.notify import outbox_status
from opskit.workspace import Workspace
from tests.changes_support import write_policy
from tests.notify.receiver import Receiver, notify_policy

SECRET = "crash-hook-secret-1d9"
KINDS = ["change.created", "change.approved", "change.started", "change.completed"]


def _sender(ws: Workspace, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPSKIT_")}
    if ws.db_url_override:
        env["OPSKIT_DB"] = ws.db_url_override
    command = [sys.executable, "-m", "opskit", "--workspace", str(ws.root), "notify", "deliver"]
    return subprocess.Popen([*command, *args], env=env, text=True, stdout=subprocess.PIPE)


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_kill_9_mid_delivery_loses_nothing(
    backend: str,
    workspace: Workspace,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    ws = workspace
    if backend == "postgres":
        ws.close()
        ws = Workspace.open(
            ws.root, db=request.getfixturevalue("postgres_server").create_database()
        )
    monkeypatch.setenv("NOTIFY_TEST_SECRET", SECRET)
    receiver = Receiver(SECRET.encode(), delay=10).start()  # slow: the sender waits mid-POST
    try:
        write_policy(ws, inventory="example", extra=notify_policy(receiver.url))
        ledger = Ledger.open(ws)
        seqs = [ledger.append(k, actor="alice", change_id="CHG-1", payload={}).seq for k in KINDS]
        sender = _sender(ws, "--once")
        deadline = time.monotonic() + 30
        while not receiver.received:
            assert time.monotonic() < deadline and sender.poll() is None
            time.sleep(0.05)
        os.kill(sender.pid, signal.SIGKILL)
        sender.wait(timeout=10)
        status = outbox_status(ws)
        assert (status.pending, status.delivered) == (4, 0)
        assert status.oldest_pending is not None and status.oldest_pending.attempts == 1
        receiver.delay = 0
        restarted = _sender(ws, "--once", "--now")
        out, _ = restarted.communicate(timeout=60)
        assert restarted.returncode == 0 and "delivered 4" in out, out
        received = [item.document["seq"] for item in receiver.received]
        assert received.count(seqs[0]) == 2  # the interrupted delivery, again
        assert [doc["seq"] for doc in receiver.unique()] == seqs
        assert [doc["event"] for doc in receiver.unique()] == KINDS
        assert outbox_status(ws).pending == 0
    finally:
        receiver.stop()
        ws.close()
