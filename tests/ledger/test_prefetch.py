"""`opskit.ledger.prefetch.Prefetcher`, which verify uses on PostgreSQL to
fetch the next chunk of the chain while it hashes the one before: every item
in order, the fetch's error raised where the reader would have met it, and
no thread left behind when the reader stops early (the tamper tests in
test_ledger_tamper.py run it on a real server, breaks across chunks
included)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from opskit.ledger.prefetch import DEPTH, Prefetcher


def test_every_item_in_order() -> None:
    with Prefetcher(iter([[n] for n in range(100)])) as chunks:
        assert [chunk[0] for chunk in chunks] == list(range(100))
        assert next(chunks, None) is None


def test_the_fetch_error_is_raised_after_the_items_before_it() -> None:
    def fetch() -> Iterator[int]:
        yield 1
        yield 2
        raise ConnectionError("server closed the connection")

    with Prefetcher(fetch()) as items:
        assert next(items) == 1 and next(items) == 2
        with pytest.raises(ConnectionError, match="server closed"):
            next(items)
        assert next(items, None) is None


def test_stopping_early_stops_the_fetch_and_frees_it() -> None:
    pulled: list[int] = []
    active = threading.Event()

    def fetch() -> Iterator[int]:
        for n in range(1_000):
            active.set()
            pulled.append(n)
            yield n

    prefetcher = Prefetcher(fetch())
    assert next(prefetcher) == 0
    active.wait(5)
    time.sleep(0.1)  # the thread fills the queue and waits for room
    assert len(pulled) <= DEPTH + 2  # fetched ahead, not to the end
    prefetcher.close()
    assert not prefetcher._thread.is_alive()
    count = len(pulled)
    time.sleep(0.1)
    assert len(pulled) == count  # nothing fetched after close
