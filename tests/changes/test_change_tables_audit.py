"""`opskit audit verify` rebuilds the change tables from the ledger.

Real changes run end to end against lab switches, on SQLite and on
PostgreSQL; then each column of each change table is tampered with by SQL,
and `audit verify` must name the change and what disagrees. Untampered, it
says OK. `change show` warns when its change's rows disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import delete, insert, select, update

from opskit.changes import ChangeService, State
from opskit.changes import store as change_store
from opskit.changes.tablecheck import verify_change_tables
from opskit.ledger import Ledger
from opskit.workspace import Workspace
from tests.audit_support import approved, cli, completed_change, lab_workspace, rolled_back_change
from tests.changes_support import write_runbook
from tests.fixtures.postgres import attacker_sql, plain_sql

pytestmark = [pytest.mark.xdist_group("audit-lab"), pytest.mark.slow]


@dataclass
class Estate:
    ws: Workspace
    svc: ChangeService
    rolled_back: str  # verification failed on the switch: rolled back
    closed: str  # completed on two switches, rolled back on request, closed
    rejected: str
    approved: str
    halted: str  # the canary failed: rolled back, the other switch skipped
    emergency: str  # applied, rolled back, reviewed in retrospect, closed


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def estate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Estate]:
    db = None
    if request.param == "postgres":
        db = request.getfixturevalue("postgres_server").create_database()
    root = tmp_path_factory.mktemp(f"tables-{request.param}")
    with lab_workspace(root / "ws", db=db, devices=2) as ws:
        svc = ChangeService(ws)
        rolled = rolled_back_change(svc, "lab-sw01", 401)
        closed = completed_change(svc, "lab-sw*", 402)
        assert svc.rollback(closed, "alice")["state"] == "rolled_back"
        svc.close(closed, "alice", review="applied, then rolled back as planned")
        rejected = svc.create(
            runbook="chg-test@1.0.0", select_expr="lab-sw02", requester="alice",
            title="not now", params={"vlan_id": 403},
        ).id  # fmt: skip
        svc.submit(rejected, "alice")
        svc.assess(rejected, "bob", predict=False)
        svc.reject(rejected, "bob", "not in this window")
        pending = approved(svc, "lab-sw02", {"vlan_id": 404})
        canary = write_runbook(ws, "1.5.0", "low", canary=1)
        halted = approved(
            svc, "lab-sw*", {"vlan_id": 405, "expect_names": {"lab-sw01": "wrong"}}, runbook=canary
        )
        assert svc.apply(halted, "alice")["state"] == "rolled_back"
        emergency = approved(svc, "lab-sw02", {"vlan_id": 406}, change_type="emergency")
        assert svc.apply(emergency, "alice")["state"] == "completed"
        assert svc.rollback(emergency, "alice")["state"] == "rolled_back"
        svc.approve(emergency, "carol", comment="needed, done right")
        svc.close(emergency, "alice", review="outage fixed")
        yield Estate(ws, svc, rolled, closed, rejected, pending, halted, emergency)


def problems(estate: Estate) -> list[str]:
    check = verify_change_tables(Ledger.open(estate.ws))
    assert check.skipped is None
    return [text for _, text in check.problems]


def test_untampered_tables_agree_with_the_ledger(estate: Estate) -> None:
    assert problems(estate) == []
    result = cli("audit", "verify", ws=estate.ws)
    assert result.returncode == 0, result.stderr
    assert "6 changes" in result.stdout
    hosts = estate.svc.get(estate.halted).hosts
    assert {ci: h["status"] for ci, h in hosts.items()} == {
        "lab-sw01": "rolled_back",
        "lab-sw02": "skipped",
    }
    result = cli("change", "show", estate.closed, ws=estate.ws)
    assert result.returncode == 0 and "disagree" not in result.stderr


def test_a_forged_state_is_named_by_verify_and_show(estate: Estate) -> None:
    """The issue's reproduction: a change closed after a rollback set to
    completed by plain SQL."""
    url = estate.ws.db_url
    change = estate.rolled_back
    plain_sql(url, "UPDATE changes SET state = 'completed' WHERE id = ?", (change,))
    try:
        result = cli("audit", "verify", ws=estate.ws)
        assert result.returncode == 1
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert (
            f"ledger FAILED: change {change}: state is 'completed' in the changes table; "
            "the ledger says 'rolled_back'" in result.stderr
        )
        result = cli("change", "show", change, ws=estate.ws)
        assert "disagree with the ledger" in result.stderr and "'rolled_back'" in result.stderr
        shown = json.loads(cli("change", "show", change, "--json", ws=estate.ws).stdout)
        assert shown["ledger_disagreements"] and shown["state"] == "completed"
        # Two forged changes: the first one is named, the count says there are more.
        plain_sql(url, "UPDATE changes SET title = 'x' WHERE id = ?", (estate.approved,))
        result = cli("audit", "verify", "--json", ws=estate.ws)
        report = json.loads(result.stdout)
        assert report["problem"].startswith(f"change {change}:")
        assert any(
            p["problem"].startswith(f"change {estate.approved}:") for p in report["problems"]
        )
    finally:
        plain_sql(url, "UPDATE changes SET state = 'rolled_back' WHERE id = ?", (change,))
        plain_sql(url, "UPDATE changes SET title = 'VLAN 404' WHERE id = ?", (estate.approved,))
    assert problems(estate) == []


LATER = datetime(2031, 1, 1, tzinfo=UTC)
# (change, column, forged value, words the problem must contain)
CHANGE_COLUMNS: list[tuple[str, str, Any, str]] = [
    ("closed", "state", "completed", "state is 'completed'"),
    ("closed", "number", 999, "number is 999"),
    ("closed", "title", "harmless", "title 'harmless' in the changes table differs"),
    ("closed", "description", "nothing", "description"),
    ("closed", "type", "emergency", "type 'emergency'"),
    ("closed", "requester", "mallory", "requester 'mallory'"),
    ("closed", "runbook_name", "other", "runbook_name"),
    ("closed", "runbook_version", "9.9.9", "runbook_version"),
    ("closed", "runbook_digest", "sha256:" + "0" * 64, "runbook_digest"),
    ("closed", "selection", "lab-sw01", "selection"),
    ("closed", "inventory", "prod", "inventory"),
    ("closed", "inventory_digest", "sha256:" + "1" * 64, "inventory_digest"),
    ("closed", "targets", ["lab-sw01"], "targets"),
    ("closed", "parameters", {"vlan_id": 1}, "parameters"),
    ("closed", "window_start", LATER, "window_start"),
    ("closed", "window_end", LATER + timedelta(hours=1), "window_end"),
    ("closed", "tickets", ["INC-9"], "tickets"),
    ("closed", "plan", {"implementation": [], "rollback": []}, "plan"),
    ("closed", "predicted_diff", {"lab-sw01": {"hash": "x"}}, "predicted_diff"),
    ("closed", "risk", {"level": "low", "score": 0}, "risk"),
    ("closed", "impact", {"targets": []}, "impact"),
    ("closed", "assessment", {"required": {}, "assessed_by": "bob"}, "assessment.required"),
    ("closed", "review", {"outcome": "completed"}, "review"),
    ("closed", "summary", {"outcome": "completed"}, "summary.outcome"),
    ("rejected", "state", "approved", "state is 'approved'"),
    (
        "emergency",
        "retrospective",
        {"reviewers": ["carol"], "required": 1, "complete": False},
        "retrospective.complete",
    ),
    ("approved", "state", "in_progress", "state is 'in_progress'"),
]


@pytest.mark.parametrize("which, column, value, words", CHANGE_COLUMNS)
def test_each_changes_column_forged_is_named(
    estate: Estate, which: str, column: str, value: Any, words: str
) -> None:
    change_id = getattr(estate, which)
    table = change_store.changes
    with tampered(estate, update(table).where(table.c.id == change_id), column, value):
        found = problems(estate)
        assert found, f"{column} forged, nothing found"
        assert found[0].startswith(f"change {change_id}: "), found
        assert words in " | ".join(found), found


HOST_COLUMNS = [
    ("rolled_back", "lab-sw01", "status", "ok", "status is 'ok' in change_hosts"),
    ("rolled_back", "lab-sw01", "batch", 7, "batch is 7"),
    (
        "halted",
        "lab-sw02",
        "status",
        "ok",
        "status is 'ok' in change_hosts; the ledger says 'skipped'",
    ),
    ("closed", "lab-sw02", "status", "failed", "status is 'failed'"),
]


@pytest.mark.parametrize("which, ci, column, value, words", HOST_COLUMNS)
def test_each_host_column_forged_is_named(
    estate: Estate, which: str, ci: str, column: str, value: Any, words: str
) -> None:
    change_id = getattr(estate, which)
    hosts = change_store.hosts
    where = update(hosts).where(hosts.c.change_id == change_id, hosts.c.ci == ci)
    with tampered(estate, where, column, value):
        found = problems(estate)
        assert found and found[0].startswith(f"change {change_id}: host {ci}: "), found
        assert words in found[0], found


APPROVAL_COLUMNS = [
    ("approver", "carol"),
    ("comment", "rubber stamp"),
    ("binding_hash", "sha256:" + "2" * 64),
    ("signature", "forged"),
    ("roles", ["governance"]),
    ("kind", "freeze_override"),
]


@pytest.mark.parametrize("column, value", APPROVAL_COLUMNS)
def test_each_approval_column_forged_is_named(estate: Estate, column: str, value: Any) -> None:
    approvals = change_store.approvals
    where = update(approvals).where(approvals.c.change_id == estate.approved)
    with tampered(estate, where, column, value):
        found = problems(estate)
        assert found and found[0].startswith(f"change {estate.approved}: approval row 1"), found
        assert f"{column} differs from the ledger" in found[0]


def test_rows_added_or_removed_are_named(estate: Estate) -> None:
    engine = estate.ws.engine
    now = datetime.now(UTC)
    approvals, hosts, locks = change_store.approvals, change_store.hosts, change_store.locks
    slots = change_store.group_slots
    (row,) = (
        engine.connect()
        .execute(select(approvals).where(approvals.c.change_id == estate.approved))
        .mappings()
    )
    forged_vote = {**dict(row), "approver": "carol"}
    del forged_vote["id"]
    cases = [
        # A second vote no event records: a faked quorum.
        (insert(approvals).values(**forged_vote),
         delete(approvals).where(
            approvals.c.change_id == estate.approved, approvals.c.approver == "carol"
         ),
         f"change {estate.approved}: the approval row by carol is not in the ledger"),
        (insert(hosts).values(change_id=estate.closed, ci="lab-sw09", status="ok", updated_at=now),
         delete(hosts).where(hosts.c.ci == "lab-sw09"),
         f"change {estate.closed}: host lab-sw09: a change_hosts row the ledger does not know"),
        # A lock held by a finished change keeps everyone else off the switch.
        (insert(locks).values(ci="lab-sw02", change_id=estate.closed, acquired_at=now),
         delete(locks).where(locks.c.ci == "lab-sw02"),
         f"change {estate.closed}: holds the lock on lab-sw02, but it is closed in the ledger"),
        (insert(slots).values(group_name="core", slot=0, ci="lab-sw01", change_id=estate.closed,
                              acquired_at=now),
         delete(slots).where(slots.c.change_id == estate.closed),
         f"change {estate.closed}: holds slot 0 of group core for lab-sw01"),
        (insert(change_store.changes).values(
            id="CHG-999999", number=999999, title="ghost", description="", type="normal",
            state="approved", requester="mallory", runbook_name="chg-test",
            runbook_version="1.0.0", runbook_digest="sha256:x", selection="lab-sw01",
            inventory="lab", inventory_digest="sha256:x", targets=["lab-sw01"], parameters={},
            tickets=[], plan={}, created_at=now, updated_at=now),
         delete(change_store.changes).where(change_store.changes.c.id == "CHG-999999"),
         "change CHG-999999: has a row in the changes table but no change.created event"),
    ]  # fmt: skip
    for forge, restore, expected in cases:
        with engine.begin() as conn:
            conn.execute(forge)
        try:
            assert any(p.startswith(expected) for p in problems(estate)), (
                expected,
                problems(estate),
            )
        finally:
            with engine.begin() as conn:
                conn.execute(restore)
    # A recorded approval whose row was deleted no longer counts: said so.
    with engine.begin() as conn:
        conn.execute(delete(approvals).where(approvals.c.change_id == estate.approved))
    try:
        found = problems(estate)
        assert found == [
            f"change {estate.approved}: the approval by bob (seq {row_seq(estate)}) "
            "has no row in change_approvals"
        ]
    finally:
        with engine.begin() as conn:
            conn.execute(insert(approvals).values(**{k: v for k, v in row.items() if k != "id"}))
    assert problems(estate) == []


def row_seq(estate: Estate) -> int:
    (event,) = estate.svc.ledger.events(change_id=estate.approved, kind="change.approval")
    return event.seq


@contextmanager
def tampered(estate: Estate, statement: Any, column: str, value: Any) -> Iterator[None]:
    """Sets one column by SQL for the block, then puts the original back."""
    engine, table = estate.ws.engine, statement.table
    with engine.connect() as conn:
        query = select(table.c[column]).where(statement.whereclause)
        original = conn.execute(query).scalars().all()
    assert len(set(map(repr, original))) == 1, original
    with engine.begin() as conn:
        conn.execute(statement.values({column: value}))
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(statement.values({column: original[0]}))


def test_change_show_is_quiet_on_a_sound_change(estate: Estate, tmp_path: Path) -> None:
    result = cli("change", "show", estate.rejected, "--json", ws=estate.ws)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["ledger_disagreements"] == []
    assert estate.svc.get(estate.rejected).state is State.REJECTED


def test_a_broken_record_is_one_line_not_a_traceback(estate: Estate) -> None:
    """The chain check names a record that is no longer JSON; the table check
    must not stumble on it."""
    url = estate.ws.db_url
    ((seq, record),) = attacker_sql(
        url,
        "SELECT seq, record FROM ledger_events WHERE change_id = ? AND kind = 'change.created'",
        (estate.approved,),
    )
    attacker_sql(url, "UPDATE ledger_events SET record = ? WHERE seq = ?", ("{not json", seq))
    try:
        result = cli("audit", "verify", ws=estate.ws)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert f"FAILED at seq {seq}: changed content" in result.stderr
    finally:
        attacker_sql(url, "UPDATE ledger_events SET record = ? WHERE seq = ?", (record, seq))
    assert problems(estate) == []


def test_a_running_change_must_hold_its_locks() -> None:
    """A rollout under way (or cut off) holds a lock on every target: a
    deleted lock lets another change take the switch. Folded from the
    events a rollout records, compared with lock rows as they are read."""
    from opskit.changes import replay
    from opskit.changes.tablecheck import compare

    change = replay.start("CHG-000001", 1, {"targets": ["sw1", "sw2"]})
    replay.fold(change, 2, "change.started", "alice", None, {"batches": [["sw1"], ["sw2"]]})
    replay.fold(change, 3, "host.verified", "alice", "sw1", {})
    assert change.state == "in_progress"
    tables: dict[str, Any] = {
        "changes": [],
        "hosts": {},
        "approvals": [],
        "locks": [
            {"ci": "sw1", "change_id": "CHG-000001"},
            {"ci": "sw2", "change_id": "CHG-000002"},
        ],
        "slots": [],
    }
    found = [text for _, text in compare({"CHG-000001": change}, tables)]
    assert (
        "change CHG-000001: is in_progress in the ledger, but its lock on sw2 is held by "
        "CHG-000002" in found
    )
    assert any(p.startswith("change CHG-000002: holds the lock on sw2") for p in found)
    assert any(p.startswith("change CHG-000001: created in the ledger") for p in found)


@pytest.mark.postgres
def test_a_role_that_reads_only_the_ledger_still_verifies_it(estate: Estate) -> None:
    """The day-to-day role of docs/operations.md may read the ledger but not the change
    tables: `audit verify` checks the chain and says the tables were not."""
    url = estate.ws.db_url
    if not url.startswith("postgresql"):
        pytest.skip("roles are PostgreSQL's")
    import psycopg

    owner = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(owner, autocommit=True) as connection:
        connection.execute(
            "DO $$ BEGIN CREATE ROLE opskit_ledger_reader LOGIN; "
            "EXCEPTION WHEN duplicate_object THEN NULL; END $$"
        )
        connection.execute(
            "GRANT SELECT ON ledger_events, ledger_purges, ledger_checkpoints, ledger_blobs, "
            "ledger_tree, ledger_tree_heads TO opskit_ledger_reader"
        )
    user = url.split("//", 1)[1].split("@", 1)[0]
    reader = Workspace(
        root=estate.ws.root, db_url_override=url.replace(f"//{user}@", "//opskit_ledger_reader@")
    )
    result = cli("audit", "verify", ws=reader)
    assert result.returncode == 0, result.stderr
    assert "ledger OK" in result.stdout
    assert "change tables not checked: the change tables cannot be read" in result.stdout
    assert "permission denied" in result.stdout
