"""One way to get a redis-py client (or the publisher) for a ``redis_url``, cluster or not.

The lease, the trade-stream look-up and the readers use redis-py: a single
server gets ``redis.asyncio.Redis``, a ``redis+cluster://`` URL gets
``redis.asyncio.RedisCluster`` (which routes by slot and follows MOVED/ASK by
itself). The hot path uses :class:`~market_data.outputs.redis.RedisSink` or,
on a cluster, :class:`~market_data.outputs.redis_cluster.RedisClusterSink`.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

from market_data.outputs.redis import RedisSink
from market_data.outputs.redis_cluster import RedisClusterSink
from market_data.outputs.redis_url import is_cluster_url, plain_url

#: What redis-py gives for a URL: the same commands, routed or not.
Client = aioredis.Redis | aioredis.RedisCluster


def redis_client(url: str, **options: Any) -> Client:
    """A redis-py asyncio client for ``url`` (``RedisCluster`` for ``redis+cluster://``)."""
    if is_cluster_url(url):
        return aioredis.RedisCluster.from_url(plain_url(url), **options)
    return aioredis.from_url(url, **options)


def redis_sink(url: str, **options: Any) -> RedisSink:
    """The never-blocking publisher for ``url``: one pipeline, or one per cluster primary."""
    if is_cluster_url(url):
        return RedisClusterSink(url, **options)
    return RedisSink(url, **options)
