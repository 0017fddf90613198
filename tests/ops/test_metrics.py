"""/metrics moves by exactly what the simulated exchange sent."""

import asyncio

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.service.engine import MarketDataService
from tests.ops.ops_harness import Running, running_app, scrape, value
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def settle(run: Running) -> None:
    """Wait until no frame has arrived for 0.3 s (the simulator is paused)."""
    service = run.app.service
    last, quiet_since = -1, 0.0
    loop = asyncio.get_running_loop()
    while True:
        frames = service.counters.frames
        if frames != last:
            last, quiet_since = frames, loop.time()
        elif loop.time() - quiet_since >= 0.3:
            return
        await asyncio.sleep(0.02)


def depth_events(service: MarketDataService) -> int:
    return service.counters.by_type["depth"]


async def test_counters_move_by_the_simulated_stream(redis_server: EmbeddedRedis) -> None:
    async with running_app(redis_server.url, SYMBOLS) as run:
        service, sim = run.app.service, run.sim
        await wait_for(
            lambda: all(s.state is BookState.LIVE for s in service.symbols.values()), what="live"
        )
        await wait_for(lambda: service.symbols["BTCUSDT"].trades > 0, what="a trade")
        sim.pause(8.0)
        await settle(run)
        before = await scrape(run.base_url)
        # The scrape reads the service's own counters, nothing else.
        assert value(before, "messages_processed_total", type="depth") == depth_events(service)
        assert value(before, "orderbook_updates_total", symbol="BTCUSDT") == (
            service.symbols["BTCUSDT"].book_updates
        )
        assert value(before, "trades_processed_total", symbol="BTCUSDT") == (
            service.symbols["BTCUSDT"].trades
        )
        assert value(before, "processing_latency_microseconds_count") == service.counters.frames
        assert value(before, "orderbook_state", symbol="BTCUSDT", state="live") == 1
        assert value(before, "orderbook_state", symbol="BTCUSDT", state="syncing") == 0
        assert value(before, "websocket_connected", symbol="BTCUSDT") == 1
        assert value(before, "redis_connected") == 1
        assert value(before, "service_ready") == 1

        sent_before, events_before = sim.counters.burst_diffs, depth_events(service)
        sim.burst("BTCUSDT", 50)
        await wait_for(lambda: depth_events(service) == events_before + 50, what="50 diffs")
        await settle(run)
        after = await scrape(run.base_url)
        assert sim.counters.burst_diffs - sent_before == 50

        def delta(name: str, **labels: str) -> float:
            return value(after, name, **labels) - value(before, name, **labels)

        assert delta("orderbook_updates_total", symbol="BTCUSDT") == 50
        assert delta("orderbook_updates_total", symbol="ETHUSDT") == 0
        assert delta("messages_processed_total", type="depth") == 50
        assert delta("processing_latency_microseconds_count") == 50
        assert delta("processing_latency_microseconds_bucket", le="+Inf") == 50
        assert delta("sequence_errors_total", symbol="BTCUSDT") == 0
        assert delta("trades_processed_total", symbol="BTCUSDT") == 0
        assert value(after, "orderbook_last_update_id", symbol="BTCUSDT") == (
            sim.last_sent_update_id("BTCUSDT")
        )
        assert value(after, "redis_publishes_total", kind="book") == (
            run.app.redis.stats.published_books
        )
        assert run.app.shm is not None
        assert value(after, "shm_records_written_total") == run.app.shm.records_written

        # One diff lost on the way: exactly one sequence error and one gap resync.
        dropped_before = sim.counters.dropped_diffs
        sim.drop_next_diff("BTCUSDT")
        sim.burst("BTCUSDT", 3)
        await wait_for(lambda: service.counters.resets["gap"] == 1, what="gap detected")
        await settle(run)
        gapped = await scrape(run.base_url)
        assert sim.counters.dropped_diffs - dropped_before == 1
        assert (
            value(gapped, "sequence_errors_total", symbol="BTCUSDT")
            - value(after, "sequence_errors_total", symbol="BTCUSDT")
            == 1
        )
        assert value(gapped, "sequence_errors_total", symbol="ETHUSDT") == 0
        assert value(gapped, "orderbook_resyncs_total", reason="gap") == 1
        assert value(gapped, "snapshot_requests_total") > value(after, "snapshot_requests_total")


async def test_disconnects_and_connection_gauges(redis_server: EmbeddedRedis) -> None:
    async with running_app(redis_server.url, SYMBOLS) as run:
        service = run.app.service
        await wait_for(
            lambda: all(s.state is BookState.LIVE for s in service.symbols.values()), what="live"
        )
        before = await scrape(run.base_url)
        assert value(before, "websocket_disconnects_total") == 0
        names = [c.plan.name for c in service.connections]
        for name in names:
            assert value(before, "websocket_connection_up", connection=name) == 1
            assert 0 <= value(before, "websocket_last_message_age_seconds", connection=name) < 5
        cut = run.sim.disconnect()
        assert cut == len(names)
        await wait_for(
            lambda: sum(c.disconnects for c in service.connections) == cut, what="disconnects seen"
        )
        after = await scrape(run.base_url)
        assert value(after, "websocket_disconnects_total") == cut
        assert value(after, "orderbook_resyncs_total", reason="reconnect") == len(SYMBOLS)
        await wait_for(lambda: all(c.connected for c in service.connections), what="reconnected")
        back = await scrape(run.base_url)
        for name in names:
            assert value(back, "websocket_connects_total", connection=name) == 2


async def test_each_app_has_its_own_registry(redis_server: EmbeddedRedis) -> None:
    async with (
        running_app(redis_server.url, ("BTCUSDT",)) as first,
        running_app(redis_server.url, ("ETHUSDT",)) as second,
    ):
        assert first.app.metrics_registry is not second.app.metrics_registry
        one, two = await scrape(first.base_url), await scrape(second.base_url)
        assert ("orderbook_updates_total", frozenset({("symbol", "BTCUSDT")})) in one
        assert ("orderbook_updates_total", frozenset({("symbol", "ETHUSDT")})) not in one
        assert ("orderbook_updates_total", frozenset({("symbol", "ETHUSDT")})) in two
