"""The process that runs a change (its runner): its heartbeat while it
runs, and how another process tells that it is gone."""

from __future__ import annotations

import os
import socket
import threading
from contextlib import suppress
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from opskit.changes.model import ChangeRequest
from opskit.processes import pid_alive

if TYPE_CHECKING:
    from opskit.changes.changestore import ChangeStore

HEARTBEAT_SECONDS = 2.0


def runner_gone(change: ChangeRequest, *, now: datetime, stale_after: float) -> bool:
    """Whether the process that ran `change` has ended: on this machine by
    its pid, on another by a heartbeat older than `stale_after` seconds."""
    if change.runner_host == socket.gethostname():
        if change.runner_pid == os.getpid():
            return False
        return not pid_alive(change.runner_pid)
    # Another machine: trust only the heartbeat.
    beat = change.heartbeat_at
    return beat is None or now - beat > timedelta(seconds=stale_after)


class Heartbeat:
    """Refreshes the change's heartbeat while the rollout runs."""

    def __init__(self, store: ChangeStore, change_id: str) -> None:
        self.store = store
        self.change_id = change_id
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._beat, name=f"heartbeat-{change_id}", daemon=True
        )

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_SECONDS):
            # A missed beat only makes the change look stale sooner.
            with suppress(Exception):
                self.store.heartbeat(self.change_id)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
