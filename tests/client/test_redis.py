"""The consumer library against a real redis-server: typed messages, trade order, reconnects."""

import asyncio

import msgspec
import pytest
import redis.asyncio as aioredis

from market_data.client.redis import (
    HEARTBEAT_CHANNEL,
    ConnectionChange,
    Message,
    PublisherStatus,
    RedisSubscriber,
    TradeGap,
    consume,
)
from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.wire.messages import OrderBookMessage, TradeMessage
from market_data.wire.payloads import orderbook_payload, trade_payload


def _trade(trade_id: int) -> bytes:
    return trade_payload(
        "BTCUSDT", trade_id=trade_id, price=100.0, quantity=1.0, timestamp_ms=1,
        is_buyer_maker=False,
    )  # fmt: skip


def _book(state: BookState, levels: bool) -> bytes:
    return orderbook_payload(
        "BTCUSDT",
        [(100.0, 1.0)] if levels else [],
        [(101.0, 1.0)] if levels else [],
        last_update_id=5 if levels else 0,
        event_time_ms=1,
        now_ms=2,
        state=state,
    )


async def _subscribed(client: aioredis.Redis, channel: str) -> None:
    async with asyncio.timeout(5):
        while True:
            [(_, subscribers)] = await client.pubsub_numsub(channel)
            if subscribers >= 1:
                return
            await asyncio.sleep(0.02)


async def _take(feed: RedisSubscriber, count: int) -> list[Message]:
    got: list[Message] = []
    async with asyncio.timeout(5):
        async for message in feed:
            got.append(message)
            if len(got) == count:
                return got
    return got


def test_trades_are_kept_in_order_and_gaps_reported() -> None:
    feed = RedisSubscriber("redis://127.0.0.1:1/0", ["btcusdt"])
    out = [m for i in (1, 2, 2, 1, 5, 6) for m in feed.decode("trades:BTCUSDT", _trade(i))]
    assert [m.trade_id if isinstance(m, TradeMessage) else m for m in out] == [
        1,
        2,
        TradeGap("BTCUSDT", 3, 4),
        5,
        6,
    ]
    assert feed.duplicate_trades == 2


def test_a_malformed_message_is_counted_and_skipped() -> None:
    feed = RedisSubscriber("redis://127.0.0.1:1/0", ["BTCUSDT"])
    assert feed.decode("orderbook:BTCUSDT", b'{"bids": 5}') == []
    assert feed.malformed == 1


def test_no_symbol_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one symbol"):
        RedisSubscriber("redis://127.0.0.1:1/0", [])


async def test_typed_messages_from_a_real_redis(redis_server: EmbeddedRedis) -> None:
    client = aioredis.Redis.from_url(redis_server.url)
    try:
        async with RedisSubscriber(
            redis_server.url, ["BTCUSDT"], connection_events=False, publisher_events=False
        ) as feed:
            await _subscribed(client, "trades:BTCUSDT")
            await client.publish("orderbook:BTCUSDT", _book(BookState.SYNCING, levels=False))
            await client.publish("orderbook:BTCUSDT", _book(BookState.LIVE, levels=True))
            await client.publish("trades:BTCUSDT", _trade(10))
            await client.publish("trades:BTCUSDT", _trade(12))
            got = await _take(feed, 5)
    finally:
        await client.aclose()
    syncing, live, first, gap, second = got
    assert isinstance(syncing, OrderBookMessage) and not syncing.trusted and not syncing.bids
    assert isinstance(live, OrderBookMessage) and live.trusted and live.bids == {"100.0": 1.0}
    assert isinstance(first, TradeMessage) and first.trade_id == 10
    assert gap == TradeGap("BTCUSDT", 11, 11)
    assert isinstance(second, TradeMessage) and second.trade_id == 12


