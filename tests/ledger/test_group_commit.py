"""The group-commit writer (`opskit.ledger.groupcommit.GroupWriter`) on a
real SQLite ledger: who writes, when, in which order, with how many commits."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from opskit.ledger import Ledger
from opskit.ledger.groupcommit import LINGER_SECONDS, GroupWriter
from tests.fixtures.postgres import open_ledger


class CountingLedger(Ledger):
    """Counts the write transactions (each is one commit, one fsync)."""

    commits = 0

    def batch(self):  # type: ignore[no-untyped-def]
        if getattr(self._local, "batch", None) is None:
            self.commits += 1
        return super().batch()


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[CountingLedger]:
    opened = open_ledger(f"sqlite:///{tmp_path / 'ledger.db'}", tmp_path / "keys")
    counting = CountingLedger(opened.engine, keys_dir=opened.keys_dir)
    yield counting
    opened.engine.dispose()


def test_an_awaited_append_is_written_by_the_thread_that_waits(ledger: CountingLedger) -> None:
    """No thread switch on the path of a host waiting for its backup: its own
    thread commits (the guard runs in the commit's transaction)."""
    writer = GroupWriter(ledger)
    writers: list[str] = []
    try:
        event = writer.append(
            "host.backup",
            actor="alice",
            payload={"n": 1},
            guard=lambda batch: writers.append(threading.current_thread().name),
        )
    finally:
        writer.close()
    assert writers == [threading.current_thread().name]
    assert event.seq == 1 and ledger.verify().ok


def test_submitted_steps_share_one_commit_in_the_background(ledger: CountingLedger) -> None:
    """Steps a host only needs durable at its end are queued; the writer
    thread commits them together after LINGER_SECONDS, not one by one, and
    a backup appended meanwhile takes them along."""
    writer = GroupWriter(ledger)
    try:
        queued = [writer.submit("host.applied", actor="alice", payload={"n": n}) for n in range(5)]
        started = time.monotonic()
        assert [result().seq for result in queued] == [1, 2, 3, 4, 5]
        assert time.monotonic() - started < 20 * LINGER_SECONDS
        assert ledger.commits == 1
        later = [writer.submit("host.verified", actor="alice", payload={"n": n}) for n in range(3)]
        backup = writer.append("host.backup", actor="alice", payload={"n": 3})
    finally:
        writer.close()
    assert [result().seq for result in later] == [6, 7, 8] and backup.seq == 9
    assert ledger.commits == 2
    assert ledger.verify().ok


def test_many_threads_keep_each_ones_order_in_few_commits(ledger: CountingLedger) -> None:
    writer = GroupWriter(ledger)

    def host(h: int) -> list[int]:
        pending = [
            writer.submit("host.step", actor="alice", ci=f"h{h}", payload={"i": i})
            for i in range(3)
        ]
        backup = writer.append("host.backup", actor="alice", ci=f"h{h}", payload={"i": 3})
        return [result().seq for result in pending] + [backup.seq]

    try:
        with ThreadPoolExecutor(16) as threads:
            seqs = list(threads.map(host, range(32)))
    finally:
        writer.close()
    for host_seqs in seqs:
        assert host_seqs == sorted(host_seqs)  # one host's events in the order queued
    assert sorted(s for host_seqs in seqs for s in host_seqs) == list(range(1, 129))
    assert ledger.commits < 128  # commits are shared: fewer than the events
    for h in range(32):
        assert [e.payload["i"] for e in ledger.events(ci=f"h{h}")] == [0, 1, 2, 3]
    assert ledger.verify().ok


def test_hurry_commits_the_queued_steps_without_their_linger(
    ledger: CountingLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker about to report its host (`opskit.distributed.hostjob`)
    hurries its queued steps: they are committed now, together, not after
    the linger (made long here, so that only `hurry` can explain a quick
    commit)."""
    from opskit.ledger import groupcommit

    monkeypatch.setattr(groupcommit, "LINGER_SECONDS", 30.0)
    writer = GroupWriter(ledger)
    try:
        queued = [writer.submit("host.verified", actor="alice", payload={"n": n}) for n in range(3)]
        started = time.monotonic()
        writer.hurry()
        assert [result().seq for result in queued] == [1, 2, 3]
        assert time.monotonic() - started < 10
    finally:
        writer.close()
    assert ledger.commits == 1
    assert ledger.verify().ok


def test_an_awaited_event_does_not_wait_for_other_hosts_steps(
    ledger: CountingLedger, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host waiting for its backup commits it without the steps other
    hosts queued (they keep lingering: made long here), but with its own
    earlier steps, which stay before it in the ledger."""
    from opskit.ledger import groupcommit

    monkeypatch.setattr(groupcommit, "LINGER_SECONDS", 30.0)
    writer = GroupWriter(ledger)
    try:
        others = [
            writer.submit("host.verified", actor="alice", change_id="CHG-1", ci="h1", payload={})
            for _ in range(3)
        ]
        own = writer.submit("host.applied", actor="alice", change_id="CHG-1", ci="h2", payload={})
        backup = writer.append("host.backup", actor="alice", change_id="CHG-1", ci="h2")
        assert (own().seq, backup.seq) == (1, 2)
        assert ledger.commits == 1  # the other host's steps are not in it
        # A change's own event (no CI) keeps everything queued before it in order.
        change = writer.append("change.halted", actor="alice", change_id="CHG-1")
        assert [result().seq for result in others] == [3, 4, 5] and change.seq == 6
    finally:
        writer.close()
    assert ledger.commits == 2
    assert ledger.verify().ok
