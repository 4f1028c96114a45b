"""The broker's transport (``workers.redis_broker``) on the tests' Redis: one client per
connection pool instead of one per command, and nothing published is lost for it."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis
from kombu import Connection, Queue

import celeryconfig
from workers.redis_broker import TRANSPORT


@pytest.fixture
def clients_made(monkeypatch: pytest.MonkeyPatch) -> list[redis.Redis]:
    """Every ``redis.Redis`` built while the test runs (the real class, counted)."""
    made: list[redis.Redis] = []
    build = redis.Redis.__init__

    def counted(self: redis.Redis, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        build(self, *args, **kwargs)

    monkeypatch.setattr(redis.Redis, "__init__", counted)
    return made


def _drain(redis_url: str, queue: Queue, count: int) -> list[int]:
    """``count`` messages off ``queue`` with kombu's own transport, then what is left."""
    with Connection(redis_url) as connection, connection.SimpleQueue(queue) as simple:
        got = []
        for _ in range(count):
            message = simple.get(timeout=5)
            got.append(message.payload["n"])
            message.ack()
        with pytest.raises(simple.Empty):
            simple.get(timeout=0.2)
        return got


def test_publishing_keeps_one_client_per_pool_and_loses_nothing(
    redis_url: str, clients_made: list[redis.Redis]
) -> None:
    queue = Queue(f"broker-probe-{uuid.uuid4().hex}")
    with Connection(redis_url, transport=TRANSPORT) as connection:
        producer = connection.Producer(serializer="json")
        producer.publish({"n": 0}, routing_key=queue.name, declare=[queue])
        before = len(clients_made)
        for n in range(1, 100):
            producer.publish({"n": n}, routing_key=queue.name)
        assert len(clients_made) == before, "a publish built a client of its own"

        # A pool replaced (after a fork, or a lost connection) is not served by the old client.
        producer.channel._disconnect_pools()
        producer.publish({"n": 100}, routing_key=queue.name)
        assert len(clients_made) == before + 1
        assert clients_made[-1].connection_pool is producer.channel.pool

    assert _drain(redis_url, queue, 101) == list(range(101))


def test_celery_uses_it_for_plain_redis_urls_only() -> None:
    if celeryconfig.broker_url.startswith("redis://"):
        assert celeryconfig.broker_transport == TRANSPORT
    else:  # rediss:// and sentinel:// keep kombu's transport, which reads the scheme
        assert not hasattr(celeryconfig, "broker_transport")