async def test_a_symbol_moved_to_another_group_or_a_group_counting_anew_is_followed() -> None:
    """One more symbol (or another --workers count) moves ETHUSDT from group g-0, at
    epoch 5, to g-1, at epoch 2; later g-1 counts from 1 again (Redis lost its counter):
    the beats say so, and its messages are current, not 'stale'."""
    feed = RedisSubscriber("redis://127.0.0.1:1/0", ["ETHUSDT"])

    def book(update_id: int, epoch: int) -> bytes:
        return orderbook_payload(
            "ETHUSDT", [], [], last_update_id=update_id, event_time_ms=0, now_ms=1,
            state=BookState.LIVE, epoch=epoch,
        )  # fmt: skip

    def beat(group: str, epoch: int) -> bytes:
        return msgspec.json.encode({"group": group, "epoch": epoch, "served": ["ETHUSDT"]})

    await feed._beat(beat("g-0", 5))
    assert len(feed.decode("orderbook:ETHUSDT", book(1, 5))) == 1
    assert feed.decode("orderbook:ETHUSDT", book(2, 2)) == []  # g-0's past: stale
    await feed._beat(beat("g-1", 2))  # the service restarted with ETHUSDT in g-1
    assert len(feed.decode("orderbook:ETHUSDT", book(3, 2))) == 1
    assert feed.stale_epoch == 1
    # Redis restarted empty while every instance did: the group's epochs count from 1.
    assert len(feed.decode("orderbook:ETHUSDT", book(4, 3))) == 1
    await feed._beat(beat("g-1", 1))
    assert len(feed.decode("orderbook:ETHUSDT", book(5, 1))) == 1
    assert feed.stale_epoch == 1


async def test_by_default_a_consumer_hears_that_nobody_publishes(
    redis_server: EmbeddedRedis,
) -> None:
    """The README's plain subscriber: with no service beating, it is told so at once
    (a consumer that never hears it would keep a dead publisher's last book as live)."""
    seen: list[Message] = []
    stop = asyncio.Event()

    def on_message(message: Message) -> None:
        seen.append(message)
        if len(seen) == 2:
            stop.set()

    await asyncio.wait_for(consume(redis_server.url, ["BTCUSDT"], on_message, stop=stop), 10)
    assert seen[0] == ConnectionChange(True)
    assert isinstance(seen[1], PublisherStatus) and not seen[1].alive


async def test_reconnects_after_a_redis_restart(redis_server: EmbeddedRedis) -> None:
    feed = RedisSubscriber(redis_server.url, ["BTCUSDT"], publisher_events=False)
    async with feed:
        assert await _take(feed, 1) == [ConnectionChange(True)]
        redis_server.kill()
        [lost] = await _take(feed, 1)
        assert isinstance(lost, ConnectionChange) and not lost.connected and lost.reason
        await asyncio.sleep(1.0)  # retries at 0.2, 0.4 s...: the loss is told once
        redis_server.start()
        assert await _take(feed, 1) == [ConnectionChange(True)]
        client = aioredis.Redis.from_url(redis_server.url)
        try:
            await _subscribed(client, "trades:BTCUSDT")
            await client.publish("trades:BTCUSDT", _trade(1))
        finally:
            await client.aclose()
        [trade] = await _take(feed, 1)
        assert isinstance(trade, TradeMessage) and trade.trade_id == 1


async def test_the_callback_form_stops_when_told(redis_server: EmbeddedRedis) -> None:
    stop = asyncio.Event()
    seen: list[Message] = []

    def on_message(message: Message) -> None:
        seen.append(message)
        if isinstance(message, TradeMessage):
            stop.set()

    client = aioredis.Redis.from_url(redis_server.url)
    try:
        task = asyncio.create_task(consume(redis_server.url, ["BTCUSDT"], on_message, stop=stop))
        await _subscribed(client, "trades:BTCUSDT")
        await client.publish("trades:BTCUSDT", _trade(3))
        await asyncio.wait_for(task, 5)
    finally:
        await client.aclose()
    assert [m.trade_id for m in seen if isinstance(m, TradeMessage)] == [3]


