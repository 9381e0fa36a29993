"""Change links (`opskit.ledger.changelink`) on SQLite and PostgreSQL: every
link the journal writes is the fold of the chain itself (recomputed here
from the stored records, not from the links), whatever came between: bursts
from many threads under group commit, another writer, refused events,
rolled-back transactions, events written without links."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from opskit.changes.journal import Journal
from opskit.errors import LedgerError, OpskitError
from opskit.ledger import Ledger
from opskit.ledger.changelink import EMPTY_DIGEST, LINK_FIELD, fold_one
from opskit.workspace import Workspace, init_workspace
from tests.fixtures.postgres import PostgresServer


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Workspace]:
    db = None
    if request.param == "postgres":
        server: PostgresServer = request.getfixturevalue("postgres_server")
        db = server.create_database()
    workspace = init_workspace(tmp_path / "ws", db=db)
    yield workspace
    workspace.close()


def links_from_the_chain(ledger: Ledger) -> dict[int, dict[str, Any] | None]:
    """{seq: the link the record carries (None: none)} after checking each
    carried link against the fold of the change's earlier (seq, hash)."""
    folds: dict[str, tuple[int, str, int | None, str | None]] = {}
    carried: dict[int, dict[str, Any] | None] = {}
    rows = ledger.reader().query("SELECT seq, change_id, hash, record FROM ledger_events")
    for seq, change_id, hash_, record in sorted(rows):
        if change_id is None:
            continue
        count, digest, prev_seq, prev_hash = folds.get(change_id, (0, EMPTY_DIGEST, None, None))
        link = json.loads(record)["payload"].get(LINK_FIELD)
        if link is not None:
            expected = {
                "count": count,
                "digest": digest,
                "prev_hash": prev_hash,
                "prev_seq": prev_seq,
            }
            assert link == expected, f"seq {seq}: {link} != {expected}"
        carried[seq] = link
        folds[change_id] = (count + 1, fold_one(digest, seq, hash_), seq, hash_)
    return carried


def test_every_link_is_the_fold_of_the_chain_whatever_came_between(ws: Workspace) -> None:
    journal, other = Journal(ws), Journal(Workspace.open(ws.root, db=ws.db_url))
    record = journal.record

    def host(thread: int) -> None:
        for n in range(40):
            event = {"actor": "ci", "change_id": "C", "ci": f"sw{thread}", "payload": {"n": n}}
            if n % 4:
                journal.record_later("step", **event)()
            else:
                record("step", **event)

    with journal.group_commit():
        threads = [threading.Thread(target=host, args=(t,)) for t in range(4)]
        for thread in threads:
            thread.start()
        other.record("step", actor="other", change_id="C", payload={"other": 1})
        # Refused after its link was computed: the next event takes its seq.
        with pytest.raises(LedgerError):
            record("step", actor="ci", change_id="C", payload={"bad": {1}}, prepared=True)
        for thread in threads:
            thread.join()
    # The change's latest event written (flushed) inside the transaction.
    with journal.ledger.batch() as batch:
        record("step", actor="ci", change_id="C", payload={"flushed": 1})
        batch.flush()
        record("step", actor="ci", change_id="C", payload={"after": "flush"})
    # Linked in a transaction that is then rolled back; then, at the seq the
    # last of those links was computed for, an event of the change written
    # without a link on another history.
    with pytest.raises(RuntimeError), journal.ledger.batch():
        record("step", actor="ci", change_id="C", payload={"gone": 1})
        record("step", actor="ci", change_id="C", payload={"gone": 2})
        raise RuntimeError("rolled back")
    journal.ledger.append("step", actor="ci", change_id="D", payload={})
    journal.ledger.append("step", actor="old", change_id="C", payload={})
    record("step", actor="ci", change_id="C", payload={"after": "unlinked"})
    other.record("step", actor="other", change_id="C", payload={"other": 2})
    record("change.closed", actor="ci", change_id="C", payload={})

    carried = links_from_the_chain(journal.ledger)
    assert len(carried) == 4 * 40 + 8 and sum(link is None for link in carried.values()) == 2
    assert journal.ledger.verify().ok


def test_a_refused_event_never_takes_earlier_events_of_its_commit_with_it(
    ws: Workspace,
) -> None:
    """A change begun without links: its next link folds over all its events,
    read in the commit of the events queued before it. When that event is then
    refused, only it is undone, never the queued events (they were reported
    durable)."""
    journal = Journal(ws)
    for n in range(3):
        journal.ledger.append("step", actor="old", change_id="OLD", payload={"n": n})

    def passes(batch: Any) -> None:
        """A guard that writes nothing: the event gets a savepoint of its own."""

    with journal.group_commit():
        queued = [
            journal.record_later("step", actor="ci", change_id=None, payload={"q": n})
            for n in range(100)  # more than a PostgreSQL batch writes at once (rowsink)
        ]
        with pytest.raises(OpskitError):
            bad = {"bad": {1}}  # a set: the ledger refuses it
            journal.record(
                "step", actor="ci", change_id="OLD", payload=bad, prepared=True, guard=passes
            )
        written = [wait().seq for wait in queued]
    stored = {seq for (seq,) in journal.ledger.reader().query("SELECT seq FROM ledger_events")}
    assert set(written) <= stored, f"reported durable, not stored: {set(written) - stored}"
    journal.record("step", actor="ci", change_id="OLD", payload={"n": 3})
    carried = links_from_the_chain(journal.ledger)
    assert [link and link["count"] for link in carried.values()] == [None, None, None, 3]
    assert journal.ledger.verify().ok
