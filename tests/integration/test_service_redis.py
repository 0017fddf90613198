"""End to end: simulator -> service -> real Redis -> subscriber."""

import asyncio

import redis.asyncio as aioredis

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.faults import MalformedKind
from tests.integration.service_harness import book_matches_truth, running_service
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT", "SOLUSDT")


async def test_published_books_equal_the_exchange_and_stats_are_real(
    redis_server: EmbeddedRedis,
) -> None:
    async with running_service(redis_server.url, SYMBOLS) as (app, sim, received):
        await wait_for(
            lambda: all(len(received.live_books(s)) >= 20 for s in SYMBOLS), what="live books"
        )
        await wait_for(lambda: all(len(received.trades[s]) >= 5 for s in SYMBOLS), what="trades")
        client = aioredis.from_url(redis_server.url)
        try:
            for symbol in SYMBOLS:
                ttl = await client.ttl(f"market_data:{symbol}")
                assert 0 < ttl <= 300
                stored = await client.get(f"market_data:{symbol}")
                assert stored is not None
        finally:
            await client.aclose()
    for symbol in SYMBOLS:
        books = received.live_books(symbol)
        problems = [p for b in books if (p := book_matches_truth(sim, b))]
        assert not problems, problems[:3]
        assert all(len(b["bids"]) == 20 and len(b["asks"]) == 20 for b in books)
        assert all(b["event_time"] > 0 for b in books)  # the first live one included
        ids = [b["last_update_id"] for b in books]
        assert ids == sorted(ids)  # never an older book after a newer one
        trade_ids = [t["trade_id"] for t in received.trades[symbol]]
        assert trade_ids == sorted(trade_ids) and len(set(trade_ids)) == len(trade_ids)
        # The very last one is published at shutdown, when the book is no longer live.
        assert received.market[symbol][-1]["bid_price"] is None
        market = [m for m in received.market[symbol] if m["bid_price"] is not None][-1]
        assert market["volume_24h"] > 0 and market["high_24h"] >= market["low_24h"] > 0
        assert market["last_price"] == received.trades[symbol][-1]["price"]
        assert market["bid_price"] < market["ask_price"]
    # The first publication of each symbol says the book is not live yet.
    assert received.books["BTCUSDT"][0]["initialized"] is False
    assert received.books["BTCUSDT"][0]["bids"] == {}


async def test_gap_and_disconnect_resync_and_books_stay_correct(
    redis_server: EmbeddedRedis,
) -> None:
    async with running_service(redis_server.url, ("BTCUSDT", "ETHUSDT")) as (app, sim, received):
        service = app.service
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="live")
        sim.drop_next_diff("BTCUSDT")
        await wait_for(lambda: service.counters.resets["gap"] >= 1, what="gap detected")
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="resync")
        assert service.symbols["BTCUSDT"].sync.gaps == 1
        assert service.symbols["ETHUSDT"].sync.gaps == 0
        before = len(received.live_books("ETHUSDT"))
        assert sim.disconnect() > 0
        await wait_for(lambda: service.counters.resets["reconnect"] >= 2, what="reconnect reset")
        await wait_for(
            lambda: all(s.state is BookState.LIVE for s in service.symbols.values()),
            what="live after reconnect",
        )
        await wait_for(lambda: len(received.live_books("ETHUSDT")) > before + 10, what="more books")
    states = [b["state"] for b in received.books["BTCUSDT"]]
    first_live = states.index("live")
    assert "waiting" in states[first_live:] or "syncing" in states[first_live:]
    for symbol in ("BTCUSDT", "ETHUSDT"):
        problems = [p for b in received.live_books(symbol) if (p := book_matches_truth(sim, b))]
        assert not problems, problems[:3]


async def test_malformed_frames_are_counted_and_skipped(redis_server: EmbeddedRedis) -> None:
    async with running_service(redis_server.url, ("BTCUSDT",)) as (app, sim, received):
        service = app.service
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="live")
        sent = 0
        for kind in MalformedKind:
            sent += sim.send_malformed(kind, "BTCUSDT")
        await wait_for(lambda: service.counters.malformed >= sent, what="malformed counted")
        count = len(received.live_books("BTCUSDT"))
        await wait_for(lambda: len(received.live_books("BTCUSDT")) > count + 5, what="books flow")
        assert service.symbols["BTCUSDT"].state is BookState.LIVE
        assert service.counters.resets["gap"] == 0
    assert sent >= len(MalformedKind)
    problems = [p for b in received.live_books("BTCUSDT") if (p := book_matches_truth(sim, b))]
    assert not problems


async def test_redis_restart_mid_stream_loses_no_correctness(redis_server: EmbeddedRedis) -> None:
    async with running_service(redis_server.url, ("BTCUSDT",)) as (app, sim, received):
        service = app.service
        await wait_for(lambda: len(received.live_books("BTCUSDT")) > 5, what="books")
        redis_server.kill()
        updates = service.symbols["BTCUSDT"].book_updates
        await wait_for(
            lambda: service.symbols["BTCUSDT"].book_updates > updates + 20, what="books go on"
        )
        await wait_for(lambda: app.redis.stats.errors > 0 or not app.redis.connected, what="outage")
        assert service.symbols["BTCUSDT"].state is BookState.LIVE
        redis_server.restart()
        # The old subscriber's connection died with the server: start counting anew.
        from tests.integration.service_harness import Received, subscribe

        again = Received()
        ready = asyncio.Event()
        task = asyncio.create_task(subscribe(redis_server.url, again, ready))
        try:
            await asyncio.wait_for(ready.wait(), 5)
            await wait_for(lambda: len(again.live_books("BTCUSDT")) > 5, what="publishing resumes")
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        problems = [p for b in again.live_books("BTCUSDT") if (p := book_matches_truth(sim, b))]
        assert not problems
        assert app.redis.stats.outages >= 1
