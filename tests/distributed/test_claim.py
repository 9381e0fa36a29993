"""The idempotency claim under concurrency, on a real PostgreSQL ledger: many
deliveries of one (change, host, step) at once, from two workers' journals
(each with its group commit open, as `opskit worker` runs), pass once, also
when several of them end up in one commit (the ledger was busy: another
writer held its lock while they queued)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from opskit.changes import ChangeService
from opskit.changes.runners import HostJob
from opskit.distributed.hostjob import DISPATCHED, DUPLICATE, claim
from opskit.ledger.core import PG_LOCK_KEY
from opskit.workspace import Workspace, init_workspace

pytestmark = pytest.mark.postgres

DELIVERIES = 8


@contextlib.contextmanager
def busy_ledger(db: str) -> Iterator[None]:
    """Another writer holds the ledger's write lock until the block ends."""
    import psycopg

    with psycopg.connect(db.replace("postgresql+psycopg", "postgresql")) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (PG_LOCK_KEY,))
        try:
            yield
        finally:
            connection.execute("SELECT pg_advisory_unlock(%s)", (PG_LOCK_KEY,))


def test_concurrent_deliveries_of_one_key_claim_the_host_once(
    postgres_server: Any, tmp_path: Path
) -> None:
    db = postgres_server.create_database()
    created = init_workspace(tmp_path / "ws", db=db)
    root = created.root
    created.close()
    workers = [ChangeService(Workspace.open(root, db=db)) for _ in range(2)]
    job = HostJob("CHG-0001", "sw1", "run", "sha256:" + "a" * 64, 0, "alice")
    other = HostJob("CHG-0001", "sw2", "run", "sha256:" + "a" * 64, 0, "alice")

    def deliver(service: ChangeService, chosen: HostJob, name: str) -> bool:
        return claim(service.context, chosen, worker=name)

    with contextlib.ExitStack() as stack:
        for service in workers:
            stack.enter_context(service.context.journal.group_commit())
        with ThreadPoolExecutor(DELIVERIES + 2) as pool:
            with busy_ledger(db):
                # Each worker's commit of another host's claim waits for the
                # lock; the deliveries of `job` queue behind it, into one commit.
                firsts = [
                    pool.submit(deliver, w, other, f"first-{n}") for n, w in enumerate(workers)
                ]
                time.sleep(0.3)
                futures = [
                    pool.submit(deliver, workers[index % 2], job, f"worker-{index}")
                    for index in range(DELIVERIES)
                ]
                time.sleep(0.3)
            passed = [future.result(timeout=60) for future in futures]
            assert sorted(f.result(timeout=60) for f in firsts) == [False, True]
    assert passed.count(True) == 1, passed
    ledger = workers[0].context.ledger
    assert [e.kind for e in ledger.events(change_id="CHG-0001", ci="sw2")] == [
        DISPATCHED,
        DUPLICATE,
    ]
    kinds = [e.kind for e in ledger.events(change_id="CHG-0001", ci="sw1")]
    assert kinds.count(DISPATCHED) == 1
    assert kinds.count(DUPLICATE) == DELIVERIES - 1
    # A delivery long after (a redelivered message) finds the claim too.
    assert claim(workers[1].context, job, worker="late") is False
    assert ledger.verify().ok
    for service in workers:
        service.context.ws.close()
