"""Real changes on the lab produce signed notifications, in ledger order,
posted to a real HTTP receiver on loopback (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from opskit.changes import ChangeService
from opskit.lab import Lab
from opskit.ledger import Ledger
from opskit.notify import deliver, outbox_status
from opskit.notify.sender import Backoff
from opskit.notify.store import outbox
from opskit.workspace import Workspace
from tests.audit_support import approved, cli, lab_workspace, rolled_back_change
from tests.changes_support import write_policy
from tests.notify.receiver import Receiver, notify_policy

# One worker runs the module in order: its tests share one estate (the lab,
# the receiver, the outbox earlier tests filled).
pytestmark = pytest.mark.xdist_group("notify-lab")

SECRET = "hook-secret-5f1e0c"
NOW = Backoff(base=0.0, cap=0.0)  # retries due at once: the test drives the clock


@dataclass
class Estate:
    ws: Workspace
    svc: ChangeService
    receiver: Receiver


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def estate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Estate]:
    db = None
    if request.param == "postgres":
        db = request.getfixturevalue("postgres_server").create_database()
    root = tmp_path_factory.mktemp(f"notify-{request.param}")
    receiver = Receiver(SECRET.encode()).start()
    mp = pytest.MonkeyPatch()
    mp.setenv("NOTIFY_TEST_SECRET", SECRET)
    try:
        with lab_workspace(root / "ws", db=db, devices=2) as ws:
            write_policy(ws, extra=notify_policy(receiver.url))
            yield Estate(ws, ChangeService(ws), receiver)
    finally:
        receiver.stop()
        mp.undo()


def _kinds(docs: list[dict[str, object]], change_id: str) -> list[object]:
    return [doc["event"] for doc in docs if doc["change_id"] == change_id]


def test_a_change_notifies_each_step_in_ledger_order(estate: Estate) -> None:
    before = len(estate.receiver.unique())
    change_id = rolled_back_change(estate.svc, "lab-sw01", 611)
    estate.svc.close(change_id, "alice", review="rolled back as designed")
    report = deliver(estate.ws, backoff=NOW)
    assert report.failed == 0 and report.retried == 0
    docs = estate.receiver.unique()[before:]
    assert _kinds(docs, change_id) == [
        "change.created",
        "change.approved",
        "change.started",
        "change.rolled_back",
        "change.closed",
    ]
    assert all(item.signature_ok for item in estate.receiver.received)
    seqs = [doc["seq"] for doc in docs]
    assert seqs == sorted(seqs)
    # Each document names its ledger event: seq and hash as the ledger has them.
    ledger = Ledger.open(estate.ws)
    for doc in docs:
        event = next(iter(ledger.events(after_seq=doc["seq"] - 1)))
        assert (event.seq, event.hash, event.kind) == (doc["seq"], doc["hash"], doc["event"])
        assert doc["origin"] == ledger.origin
    assert docs[0]["summary"]["title"] == "VLAN 611"
    headers = estate.receiver.received[-1].headers
    assert headers["X-Opskit-Seq"] == str(docs[-1]["seq"])
    assert headers["X-Opskit-Event"] == "change.closed"
    assert outbox_status(estate.ws).pending == 0


def test_receiver_down_the_change_completes_and_is_told_later(estate: Estate) -> None:
    estate.receiver.stop()
    port = estate.receiver.port
    before = len(estate.receiver.unique())
    try:
        change_id = rolled_back_change(estate.svc, "lab-sw02", 612)
        report = deliver(estate.ws, backoff=NOW)
        assert report.delivered == 0 and report.retried == 1
        status = outbox_status(estate.ws)
        assert status.pending == 4 and status.oldest_pending is not None
        assert status.oldest_pending.kind == "change.created"
        assert "cannot reach the webhook" in (status.oldest_pending.last_error or "")
    finally:
        estate.receiver.start(port)
    report = deliver(estate.ws, backoff=NOW)
    assert report.delivered == 4
    docs = estate.receiver.unique()[before:]
    assert _kinds(docs, change_id) == [
        "change.created",
        "change.approved",
        "change.started",
        "change.rolled_back",
    ]
    with estate.ws.engine.connect() as conn:
        attempts = conn.execute(
            select(outbox.c.attempts).where(outbox.c.change_id == change_id)
        ).scalars()
        assert max(attempts) == 2  # the refused attempt is recorded


def test_documents_are_the_stored_bodies(estate: Estate, tmp_path: Path) -> None:
    with estate.ws.engine.connect() as conn:
        bodies = conn.execute(select(outbox.c.body, outbox.c.seq)).all()
    assert bodies
    for body, seq in bodies:
        assert json.loads(body)["seq"] == seq


def test_no_secret_reaches_a_notification(
    estate: Estate, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Canaries: the webhook secret, the lab's device password (the
    credential every connection used) and a secret runbook parameter."""
    canary = f"canary-{uuid.uuid4().hex}"
    device_password = Lab(estate.ws).password_file.read_text().strip()
    monkeypatch.setenv("NOTIFY_CANARY", canary)
    before = len(estate.receiver.received)
    caplog.set_level(logging.DEBUG)
    change_id = approved(
        estate.svc, "lab-sw02", {"vlan_id": 613, "community": {"env": "NOTIFY_CANARY"}}
    )
    assert estate.svc.apply(change_id, "alice")["state"] == "completed"
    estate.svc.rollback(change_id, "alice")
    deliver(estate.ws, backoff=NOW)
    received = estate.receiver.received[before:]
    assert {item.document["event"] for item in received} >= {"change.completed"}
    with estate.ws.engine.connect() as conn:
        table = repr(conn.execute(select(outbox)).all())
    sent = "".join(repr(item.headers) + item.body.decode() for item in received)
    logs = caplog.text + _notify_log(estate.ws)
    for secret in (canary, device_password, SECRET):
        for where, text in (("outbox", table), ("webhook", sent), ("log", logs)):
            assert secret not in text, f"a secret in the {where}"


def _notify_log(ws: Workspace) -> str:
    path = ws.state_dir / "notify.log"
    return path.read_text() if path.exists() else ""


def test_a_cli_rollout_delivers_in_the_background(estate: Estate) -> None:
    """`opskit change apply` starts the background sender: the receiver hears
    of the rollout without anyone running `opskit notify deliver`."""
    deliver(estate.ws, backoff=NOW)  # what earlier tests left
    before = len(estate.receiver.unique())
    change_id = approved(estate.svc, "lab-sw01", {"vlan_id": 614})
    done = cli("change", "apply", change_id, ws=estate.ws)
    assert done.returncode == 0, done.stderr
    # Other events (the after-change compliance's) may arrive in between.
    docs = estate.receiver.wait_until(
        lambda docs: "change.completed" in _kinds(docs[before:], change_id)
    )[before:]
    assert _kinds(docs, change_id) == [
        "change.created",
        "change.approved",
        "change.started",
        "change.completed",
    ]
    estate.svc.rollback(change_id, "alice")
