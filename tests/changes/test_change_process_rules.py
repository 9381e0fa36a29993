"""Promises of the change process that need no device: state refusals are
recorded, cancelling, a refused create takes no number and names the
parameter, a bare runbook name says which version it took, a past window is
refused, approve says what is still needed, apply on a change whose runner
died points at `recover`. On a real SQLite workspace with a real ledger (and
PostgreSQL where the storage is concerned)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opskit.changes import ChangeService, State
from opskit.changes.model import TRANSITIONS
from opskit.errors import ChangeError, ChangeRefused, OpskitError, RunbookError
from opskit.workspace import Workspace
from tests.changes_support import run_change_cli as run_cli
from tests.changes_support import write_policy, write_runbooks

SWITCH = "lab-sw01"
BIG = 2**53 + 1  # beyond what the ledger's canonical JSON records


@pytest.fixture
def svc(workspace: Workspace) -> Iterator[ChangeService]:
    write_policy(workspace)
    write_runbooks(workspace)
    yield ChangeService(workspace)


def new_change(svc: ChangeService, version: str = "1.0.0", **kwargs: object) -> str:
    return svc.create(
        runbook=f"chg-test@{version}",
        select_expr=SWITCH,
        requester="alice",
        title="test VLAN",
        params={"vlan_id": 42},
        **kwargs,  # type: ignore[arg-type]
    ).id


def assessed(svc: ChangeService, version: str = "1.0.0") -> str:
    change_id = new_change(svc, version)
    svc.submit(change_id, "alice")
    svc.assess(change_id, "bob", predict=False)
    return change_id


def kinds(svc: ChangeService, change_id: str) -> list[str]:
    return [e.kind for e in svc.context.ledger.events(change_id=change_id)]


# -- item 9: a refusal on the state is recorded like every refusal -------------------
def test_a_state_refusal_writes_change_refused(svc: ChangeService) -> None:
    draft = new_change(svc)
    with pytest.raises(ChangeRefused, match="only an assessed change can be approved"):
        svc.approve(draft, "bob")
    with pytest.raises(ChangeRefused, match="cannot go from draft to closed"):
        svc.close(draft, "alice", review="nothing")
    with pytest.raises(ChangeRefused, match="cannot go from draft to scheduled"):
        svc.schedule(draft, "alice")
    refusals = [e for e in svc.context.ledger.events(change_id=draft) if e.kind == "change.refused"]
    assert [(e.actor, e.payload["action"]) for e in refusals] == [
        ("bob", "approve"),
        ("alice", "close"),
        ("alice", "schedule"),
    ]
    assert "it is draft" in refusals[0].payload["reason"]
    assert svc.get(draft).state is State.DRAFT
    assert svc.context.ledger.verify().ok


# -- item 11: cancel ----------------------------------------------------------------------
def test_cancel_before_the_start_by_requester_or_change_manager(svc: ChangeService) -> None:
    assert State.CANCELLED in TRANSITIONS[State.APPROVED]
    assert TRANSITIONS[State.CANCELLED] == frozenset()
    for state in (State.IN_PROGRESS, State.VERIFYING, State.COMPLETED, State.CLOSED):
        assert State.CANCELLED not in TRANSITIONS[state]
    draft = new_change(svc)
    with pytest.raises(ChangeError, match="needs a reason"):
        svc.cancel(draft, "alice", reason=" ")
    with pytest.raises(ChangeRefused, match="carol is not a change_manager"):
        svc.cancel(draft, "carol", reason="not mine to cancel")
    cancelled = svc.cancel(draft, "alice", reason="duplicate of CHG-1")
    assert cancelled.state is State.CANCELLED
    event = list(svc.context.ledger.events(change_id=draft))[-1]
    assert event.kind == "change.cancelled" and event.actor == "alice"
    assert event.payload["reason"] == "duplicate of CHG-1"
    with pytest.raises(ChangeRefused, match="only a change that has not started"):
        svc.cancel(draft, "alice", reason="again")
    with pytest.raises(ChangeRefused, match="cannot go from cancelled to submitted"):
        svc.submit(draft, "alice")

    # An approved change holding (orphan) locks: a change manager cancels it,
    # and the locks go with it, in the same transaction as the event.
    approved = assessed(svc)
    svc.approve(approved, "bob")
    svc.context.store.acquire_locks(svc.get(approved))
    other = svc.get(assessed(svc))
    assert svc.context.store.locks_held_by_others(other) == {SWITCH: approved}
    svc.cancel(approved, "mallory", reason="superseded")
    assert svc.context.store.locks_held_by_others(other) == {}
    assert list(svc.context.ledger.events(change_id=approved))[-1].payload["locks_released"] == 1

    # Hidden from the listing unless asked for.
    assert [c.id for c in svc.list()] == [other.id]
    assert [c.id for c in svc.list(include_cancelled=True)] == [draft, approved, other.id]
    assert [c.id for c in svc.list("cancelled")] == [draft, approved]
    assert svc.context.ledger.verify().ok


@pytest.mark.slow
def test_cli_cancel_and_list_all(svc: ChangeService) -> None:
    ws = svc.ws
    kept, dropped = new_change(svc), new_change(svc)
    out = run_cli(ws, "cancel", dropped, "--reason", "not needed")
    assert out.returncode == 0, out.stderr
    assert f"{dropped} cancelled" in out.stdout
    listed = run_cli(ws, "list", "--json")
    assert [c["id"] for c in json.loads(listed.stdout)] == [kept]
    everything = json.loads(run_cli(ws, "list", "--all", "--json").stdout)
    assert [(c["id"], c["state"]) for c in everything] == [(kept, "draft"), (dropped, "cancelled")]
    only = json.loads(run_cli(ws, "list", "--state", "cancelled", "--json").stdout)
    assert [c["id"] for c in only] == [dropped]
    again = run_cli(ws, "cancel", dropped, "--reason", "twice")
    assert again.returncode == 1 and again.stderr.count("\n") == 1
    assert "only a change that has not started can be cancelled" in again.stderr


@pytest.mark.postgres
def test_cancel_and_the_new_states_on_postgresql(workspace: Workspace, postgres_db: str) -> None:
    ws = Workspace(root=workspace.root, db_url_override=postgres_db)
    write_policy(ws)
    write_runbooks(ws)
    svc = ChangeService(ws)
    try:
        approved = assessed(svc)
        svc.approve(approved, "bob")
        svc.context.store.acquire_locks(svc.get(approved))
        assert svc.cancel(approved, "alice", reason="withdrawn").state is State.CANCELLED
        assert svc.context.store.locks_held_by_others(svc.get(new_change(svc))) == {}
        assert [c.state for c in svc.list("cancelled")] == [State.CANCELLED]
        assert [c.id for c in svc.list()] == ["CHG-000002"]
        # The state column holds the longest state name (VARCHAR is enforced here).
        from sqlalchemy import update

        from opskit.changes import store

        with svc.context.engine.begin() as conn:
            conn.execute(
                update(store.changes)
                .where(store.changes.c.id == "CHG-000002")
                .values(state=State.PARTIALLY_ROLLED_BACK.value)
            )
        assert svc.get("CHG-000002").state is State.PARTIALLY_ROLLED_BACK
        # A refused create takes no number here either.
        with pytest.raises(RunbookError):
            svc.create(
                runbook="chg-test@1.0.0", select_expr=SWITCH, requester="alice", title="t",
                params={"vlan_id": 42, "expect_names": {SWITCH: BIG}},
            )  # fmt: skip
        assert new_change(svc) == "CHG-000003"
        assert svc.context.ledger.verify().ok
    finally:
        ws.close()


# -- items 12 and 13: create checks everything before taking a number ---------------------
def test_a_refused_create_takes_no_number_and_names_the_parameter(svc: ChangeService) -> None:
    first = new_change(svc)
    head = svc.context.ledger.head()
    with pytest.raises(RunbookError) as refused:
        svc.create(
            runbook="chg-test@1.0.0", select_expr=SWITCH, requester="alice", title="t",
            params={"vlan_id": 42, "expect_names": {SWITCH: BIG}},
        )  # fmt: skip
    message = str(refused.value)
    assert "\n" not in message
    assert f"parameter 'expect_names.{SWITCH}'" in message and str(BIG) in message
    assert "payload" not in message and "append" not in message
    with pytest.raises(ChangeError, match="U\\+0000"):
        svc.create(
            runbook="chg-test@1.0.0", select_expr=SWITCH, requester="alice", title="a\x00b",
            params={"vlan_id": 42},
        )  # fmt: skip
    assert svc.context.ledger.head() == head  # nothing written
    second = new_change(svc)
    assert (first, second) == ("CHG-000001", "CHG-000002")  # consecutive


def test_a_window_that_has_ended_is_refused_at_create(svc: ChangeService) -> None:
    now = datetime.now(UTC)
    with pytest.raises(ChangeError, match=r"window_end .*: the window has already ended"):
        new_change(svc, window_start=now - timedelta(hours=2), window_end=now - timedelta(hours=1))
    # Started already but still open: fine.
    open_now = new_change(svc, window_start=now - timedelta(hours=1), window_end=now + timedelta(1))
    assert open_now == "CHG-000001"


def test_a_bare_runbook_name_is_recorded_with_the_version_taken(svc: ChangeService) -> None:
    change = svc.create(
        runbook="chg-test", select_expr=SWITCH, requester="alice", title="t",
        params={"vlan_id": 42},
    )  # fmt: skip
    assert change.runbook_ref == "chg-test@3.0.0"  # the newest
    created = next(svc.context.ledger.events(change_id=change.id, kind="change.created"))
    assert created.payload["runbook_chosen"] == {
        "requested": "chg-test",
        "version": "3.0.0",
        "rule": "newest version",
    }
    pinned = new_change(svc)
    assert (
        "runbook_chosen"
        not in next(svc.context.ledger.events(change_id=pinned, kind="change.created")).payload
    )


@pytest.mark.slow
def test_cli_create_refusals_are_one_line_and_keep_the_numbers(svc: ChangeService) -> None:
    ws = svc.ws
    create = ["create", "--select", SWITCH, "--title", "t"]
    big = run_cli(
        ws, *create, "--runbook", "chg-test@1.0.0", "--param", "vlan_id=42",
        "--param", f'expect_names={{"{SWITCH}": {BIG}}}',
    )  # fmt: skip
    assert big.returncode == 1 and big.stderr.count("\n") == 1, big.stderr
    assert f"parameter 'expect_names.{SWITCH}'" in big.stderr and "payload" not in big.stderr
    past = run_cli(
        ws, *create, "--runbook", "chg-test@1.0.0", "--param", "vlan_id=42",
        "--window-end", "2020-01-01T00:00+00:00",
    )  # fmt: skip
    assert past.returncode == 2 and past.stderr.count("\n") == 1, past.stderr
    assert "--window-end 2020-01-01T00:00:00+00:00: the window has already ended" in past.stderr
    bare = run_cli(ws, *create, "--runbook", "chg-test", "--param", "vlan_id=42")
    assert bare.returncode == 0, bare.stderr
    assert "took the newest, chg-test@3.0.0" in bare.stderr
    assert bare.stdout.startswith("CHG-000001 draft  chg-test@3.0.0")


# -- item 15: approve says what is still needed ------------------------------------------
def test_approve_says_how_many_more_and_from_which_roles(svc: ChangeService) -> None:
    change_id = assessed(svc, "2.0.0")  # medium risk: 2 of cab
    first = svc.approve(change_id, "carol")
    assert first.state is State.ASSESSED
    progress = first.approval_progress
    assert progress["remaining"] == 1 and progress["roles"] == ["cab"]
    assert progress["eligible"] == ["bob"]
    assert (
        progress["summary"]
        == "approved by carol (cab); 1 more needed: 1 of role cab (eligible: bob)"
    )
    second = svc.approve(change_id, "bob")
    assert second.state is State.APPROVED and second.approval_progress["remaining"] == 0
    assert second.approval_progress["summary"].endswith("2 of 2 required: approved")


@pytest.mark.slow
def test_cli_approve_prints_what_is_still_needed(svc: ChangeService) -> None:
    change_id = assessed(svc, "2.0.0")
    out = run_cli(svc.ws, "approve", change_id, user="carol")
    assert out.returncode == 0, out.stderr
    assert "approved by carol (cab); 1 more needed: 1 of role cab (eligible: bob)" in out.stdout


# -- item 14: apply on a change whose runner died ----------------------------------------
def test_apply_on_a_change_whose_runner_died_points_at_recover(svc: ChangeService) -> None:
    change_id = assessed(svc)
    svc.approve(change_id, "bob")
    change = svc.schedule(change_id, "alice")
    svc.context.journal.transition(change, State.IN_PROGRESS, actor="alice")
    # The runner: a real process that has ended.
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    svc.context.store.set_runner(change_id, alive=True)
    from sqlalchemy import update

    from opskit.changes import store

    with svc.context.engine.begin() as conn:
        conn.execute(
            update(store.changes).where(store.changes.c.id == change_id).values(runner_pid=gone.pid)
        )
    with pytest.raises(ChangeRefused) as refused:
        svc.apply(change_id, "alice")
    assert f"its runner (pid {gone.pid} on" in str(refused.value)
    assert f"opskit change recover {change_id}" in str(refused.value)
    # And recover takes the change id.
    (report,) = svc.recover("alice", change_id=change_id)
    assert report["change_id"] == change_id and report["state"] == "failed"


@pytest.mark.postgres
def test_an_older_postgresql_schema_gets_the_wider_state_column(postgres_db: str) -> None:
    """Databases made before `partially_rolled_back` had VARCHAR(16) states."""
    from sqlalchemy import text

    from opskit.db import create_schema, open_engine

    engine = open_engine(postgres_db)
    try:
        create_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE changes ALTER COLUMN state TYPE VARCHAR(16)"))
        create_schema(engine)
        with engine.connect() as conn:
            width = conn.execute(
                text(
                    "SELECT character_maximum_length FROM information_schema.columns "
                    "WHERE table_name = 'changes' AND column_name = 'state'"
                )
            ).scalar()
        assert width == 32
    finally:
        engine.dispose()


# -- property: whatever the parameters, a create is whole or leaves no trace -----------------
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=json_values, title=st.text(min_size=1, max_size=12))
def test_any_create_is_whole_or_leaves_no_trace(svc: ChangeService, value: Any, title: str) -> None:
    before = [c.id for c in svc.list(include_cancelled=True)]
    head = svc.context.ledger.head()
    try:
        change = svc.create(
            runbook="chg-test@1.0.0", select_expr=SWITCH, requester="alice", title=title,
            params={"vlan_id": 42, "expect_names": {"x": value}},
        )  # fmt: skip
    except OpskitError as exc:
        assert "\n" not in str(exc) and "payload" not in str(exc)
        assert svc.context.ledger.head() == head
        assert [c.id for c in svc.list(include_cancelled=True)] == before
        return
    # Accepted: the next number, and recorded.
    assert change.number == len(before) + 1
    assert next(svc.context.ledger.events(change_id=change.id)).kind == "change.created"


# -- property: the progress tally never counts a host twice --------------------------------
STATUSES = ["running", "ok", "failed", "rolled_back", "rollback_failed", "skipped", "unknown"]


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(STATUSES))))
def test_the_progress_tally_counts_each_host_once(events: list[tuple[str, str]]) -> None:
    from opskit.changes.progress import ProgressTally

    tally = ProgressTally(3)
    for ci, status in events:
        tally.update(ci, status)
        assert tally.completed <= tally.total
        assert sum(tally.counts.values()) == tally.completed
    finals = {ci for ci, status in events if status != "running"}
    assert tally.completed == len(finals)
