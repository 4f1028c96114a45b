"""Celery's Redis broker (kombu's transport), with one Redis client per connection pool.

kombu's Redis channel wraps its connection pool in a new ``redis.Redis`` for every command
it sends: every task message pushed, every task event published (``conn_or_acquire``).
redis-py 8 spends about 220 µs building one on this project's 2-core machine (it copies its
table of response callbacks), half of what the ``LPUSH`` itself costs, and a worker
publishes a message and three or four events a step. The client is safe to share between
threads (each command takes a connection from the pool for its duration), so the channel
here keeps one per pool; a pool replaced after a fork or a lost connection gets its own.

``celeryconfig`` selects it for ``redis://`` URLs only: ``rediss://`` (TLS) and Sentinel
keep kombu's own transport, which reads its options from the scheme.
"""

from __future__ import annotations

from typing import Any

from kombu.transport import redis as kombu_redis

#: For ``broker_transport``: kombu resolves ``module:Class``.
TRANSPORT = "workers.redis_broker:Transport"


class Channel(kombu_redis.Channel):
    _shared: tuple[Any, Any] | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:  # the consumer's own client (BRPOP), kept by kombu already
            return super()._create_client(asynchronous=True)
        pool = self.pool
        shared = self._shared
        if shared is None or shared[0] is not pool:
            shared = self._shared = (pool, super()._create_client())
        return shared[1]


class Transport(kombu_redis.Transport):
    Channel = Channel
