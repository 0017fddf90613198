"""End to end on a real Redis Cluster: simulator -> service -> 3-shard Valkey -> readers.

A primary is killed mid-stream: its replica is promoted, publishing resumes,
the books stay equal to the exchange and no trade is lost or published twice.
"""

import asyncio
import json
from typing import Any

from market_data.client.redis import OrderBookMessage, RedisSubscriber, TradeGap, TradeMessage
from market_data.core.state import BookState
from market_data.embedded_cluster import EmbeddedCluster
from market_data.outputs.redis_cluster import RedisClusterSink
from tests.integration.service_harness import book_matches_truth, running_service
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


async def test_service_on_a_cluster_survives_a_primary_failover(
    redis_cluster: EmbeddedCluster,
) -> None:
    url = redis_cluster.url
    typed: list[object] = []

    async def read_typed(stop: asyncio.Event) -> None:
        async with RedisSubscriber(url, SYMBOLS) as feed:
            async for message in feed.until(stop):
                typed.append(message)

    stop = asyncio.Event()
    async with running_service(url, SYMBOLS, ha_group="cluster-pair") as (app, sim, _):
        reader = asyncio.create_task(read_typed(stop))
        assert isinstance(app.redis, RedisClusterSink)
        service = app.service
        await wait_for(lambda: all(len(live_books(typed, s)) >= 10 for s in SYMBOLS), what="books")
        assert app.redis.sharded is True
        victim = redis_cluster.primary_of("trades:BTCUSDT")
        before = {s: len(live_books(typed, s)) for s in SYMBOLS}
        victim.kill()
        await wait_for(lambda: app.redis.stats.outages >= 1, what="the outage is seen")
        redis_cluster.wait_until_ok()  # the replica was promoted
        await wait_for(
            lambda: all(len(live_books(typed, s)) > before[s] + 10 for s in SYMBOLS),
            within=20,
            what="publishing resumes on every shard, and the reader follows",
        )
        assert all(service.symbols[s].state is BookState.LIVE for s in SYMBOLS)
        assert service.lease is not None and service.lease.active  # the lease lives on too
        stop.set()
        await asyncio.wait_for(reader, 10)
        client = service.lease.client
        for symbol in SYMBOLS:  # the stream has every trade, once and in order
            entries = await client.xrange(f"trades:{symbol}")
            streamed = [json.loads(fields[b"trade"])["trade_id"] for _, fields in entries]
            assert streamed == list(range(streamed[0], streamed[-1] + 1)), symbol
    for symbol in SYMBOLS:
        books = live_books(typed, symbol)
        problems = [p for b in books if (p := book_matches_truth(sim, b))]
        assert not problems, problems[:3]
        ids = [m.trade_id for m in typed if isinstance(m, TradeMessage) and m.symbol == symbol]
        assert ids and ids == sorted(set(ids)), f"{symbol}: trades out of order or twice"
    # The reader was cut off while the shard failed over: it may have missed trades,
    # and then says so with a gap (the stream above has them all).
    assert all(m.last_missing >= m.first_missing for m in typed if isinstance(m, TradeGap))


def live_books(typed: list[object], symbol: str) -> list[dict[str, Any]]:
    """The live books the reader got, as the dicts ``book_matches_truth`` reads."""
    return [
        {"symbol": m.symbol, "last_update_id": m.last_update_id, "bids": m.bids, "asks": m.asks}
        for m in typed
        if isinstance(m, OrderBookMessage) and m.symbol == symbol and m.initialized
    ]
