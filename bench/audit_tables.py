"""`opskit audit verify` with the change tables: what rebuilding every change
from the ledger adds to the chain check.

Builds a SQLite ledger of N events (default 200,000) made of whole changes
(created ... completed, 130 hosts each with backup, applied and verified
steps) and the change tables' rows that agree with it, then times the chain
verification (`Ledger.verify`) and the table check
(`opskit.changes.tablecheck.verify_change_tables`), each alone.

    .venv/bin/python bench/audit_tables.py [--events N] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import median
from typing import Any

from sqlalchemy import insert

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from opskit.changes import store  # noqa: E402
from opskit.changes.tablecheck import verify_change_tables  # noqa: E402
from opskit.db import create_schema, open_engine, sqlite_url  # noqa: E402
from opskit.ledger import Ledger  # noqa: E402
from opskit.ledger.keys import ensure_key  # noqa: E402

HOSTS = 130  # 3 steps each: 390 host events + 10 change events per change
EVENTS_PER_CHANGE = 3 * HOSTS + 10


def one_change(ledger: Ledger, batch: Any, number: int, now: datetime) -> dict[str, Any]:
    """Appends one change's events to `batch`; returns its rows."""
    change_id = f"CHG-{number:06d}"
    hosts = [f"sw-{number:04d}-{i:03d}" for i in range(HOSTS)]
    plan = [hosts[:1], hosts[1:65], hosts[65:]]
    created = {
        "title": f"VLAN {number}", "description": "", "type": "normal", "requester": "alice",
        "runbook": "vlan-add@1.4.2", "runbook_digest": "sha256:" + "a" * 64,
        "selection": f"group:site{number}", "inventory": "prod",
        "inventory_digest": "sha256:" + "b" * 64, "targets": hosts,
        "parameters": {"vlan_id": 100 + number % 3000}, "window_start": None,
        "window_end": None, "tickets": [f"INC-{number}"],
        "plan": {"implementation": ["add the VLAN"], "rollback": ["auto"]},
    }  # fmt: skip
    required = {"rule": "low", "roles": ["cab"], "count": 1, "eligible": ["bob"], "reason": "low"}
    risk = {"level": "low", "score": 2, "factors": []}
    impact = {"targets": hosts, "dependants": []}

    def change(kind: str, actor: str, **payload: Any) -> None:
        batch.append(kind, actor=actor, change_id=change_id, payload=payload)

    change("change.created", "alice", to="draft", **created)
    change("change.submitted", "alice", **{"from": "draft", "to": "submitted"})
    change("change.assessed", "bob", **{"from": "submitted", "to": "assessed"}, risk=risk,
           impact=impact, required_approvals=required, targets=hosts, predicted_diff={},
           runbook_digest=created["runbook_digest"],
           inventory_digest=created["inventory_digest"])  # fmt: skip
    change("change.approval", "bob", approver="bob", roles=["cab"], binding={},
           binding_hash="sha256:" + "c" * 64, signature=None, public_key=None,
           comment=None)  # fmt: skip
    change("change.approved", "bob", **{"from": "assessed", "to": "approved"})
    change("change.scheduled", "alice", **{"from": "approved", "to": "scheduled"},
           window_start=None, window_end=None, overlapping_freezes=[])  # fmt: skip
    change("change.started", "alice", **{"from": "scheduled", "to": "in_progress"}, batches=plan)
    for ci in hosts:
        for kind in ("host.backup", "host.applied", "host.verified"):
            batch.append(kind, actor="alice", change_id=change_id, ci=ci,
                         payload={"duration_ms": 1200, "changed": True})  # fmt: skip
    change("change.verifying", "alice", **{"from": "in_progress", "to": "verifying"})
    change("change.completed", "alice", **{"from": "verifying", "to": "completed"})
    row = {
        **{k: v for k, v in created.items() if k != "runbook"},
        "id": change_id, "number": number, "state": "completed", "runbook_name": "vlan-add",
        "runbook_version": "1.4.2", "risk": risk, "impact": impact, "predicted_diff": {},
        "assessment": {"required": required, "assessed_by": "bob"}, "created_at": now,
        "updated_at": now,
    }  # fmt: skip
    host_rows = [
        {"change_id": change_id, "ci": ci, "status": "ok", "batch": b, "updated_at": now}
        for b, names in enumerate(plan)
        for ci in names
    ]
    approval = {
        "change_id": change_id, "kind": "approval", "approver": "bob", "roles": ["cab"],
        "binding_hash": "sha256:" + "c" * 64, "binding": {}, "signature": None,
        "comment": None, "created_at": now,
    }  # fmt: skip
    return {"change": row, "hosts": host_rows, "approval": approval}


def build(folder: Path, events: int) -> Ledger:
    engine = open_engine(sqlite_url(folder / "audit.db"))
    create_schema(engine)
    keys = folder / "keys"
    ensure_key(keys)
    ledger = Ledger(engine, keys_dir=keys)
    now = datetime.now(UTC)
    for number in range(1, events // EVENTS_PER_CHANGE + 1):
        with ledger.batch() as batch:
            rows = one_change(ledger, batch, number, now)
        with engine.begin() as conn:
            conn.execute(insert(store.changes).values(**rows["change"]))
            conn.execute(insert(store.hosts), rows["hosts"])
            conn.execute(insert(store.approvals).values(**rows["approval"]))
    return ledger


def timed(call: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="opskit-bench-") as tmp:
        ledger = build(Path(tmp), args.events)
        chain_times, table_times = [], []
        for _ in range(args.rounds):
            seconds, report = timed(ledger.verify)
            assert report.ok, report.problem
            chain_times.append(seconds)
            seconds, check = timed(lambda: verify_change_tables(ledger))
            assert not check.problems, check.problems[:3]
            table_times.append(seconds)
        count = report.counts["events"]
        chain, tables = median(chain_times), median(table_times)
        print(
            f"SQLite, {count:,} events in {check.changes:,} changes, median of {args.rounds}: "
            f"chain verify {chain:.2f} s, change tables {tables:.2f} s "
            f"(+{100 * tables / chain:.0f}%)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
