"""The Redis fixture starts a real server on loopback, and restarts it."""

from __future__ import annotations

from tests.fixtures.redis import RedisServer


def test_redis_server_answers_and_restarts_empty(redis_server: RedisServer) -> None:
    import redis

    client = redis.Redis.from_url(redis_server.url(15))
    client.set("opskit-probe", "1")
    assert client.get("opskit-probe") == b"1"
    redis_server.restart()
    client = redis.Redis.from_url(redis_server.url(15))
    assert client.get("opskit-probe") is None  # no persistence: a restart loses the queues
