"""`ResultWatcher`: tells the coordinator's waiting threads the moment a
host's result is stored, instead of each thread polling its own result.

Celery's Redis result backend publishes every stored state on the channel
named like the result's key (`celery-task-meta-<task id>`). One thread per
coordinator subscribes to that pattern on its own connection and wakes the
thread waiting for that task when a final state arrives; a waiter registers
the task id *before* the task is sent, so no result can be published unseen.

Notification only speeds the wait up: the waiter still reads the result
from the backend, and still looks on its own at least every few seconds
(`CeleryRunner`), so a message missed while Redis restarts costs at most that
interval. Cost per host: two messages to this thread (started, done), against
20 polls a second per waiting host before.

>>> watcher = ResultWatcher("redis://127.0.0.1:6379/0", b"celery-task-meta-")
>>> done = watcher.register("3f2c...")   # a threading.Event, set when it is ready
>>> watcher.forget("3f2c...")
"""

from __future__ import annotations

import json
import threading
from typing import Any

# Celery's final states (celery.states.READY_STATES), as stored in the result.
READY = frozenset({"SUCCESS", "FAILURE", "REVOKED"})
# How long one read of the subscription blocks (the thread's stop latency).
READ_S = 1.0
RECONNECT_S = 0.5


class ResultWatcher:
    """One subscriber thread for all of a coordinator's pending results."""

    def __init__(self, url: str, prefix: bytes) -> None:
        self.url = url
        self.prefix = prefix
        self._waiters: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()  # subscribed (once)

    def register(self, task_id: str) -> threading.Event:
        """The event set when `task_id` reaches a final state (or when the
        subscription was interrupted: look then)."""
        event = threading.Event()
        with self._lock:
            self._waiters[task_id] = event
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="opskit result watcher", daemon=True
                )
                self._thread.start()
        # The first registration waits (bounded) until the pattern is
        # subscribed, so the result of the task about to be sent is not missed.
        self._ready.wait(2.0)
        return event

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._waiters.pop(task_id, None)

    def _run(self) -> None:
        import redis

        while True:
            try:
                client = redis.Redis.from_url(self.url)
                pubsub = client.pubsub(ignore_subscribe_messages=True)
                pubsub.psubscribe(self.prefix + b"*")
                pubsub.get_message(timeout=READ_S)  # the subscription's confirmation
                if self._ready.is_set():
                    self._wake_all()  # a reconnection: what was published meanwhile is lost
                self._ready.set()
                while True:
                    message = pubsub.get_message(timeout=READ_S)
                    if message is not None:
                        self._deliver(message)
            except Exception:  # redis.ConnectionError and kin: Redis restarting
                self._wake_all()
                threading.Event().wait(RECONNECT_S)

    def _deliver(self, message: dict[str, Any]) -> None:
        channel = message.get("channel") or b""
        task_id = channel[len(self.prefix) :].decode(errors="replace")
        with self._lock:
            event = self._waiters.get(task_id)
        if event is None:
            return
        try:
            status = json.loads(message.get("data") or b"{}").get("status")
        except (ValueError, AttributeError):
            status = None  # not a result we can read: let the waiter look
        if status is None or status in READY:
            event.set()

    def _wake_all(self) -> None:
        with self._lock:
            events = list(self._waiters.values())
        for event in events:
            event.set()
