"""Connection reuse within a run, with a bound on open sessions.

    pool = ConnectionPool(max_sessions=50)
    with pool.session(ci, "netmiko") as conn:      # opens, or reuses an idle one
        conn.get_config()
    ...
    pool.close_all()                               # at the end of the run

One connector instance per (CI, connector name) is kept open between uses
and handed to one user at a time. At most `max_sessions` connectors are open
(or opening) at once: when the bound is reached, the least recently used idle
session is closed to make room, otherwise the caller waits. A session that
failed with a connection-level error (unreachable, timeout, authentication,
or an unexpected exception: `opskit.connectors.base.breaks_session`) is
closed rather than reused. Thread-safe: the
change engine drives the pool from a thread pool.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opskit.connectors import get_connector
from opskit.connectors.base import Connector, breaks_session
from opskit.errors import ConnectorError, UsageError

if TYPE_CHECKING:
    from opskit.inventory.model import CI

Key = tuple[str, str]
# Sessions closed in parallel by close_all.
CLOSE_THREADS = 32


@dataclass
class PoolStats:
    """What a pool did so far (`ConnectionPool.stats`), e.g. after 200 hosts
    with two steps each: `PoolStats(opened=200, reused=200, evicted=0,
    discarded=3, peak_open=50)`.
    """

    opened: int = 0  # connectors opened
    reused: int = 0  # checkouts served by an already open connector
    evicted: int = 0  # idle sessions closed to make room
    discarded: int = 0  # sessions closed after a connection-level error
    peak_open: int = 0  # most sessions open (or opening) at once


class ConnectionPool:
    """Open connectors kept for reuse, at most `max_sessions` at once (see the
    module). `session(ci, name)` hands out one connector per (CI, connector
    name) to one user at a time; `close_all()` ends the run. A `max_sessions`
    below 1 is a `UsageError`.
    """

    def __init__(self, max_sessions: int = 50) -> None:
        if max_sessions < 1:
            raise UsageError(f"max_sessions must be at least 1, not {max_sessions}")
        self.max_sessions = max_sessions
        self.stats = PoolStats()
        self._cond = threading.Condition()
        self._idle: OrderedDict[Key, Connector] = OrderedDict()  # least recently used first
        self._busy: dict[Key, Connector] = {}
        self._opening: set[Key] = set()
        self._closing = 0  # evicted sessions still closing: they hold their slot
        self._closed = False

    # -- public -------------------------------------------------------------
    @contextmanager
    def session(
        self, ci: CI, connector: str = "netmiko", *, options: Mapping[str, Any] | None = None
    ) -> Iterator[Connector]:
        """An open connector for `ci`; `options` apply when it is first opened."""
        key = (ci.name, connector)
        conn = self._checkout(key, ci, connector, options)
        try:
            yield conn
        except BaseException as exc:
            self._checkin(key, conn, broken=breaks_session(exc))
            raise
        else:
            self._checkin(key, conn, broken=not conn.is_open)

    def close_all(self) -> None:
        """Closes every idle session, at once (a close is a device round trip);
        busy ones close when they are handed back."""
        with self._cond:
            self._closed = True
            idle = list(self._idle.values())
            self._idle.clear()
            self._closing += len(idle)
        if len(idle) <= 1:
            for conn in idle:
                self._close(conn)
            return
        with ThreadPoolExecutor(
            max_workers=min(len(idle), CLOSE_THREADS), thread_name_prefix="pool-close"
        ) as closers:
            list(closers.map(self._close, idle))

    def close_idle(self, ci_name: str) -> int:
        """Closes `ci_name`'s idle sessions now, in the calling thread: for a
        caller that is done with the CI, so that the next checkout finds a
        free slot instead of closing an idle session before it can open its
        own. Busy sessions are left alone. Returns how many were closed."""
        with self._cond:
            keys = [key for key in self._idle if key[0] == ci_name]
            idle = [self._idle.pop(key) for key in keys]
            self._closing += len(idle)
        for conn in idle:
            self._close(conn)
        return len(idle)

    @property
    def open_sessions(self) -> int:
        with self._cond:
            return self._used()

    def __enter__(self) -> ConnectionPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close_all()

    # -- internals ----------------------------------------------------------
    def _used(self) -> int:
        return len(self._idle) + len(self._busy) + len(self._opening) + self._closing

    def _checkout(
        self, key: Key, ci: CI, connector: str, options: Mapping[str, Any] | None
    ) -> Connector:
        connector_class = get_connector(connector)  # an unknown name fails before waiting
        while True:
            evicted: Connector | None = None
            with self._cond:
                while True:
                    if self._closed:
                        raise ConnectorError("the connection pool is closed")
                    if key in self._idle:
                        conn = self._idle.pop(key)
                        self._busy[key] = conn
                        self.stats.reused += 1
                        return conn
                    if key in self._busy or key in self._opening:
                        self._cond.wait()  # one session per (CI, connector): wait for it
                        continue
                    if self._used() < self.max_sessions:
                        self._opening.add(key)
                        self.stats.peak_open = max(self.stats.peak_open, self._used())
                        break
                    if self._idle:
                        # Full: close the least recently used idle session, then retry.
                        _, evicted = self._idle.popitem(last=False)
                        self._closing += 1
                        self.stats.evicted += 1
                        break
                    self._cond.wait()
            if evicted is None:
                break
            self._close(evicted)
        try:
            conn = connector_class(ci, options=options)
            conn.open()
        except BaseException:
            with self._cond:
                self._opening.discard(key)
                self._cond.notify_all()
            raise
        with self._cond:
            self._opening.discard(key)
            self._busy[key] = conn
            self.stats.opened += 1
            self._cond.notify_all()
        return conn

    def _checkin(self, key: Key, conn: Connector, *, broken: bool) -> None:
        with self._cond:
            self._busy.pop(key, None)
            close = broken or self._closed
            if close:
                self._closing += 1
                if broken:
                    self.stats.discarded += 1
            else:
                self._idle[key] = conn
                self._idle.move_to_end(key)
            self._cond.notify_all()
        if close:
            self._close(conn)

    def _close(self, conn: Connector) -> None:
        try:
            with suppress(Exception):  # closing a dead session is best effort
                conn.close()
        finally:
            with self._cond:
                self._closing -= 1
                self._cond.notify_all()
