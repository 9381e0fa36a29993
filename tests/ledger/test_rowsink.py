"""A long write batch on SQLite and PostgreSQL (where it streams its rows
into a COPY as they are appended, `opskit.ledger.rowsink`): statements run
between streamed rows (a blob stored mid-batch ends the COPY first), the
rows are all there after `flush`, and a batch that fails midway leaves
nothing behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from opskit.ledger.rowsink import STREAM_FROM
from tests.fixtures.postgres import open_ledger

LONG = 2 * STREAM_FROM + 10


def test_statements_in_a_long_batch_see_the_rows_before_them(
    ledger_backend: str, tmp_path: Path
) -> None:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    with ledger.batch() as batch:
        for n in range(LONG):
            batch.append("host.applied", actor="ci", payload={"n": n}, ci=f"sw{n % 3}")
        batch.flush()  # the rows written: the statements after see them
        batch.cursor.execute("SELECT COUNT(*) FROM ledger_events")
        assert batch.cursor.fetchone()[0] == LONG
        for n in range(LONG):  # a blob stored between streamed rows
            blobs = {"config": f"hostname sw{n}\n"} if n % 50 == 7 else None
            batch.append("host.backup", actor="ci", payload={"n": n}, blobs=blobs)
    assert ledger.head()[0] == 2 * LONG
    report = ledger.verify()
    assert report.ok and report.counts["blobs"] == len(range(7, LONG, 50)), report.problems
    ledger.engine.dispose()


def test_a_long_batch_that_fails_midway_leaves_nothing(ledger_backend: str, tmp_path: Path) -> None:
    ledger = open_ledger(ledger_backend, tmp_path / "keys")
    ledger.append("first", actor="ci", payload={})
    with pytest.raises(RuntimeError), ledger.batch() as batch:
        for n in range(LONG):
            batch.append("host.applied", actor="ci", payload={"n": n})
        raise RuntimeError("the caller fails with rows still streaming")
    assert ledger.head()[0] == 1
    ledger.append("after", actor="ci", payload={})
    assert ledger.head()[0] == 2 and ledger.verify().ok
    ledger.engine.dispose()