def test_messages_of_an_older_publisher_epoch_are_dropped() -> None:
    """After a failover the deposed active's late messages must not count as current."""
    feed = RedisSubscriber("redis://127.0.0.1:1/0", ["BTCUSDT"])
    new = orderbook_payload(
        "BTCUSDT", [], [], last_update_id=2, event_time_ms=0, now_ms=1, state=BookState.LIVE,
        epoch=5,
    )  # fmt: skip
    old = orderbook_payload(
        "BTCUSDT", [], [], last_update_id=1, event_time_ms=0, now_ms=1, state=BookState.LIVE,
        epoch=4,
    )  # fmt: skip
    assert len(feed.decode("orderbook:BTCUSDT", new)) == 1
    assert feed.decode("orderbook:BTCUSDT", old) == []
    assert (feed.epoch, feed.stale_epoch) == (5, 1)


def test_each_workers_epochs_are_its_own() -> None:
    """``run --workers 2`` with ha_group: each worker has its own group and epochs, so
    worker 0's failover (epoch 2) must not make worker 1's symbols (epoch 1) stale."""
    feed = RedisSubscriber("redis://127.0.0.1:1/0", ["BTCUSDT", "ETHUSDT"])

    def book(symbol: str, update_id: int, epoch: int) -> bytes:
        return orderbook_payload(
            symbol, [], [], last_update_id=update_id, event_time_ms=0, now_ms=1,
            state=BookState.LIVE, epoch=epoch,
        )  # fmt: skip

    assert len(feed.decode("orderbook:BTCUSDT", book("BTCUSDT", 1, 2))) == 1
    assert len(feed.decode("orderbook:ETHUSDT", book("ETHUSDT", 1, 1))) == 1
    trade = b'{"symbol":"ETHUSDT","trade_id":7,"price":1.0,"quantity":1.0,"timestamp":1,"epoch":1}'
    assert len(feed.decode("trades:ETHUSDT", trade)) == 1
    assert feed.decode("orderbook:BTCUSDT", book("BTCUSDT", 0, 1)) == []  # BTC's own past
    assert (feed.epoch, feed.stale_epoch) == (2, 1)


async def test_one_silent_worker_is_told_while_the_others_beat(
    redis_server: EmbeddedRedis,
) -> None:
    """``run --workers 2``: both workers beat on the one channel, each naming the symbols
    it serves; when the ETHUSDT worker hangs, the BTCUSDT worker's beats must not
    keep ETHUSDT's last book looking live. A symbol no beat names (not served) has no
    publisher to be silent."""

    def beat(served: list[str]) -> bytes:
        body = {"timestamp": 1, "group": "", "epoch": 0, "symbols": 1, "served": served}
        return msgspec.json.encode(body)

    client = aioredis.Redis.from_url(redis_server.url)
    seen: list[Message] = []
    try:
        async with RedisSubscriber(
            redis_server.url,
            ["BTCUSDT", "ETHUSDT", "XRPUSDT"],
            connection_events=False,
            silent_after_s=0.6,
        ) as feed:
            await _subscribed(client, HEARTBEAT_CHANNEL)
            for _ in range(3):  # both alive
                await client.publish(HEARTBEAT_CHANNEL, beat(["BTCUSDT"]))
                await client.publish(HEARTBEAT_CHANNEL, beat(["ETHUSDT", "SOLUSDT"]))
                await asyncio.sleep(0.2)
            for _ in range(8):  # the ETHUSDT worker hangs
                await client.publish(HEARTBEAT_CHANNEL, beat(["BTCUSDT"]))
                await asyncio.sleep(0.2)
            seen = await _take(feed, 3)
    finally:
        await client.aclose()
    assert seen[0] == PublisherStatus(False, "no heartbeat from the service")  # no key yet
    assert seen[1] == PublisherStatus(True)
    assert isinstance(seen[2], PublisherStatus) and not seen[2].alive
    assert seen[2].silent == ("ETHUSDT",) and "ETHUSDT" in seen[2].reason
