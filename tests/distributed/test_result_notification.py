"""The coordinator's waits on a real Redis (its own server here, since the
test restarts it): a stored result wakes its waiting thread at once
(`ResultWatcher`, no polling), a restart of Redis wakes every waiter so it
looks for itself, and a worker's announcement of its queues answers "is a
worker there?" in one command instead of a 1 s broadcast."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest
import redis

from opskit.distributed.app import make_app
from opskit.distributed.liveness import Announcer, announced, key
from opskit.distributed.results import ResultWatcher
from opskit.distributed.runner import CeleryRunner
from tests.fixtures.redis import RedisServer, find_redis


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    binary = find_redis()
    if binary is None:
        reason = "redis-server not found (run scripts/system-deps.sh)"
        if os.environ.get("CI"):  # CI never silently skips (as the shared fixture)
            pytest.fail(f"Redis is required in CI: {reason}", pytrace=False)
        pytest.skip(reason)
    server = RedisServer(binary).start()
    yield server
    server.stop()


def test_a_stored_result_wakes_its_waiter_and_a_restart_wakes_all(own_redis: RedisServer) -> None:
    backend = make_app(own_redis.url(2)).backend
    watcher = ResultWatcher(own_redis.url(2), backend.get_key_for_task("x")[:-1])
    done, other = watcher.register("task-1"), watcher.register("task-2")
    backend.store_result("task-1", None, "STARTED")  # not final: nobody is woken
    assert not done.wait(0.3)
    sent = time.monotonic()
    backend.store_result("task-1", {"status": "ok"}, "SUCCESS")
    assert done.wait(5)
    assert time.monotonic() - sent < 0.5  # a notification, not a poll
    assert not other.is_set()
    watcher.forget("task-1")

    own_redis.restart()  # what was published meanwhile is lost: every waiter looks
    assert other.wait(10)
    client = redis.Redis.from_url(own_redis.url(2))
    deadline = time.monotonic() + 10
    while client.pubsub_numpat() < 1:  # the watcher subscribes again by itself
        assert time.monotonic() < deadline, "the watcher did not come back"
        time.sleep(0.05)
    other.clear()
    make_app(own_redis.url(2)).backend.store_result("task-2", {"status": "ok"}, "SUCCESS")
    assert other.wait(2)


def test_an_announced_queue_needs_no_broadcast(own_redis: RedisServer) -> None:
    url = own_redis.url(3)
    client = redis.Redis.from_url(url)
    runner = CeleryRunner(url, wait_for_worker_s=0)
    with Announcer(url, "opskit-dc1-1@host", ["dc1"]):
        deadline = time.monotonic() + 5
        while not announced(client, "dc1"):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        started = time.monotonic()
        assert runner._wait_for_worker("dc1")  # no worker would answer a broadcast
        assert time.monotonic() - started < 0.5
        assert not announced(client, "dc2")
    assert not announced(client, "dc1")  # a clean stop withdraws at once
    client.zadd(key("dc3"), {"killed-worker@host": time.time() - 1})  # ran out
    assert not announced(client, "dc3")
    assert not runner._wait_for_worker("dc3")
