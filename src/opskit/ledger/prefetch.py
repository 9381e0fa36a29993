"""Chunks of rows fetched by a thread of their own while the caller checks
the previous ones.

`verify` on PostgreSQL reads the chain through a server-side cursor, one
round trip per chunk: fetched and checked in turn, the server and the
hashing loop wait for each other. Here the fetch of chunk k+1 (the wait on
the socket releases the GIL) runs while chunk k is hashed, so the server
and the client work at the same time. Every chunk is still handed over, in
order: nothing is skipped or checked less.

Example:

    >>> with Prefetcher(fetch_chunks(cursor, 5000)) as chunks:
    ...     for chunk in chunks:
    ...         check(chunk)
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_END = object()
# Chunks fetched ahead at most: one being fetched, DEPTH waiting.
DEPTH = 2


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


class Prefetcher(Generic[T]):
    """Iterates `items` (pulled by a thread of its own, DEPTH ahead), in
    order; an error the pull raised is raised here, where it would have
    been. `close` (or leaving the `with` block) stops the thread and waits
    for it, so that the cursor behind `items` is free again."""

    def __init__(self, items: Iterator[T], depth: int = DEPTH) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._pull, args=(items,), daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        """Queues `item` unless told to stop meanwhile."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _pull(self, items: Iterator[T]) -> None:
        try:
            for item in items:
                if not self._put(item):
                    return
        except BaseException as exc:  # raised in the reading thread, by __next__
            self._put(_Failed(exc))
            return
        self._put(_END)

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failed):
            self._done = True
            raise item.error
        return item  # type: ignore[no-any-return]

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            with contextlib.suppress(queue.Empty):  # free a put() that waits for room
                self._queue.get(timeout=0.05)
        self._thread.join()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
