"""Which queues have a live worker, without asking every worker.

Each `opskit worker` announces itself in Redis every `BEAT_S` seconds: per
queue it serves, a sorted set `opskit:workers:<queue>` holds its name scored
with the time its announcement runs out (`TTL_S`). The coordinator asks one
command per queue (is any announcement still valid?) instead of a broadcast
to all workers, which always waits its whole reply timeout (1 s) and was paid
by every `opskit change apply`. A worker stopped cleanly withdraws at once;
one killed is forgotten after `TTL_S`, and the coordinator waiting for a host
it started counts that host `unknown` (`CeleryRunner`). No announcement (Redis was just
restarted): the coordinator falls back to the broadcast.

>>> key("dc1")
'opskit:workers:dc1'
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

BEAT_S = 5.0
TTL_S = 15.0


def key(queue: str) -> str:
    return f"opskit:workers:{queue}"


def announced(client: Any, queue: str, worker: str | None = None) -> bool:
    """True when a worker (`worker`, or any) announced `queue` and its
    announcement is valid."""
    if worker is not None:
        score = client.zscore(key(queue), worker)
        return score is not None and score > time.time()
    return bool(client.zrangebyscore(key(queue), time.time(), "+inf", start=0, num=1))


class Announcer:
    """A worker's announcements: a daemon thread beating every `BEAT_S`."""

    def __init__(self, broker: str, name: str, queues: list[str]) -> None:
        import redis

        self.client = redis.Redis.from_url(broker)
        self.name = name
        self.queues = queues
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opskit announcer", daemon=True)

    def __enter__(self) -> Announcer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=BEAT_S)
        with contextlib.suppress(Exception):  # Redis away: the announcement runs out
            for queue in self.queues:
                self.client.zrem(key(queue), self.name)

    def beat(self) -> None:
        now = time.time()
        with self.client.pipeline() as pipe:
            for queue in self.queues:
                pipe.zadd(key(queue), {self.name: now + TTL_S})
                pipe.zremrangebyscore(key(queue), "-inf", now)
            pipe.execute()

    def _run(self) -> None:
        while not self._stop.is_set():
            # Redis restarting: the next beat announces again.
            with contextlib.suppress(Exception):
                self.beat()
            self._stop.wait(BEAT_S)
