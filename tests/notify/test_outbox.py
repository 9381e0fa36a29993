"""The outbox commits with the ledger events that cause it, for any
subsystem's events (a compliance state change included), and a failed
transaction leaves neither."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from opskit.errors import OpskitError
from opskit.ledger import Ledger
from opskit.notify import deliver, outbox_status
from opskit.notify.outbox import SKIPPED_KEYS, summarize
from opskit.notify.sender import BATCH_ROWS
from opskit.notify.store import outbox
from opskit.secrets import REDACTOR
from opskit.workspace import Workspace
from tests.changes_support import write_policy
from tests.fuzz.support import run_cli
from tests.notify.receiver import Receiver, notify_policy

CANARY = "canary-6c0ffee-secret"


@pytest.fixture
def ws(workspace: Workspace, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workspace]:
    monkeypatch.setenv("NOTIFY_TEST_SECRET", "s3")
    write_policy(workspace, inventory="example", extra=notify_policy("http://127.0.0.1:9/h"))
    yield workspace


def _rows(ws: Workspace) -> list[tuple[int, str, str | None]]:
    with ws.engine.connect() as conn:
        query = select(outbox.c.seq, outbox.c.kind, outbox.c.ci).order_by(outbox.c.id)
        return [tuple(row) for row in conn.execute(query)]


def test_a_transaction_that_fails_leaves_no_notification(ws: Workspace) -> None:
    ledger = Ledger.open(ws)

    def crash(_batch: object) -> None:
        # A fault no real part produces on cue: the commit fails after the
        # outbox rows were written in the transaction.
        raise OpskitError("disk gone")

    ledger.commit_hooks.append(crash)
    with pytest.raises(OpskitError, match="disk gone"):
        ledger.append("change.created", actor="alice", change_id="CHG-9", payload={"title": "t"})
    assert _rows(ws) == []
    assert ledger.head()[0] == 0
    ledger.commit_hooks.remove(crash)
    event = ledger.append("change.created", actor="alice", change_id="CHG-9", payload={})
    assert _rows(ws) == [(event.seq, "change.created", None)]


def test_unsubscribed_kinds_write_nothing(ws: Workspace) -> None:
    ledger = Ledger.open(ws)
    ledger.append("change.submitted", actor="alice", change_id="CHG-1", payload={})
    ledger.append("change.refused", actor="alice", change_id="CHG-1", payload={"reason": "x"})
    assert _rows(ws) == []


def test_a_compliance_state_change_is_notified_once(ws: Workspace) -> None:
    ledger = Ledger.open(ws)
    states = ["compliant", "compliant", "non_compliant", "non_compliant", "compliant"]
    seqs = []
    for state in states:
        event = ledger.append("compliance.result", actor="bot", ci="sw1", payload={"state": state})
        seqs.append(event.seq)
    # Another CI's result does not count as sw1's previous state.
    ledger.append("compliance.result", actor="bot", ci="sw2", payload={"state": "compliant"})
    rows = [row for row in _rows(ws) if row[2] == "sw1"]
    assert rows == [(seqs[i], "compliance.changed", "sw1") for i in (0, 2, 4)]
    with ws.engine.connect() as conn:
        bodies = conn.execute(select(outbox.c.body).where(outbox.c.seq == seqs[2])).scalars()
        body = next(iter(bodies))
    assert '"from": "compliant"' in body and '"to": "non_compliant"' in body


def test_a_batch_of_many_events_notifies_each(ws: Workspace) -> None:
    ledger = Ledger.open(ws)
    with ledger.batch() as batch:
        kinds = ["change.created", "change.approved", "change.started", "change.completed"]
        events = [batch.append(kind, actor="a", change_id="CHG-2", payload={}) for kind in kinds]
    assert [(row[0], row[1]) for row in _rows(ws)] == [(e.seq, e.kind) for e in events]


def test_every_page_of_a_long_backlog_is_delivered(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_TEST_SECRET", "s4")
    receiver = Receiver(b"s4").start()
    try:
        write_policy(workspace, inventory="example", extra=notify_policy(receiver.url))
        ledger = Ledger.open(workspace)
        with ledger.batch() as batch:
            for n in range(BATCH_ROWS + 30):
                batch.append("change.created", actor="a", change_id=f"CHG-{n}", payload={})
        assert deliver(workspace).delivered == BATCH_ROWS + 30
        assert [doc["seq"] for doc in receiver.unique()] == list(range(1, BATCH_ROWS + 31))
    finally:
        receiver.stop()


def test_a_failing_webhook_gives_up_and_holds_back_no_other(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_TEST_SECRET", "s5")
    broken = Receiver(b"s5", status=500).start()
    working = Receiver(b"s5").start()
    try:
        policy = notify_policy(broken.url) + notify_policy(working.url).removeprefix("notify:\n")
        write_policy(
            workspace,
            inventory="example",
            extra=policy.replace("max_attempts: 20", "max_attempts: 3"),
        )
        ledger = Ledger.open(workspace)
        for kind in ("change.created", "change.approved"):
            ledger.append(kind, actor="a", change_id="CHG-1", payload={})
        reports = [deliver(workspace, force=True) for _ in range(3)]
        assert [r.delivered for r in reports] == [2, 0, 0]
        assert [r.failed for r in reports] == [0, 0, 1]
        assert len(working.unique()) == 2
        status = outbox_status(workspace)
        # The broken webhook's first row gave up after 3 attempts (HTTP 500);
        # its second waited behind it in order, and goes on now.
        assert (status.failed, status.pending) == (1, 1)
        assert deliver(workspace, force=True).retried == 1
        assert status.webhooks[broken.url]["failed"] == 1
    finally:
        broken.stop()
        working.stop()


def test_a_receiver_that_rejects_the_signature_is_retried(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_TEST_SECRET", "the-right-one")
    receiver = Receiver(b"another-secret").start()
    try:
        write_policy(workspace, inventory="example", extra=notify_policy(receiver.url))
        Ledger.open(workspace).append("change.created", actor="a", change_id="CHG-1", payload={})
        assert deliver(workspace).retried == 1
        (item,) = receiver.received
        assert not item.signature_ok
        status = outbox_status(workspace)
        assert status.oldest_pending is not None
        assert status.oldest_pending.last_error == "HTTP 401"
    finally:
        receiver.stop()


@settings(deadline=None, database=None)
@given(
    st.dictionaries(
        st.text(max_size=8),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=40),
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
            max_leaves=8,
        ),
        max_size=6,
    )
)
def test_a_summary_never_holds_a_registered_secret(payload: dict[str, object]) -> None:
    REDACTOR.register(CANARY)
    salted = {**payload, "note": f"pw {CANARY} here", "list": ["a", CANARY]}
    summary = summarize(salted)
    assert CANARY not in json.dumps(summary)
    assert set(summary) <= set(salted) - SKIPPED_KEYS


def test_an_event_is_recorded_and_notified_when_the_default_inventory_is_missing(
    ws: Workspace,
) -> None:
    # The routes need the `notify:` section only: a policy whose default
    # inventory is not there (yet) must not refuse the audit record.
    write_policy(ws, inventory="not-there", extra=notify_policy("http://127.0.0.1:9/h"))
    ledger = Ledger.open(Workspace(ws.root))
    event = ledger.append("change.created", actor="alice", change_id="CHG-7", payload={})
    assert _rows(ws) == [(event.seq, "change.created", None)]


def test_importing_the_cli_starts_no_sender_for_library_callers(ws: Workspace) -> None:
    # A program (or a test worker) that imports and runs `opskit.cli` in
    # process, then records events through the library, delivers itself: no
    # detached sender races its `deliver`.
    from typer.testing import CliRunner

    from opskit.cli import app

    assert CliRunner().invoke(app, ["--workspace", str(ws.root), "notify", "status"]).exit_code == 0
    assert run_cli("notify", "status", workspace=ws.root).code == 0  # through `opskit.cli.main`
    Ledger.open(ws).append("change.created", actor="alice", change_id="CHG-8", payload={})
    for thread in threading.enumerate():
        if thread.name == "opskit-notify-spawn":
            thread.join(timeout=30)
    assert not (ws.state_dir / "notify.log").exists()
    status = outbox_status(ws)
    assert status.pending == 1 and status.oldest_pending is not None
    assert status.oldest_pending.attempts == 0


@pytest.mark.parametrize(
    ("mode", "rows_for"), [("journal", (0, 2, 4)), ("both", (0, 1, 2, 3, 4)), ("none", ())]
)
def test_writeback_rows_are_finished_changes_and_compliance_per_mode(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, mode: str, rows_for: tuple[int, ...]
) -> None:
    url = "http://127.0.0.1:9"
    monkeypatch.setenv("NB_TOKEN", CANARY)
    entry = f"writeback:\n  - url: {url}\n    token: {{env: NB_TOKEN}}\n    compliance: {mode}\n"
    write_policy(workspace, inventory="example", extra=entry)
    ledger = Ledger.open(workspace)
    with ledger.batch() as batch:
        kinds = ["change.created", "change.approved", "change.started"]
        changed = [batch.append(k, actor="a", change_id="CHG-3", payload={}) for k in kinds]
        batch.append("host.applied", actor="a", change_id="CHG-3", ci="sw1", payload={})
        changed.append(batch.append("change.completed", actor="a", change_id="CHG-3", payload={}))
    states = ["compliant", "compliant", "non_compliant", "non_compliant", "compliant"]
    results = [
        ledger.append("compliance.result", actor="bot", ci="sw1", payload={"state": s})
        for s in states
    ]
    expected = [(changed[-1].seq, "change.completed", None)]
    expected += [(results[i].seq, "compliance.result", "sw1") for i in rows_for]
    assert _rows(workspace) == expected
    with workspace.engine.connect() as conn:
        bodies = list(conn.execute(select(outbox.c.body)).scalars())
    change = json.loads(bodies[0])
    assert (change["outcome"], change["cis"], change["hash"]) == (
        "completed", ["sw1"], changed[-1].hash,
    )  # fmt: skip
    assert not [body for body in bodies if CANARY in body]


def test_a_long_lived_sender_follows_the_policy_as_it_is_edited(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A background sender lives up to an hour (`deliver_while`): a rotated
    secret holds from its next pass, a route removed from the policy gets no
    further post, and a policy file caught half edited changes nothing."""
    from opskit.notify.sender import Sender

    monkeypatch.setenv("OLD_SECRET", "old")
    monkeypatch.setenv("NEW_SECRET", "new")
    receiver = Receiver(b"new").start()  # already checks the rotated secret
    try:
        write_policy(
            workspace, inventory="example", extra=notify_policy(receiver.url, env="OLD_SECRET")
        )
        ledger = Ledger.open(workspace)
        ledger.append("change.created", actor="a", change_id="CHG-1", payload={})
        sender = Sender(workspace)
        assert sender.deliver(force=True).retried == 1  # signed with the old secret: 401
        assert receiver.unique() == []

        # Half an edit (not a policy): the routes stay as they were, and the
        # log says so once, not at every pass.
        workspace.policy_path.write_text("people: [\n")
        with caplog.at_level("WARNING", logger="opskit.notify"):
            assert sender.deliver(force=True).retried == 1
            assert sender.deliver(force=True).retried == 1
        kept = [r for r in caplog.records if r.getMessage().startswith("policy not read again")]
        assert len(kept) == 1 and "opskit.yaml" in kept[0].getMessage()
        write_policy(
            workspace, inventory="example", extra=notify_policy(receiver.url, env="NEW_SECRET")
        )
        assert sender.deliver(force=True).delivered == 1
        assert [doc["event"] for doc in receiver.unique()] == ["change.created"]

        ledger.append("change.approved", actor="a", change_id="CHG-1", payload={})
        write_policy(workspace, inventory="example")  # the route removed
        posts = len(receiver.received)
        report = sender.deliver(force=True)
        assert (report.delivered, report.failed) == (0, 1)
        assert len(receiver.received) == posts
        with workspace.engine.connect() as conn:
            (error,) = conn.execute(select(outbox.c.last_error).where(outbox.c.seq == 2)).one()
        assert error == "the route is no longer in the policy"
    finally:
        receiver.stop()
