"""The publisher on a real Valkey cluster: 3 primaries, 3 replicas, sharded pub/sub."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPubSub

from market_data.embedded_cluster import EmbeddedCluster
from market_data.outputs.cluster_slots import key_slot
from market_data.outputs.redis_client import redis_client, redis_sink
from market_data.outputs.redis_cluster import RedisClusterSink
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT")


@asynccontextmanager
async def cluster_sink(cluster: EmbeddedCluster) -> AsyncIterator[RedisClusterSink]:
    sink = redis_sink(cluster.url, reconnect_max_s=0.2)
    assert isinstance(sink, RedisClusterSink)
    sink.start()
    try:
        yield sink
    finally:
        await sink.aclose()


@asynccontextmanager
async def cluster_client(cluster: EmbeddedCluster) -> AsyncIterator[aioredis.RedisCluster]:
    client = redis_client(cluster.url)
    assert isinstance(client, aioredis.RedisCluster)
    await client.initialize()  # the slot map, before any SSUBSCRIBE
    try:
        yield client
    finally:
        await client.aclose()


async def stream_ids(client: aioredis.RedisCluster, symbol: str) -> list[int]:
    entries = await client.xrange(f"trades:{symbol}")
    return [json.loads(fields[b"trade"])["id"] for _, fields in entries]


async def test_channels_spread_over_the_shards_and_readers_get_them_sharded(
    redis_cluster: EmbeddedCluster,
) -> None:
    channels = [f"orderbook:{s}" for s in SYMBOLS] + [f"trades:{s}" for s in SYMBOLS]
    owners = {redis_cluster.primary_of(channel).port for channel in channels}
    assert len(owners) == 3  # the names do spread over every shard
    async with cluster_client(redis_cluster) as client, cluster_sink(redis_cluster) as sink:
        pubsub = client.pubsub()
        assert isinstance(pubsub, ClusterPubSub)
        await pubsub.ssubscribe(*channels)
        await wait_for(lambda: sink.connected, what="connected")
        assert sink.sharded is True
        for index, symbol in enumerate(SYMBOLS):
            sink.publish_book(symbol, b'{"book":%d}' % index)
            sink.publish_trade(symbol, b'{"id":%d}' % index)
            sink.publish_market_data(symbol, b'{"md":%d}' % index)
        got: dict[bytes, bytes] = {}
        async with asyncio.timeout(5):
            while len(got) < len(channels):
                message = await pubsub.get_sharded_message(ignore_subscribe_messages=True)
                if message is not None:
                    got[message["channel"]] = message["data"]
        assert got[b"orderbook:SOLUSDT"] == b'{"book":2}'
        assert got[b"trades:DOGEUSDT"] == b'{"id":5}'
        for index, symbol in enumerate(SYMBOLS):  # keys land on their slot's primary
            assert await client.get(f"market_data:{symbol}") == b'{"md":%d}' % index
            assert await stream_ids(client, symbol) == [index]
        assert sink.stats.published_trades == len(SYMBOLS)
        assert sink.stats.unheard_trades == 0 and sink.stats.unheard_books == 0
        assert sink.stats.errors == 0
        assert await sink.ping() is None
        await pubsub.aclose()  # type: ignore[no-untyped-call]


async def test_killing_a_primary_mid_stream_loses_no_trade_and_publishing_resumes(
    redis_cluster: EmbeddedCluster,
) -> None:
    victim = redis_cluster.primary_of("trades:BTCUSDT")
    async with cluster_sink(redis_cluster) as sink:
        await wait_for(lambda: sink.connected, what="connected")
        for trade_id in range(1, 2001):
            for symbol in SYMBOLS:
                sink.publish_trade(symbol, b'{"id":%d}' % trade_id)
                sink.publish_book(symbol, b'{"book":%d}' % trade_id)
            if trade_id == 500:
                victim.kill()
            await asyncio.sleep(0.002)
        await wait_for(lambda: sink.connected and not sink.queue_depth, within=30, what="drained")
        assert sink.stats.outages == 1
        assert victim.port not in {port for _, port in sink.primaries}
    async with cluster_client(redis_cluster) as client:
        for symbol in SYMBOLS:  # every trade once, in order, on every shard
            assert await stream_ids(client, symbol) == list(range(1, 2001)), symbol
        assert sink.stats.dropped_trades == 0


async def test_moved_and_ask_are_followed_while_a_slot_migrates(
    redis_cluster: EmbeddedCluster,
) -> None:
    key = "market_data:BTCUSDT"
    source = redis_cluster.primary_of(key)
    target = next(
        node
        for node in redis_cluster.nodes
        if node is not source and node.port in {redis_cluster.primary_of(c).port for c in
                                                 ("trades:BTCUSDT", "orderbook:ETHUSDT",
                                                  "trades:ETHUSDT", "orderbook:SOLUSDT")}
    )  # fmt: skip
    async with cluster_client(redis_cluster) as client, cluster_sink(redis_cluster) as sink:
        sink.publish_market_data("BTCUSDT", b'{"md":1}')
        await wait_for(lambda: sink.stats.published_market_data == 1, what="first write")
        slot = redis_cluster.begin_migration(key, target)
        assert slot == key_slot(key.encode())
        sink.publish_market_data("BTCUSDT", b'{"md":2}')  # the source answers ASK
        await wait_for(lambda: sink.stats.published_market_data == 2, what="write after ASK")
        asked = sink.stats.redirects
        assert asked >= 1
        redis_cluster.finish_migration(slot, target)
        sink.publish_market_data("BTCUSDT", b'{"md":3}')  # the old owner answers MOVED
        await wait_for(lambda: sink.stats.published_market_data == 3, what="write after MOVED")
        assert sink.stats.redirects > asked
        assert await client.get(key) == b'{"md":3}'
        assert redis_cluster.primary_of(key).port == target.port
        assert sink.stats.errors == 0  # redirects are routing, not failures


async def test_a_slot_moving_to_a_new_empty_node_is_followed_without_an_outage(
    redis_cluster: EmbeddedCluster,
) -> None:
    key = "market_data:ETHUSDT"
    async with cluster_client(redis_cluster) as client, cluster_sink(redis_cluster) as sink:
        sink.publish_market_data("ETHUSDT", b'{"md":1}')
        await wait_for(lambda: sink.stats.published_market_data == 1, what="first write")
        newcomer = redis_cluster.add_primary()  # serves no slot: the sink has no connection
        slot = redis_cluster.begin_migration(key, newcomer)
        sink.publish_market_data("ETHUSDT", b'{"md":2}')  # ASK to the newcomer
        await wait_for(lambda: sink.stats.published_market_data == 2, what="write after ASK")
        redis_cluster.finish_migration(slot, newcomer)
        sink.publish_market_data("ETHUSDT", b'{"md":3}')  # MOVED: the newcomer is a primary
        await wait_for(lambda: sink.stats.published_market_data == 3, what="write after MOVED")
        assert sink.stats.outages == 0 and sink.stats.errors == 0
        assert ("127.0.0.1", newcomer.port) in sink.primaries
        await client.initialize()  # the client's own map, after the move
        assert await client.get(key) == b'{"md":3}'
