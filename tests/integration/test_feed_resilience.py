"""The feed keeps books correct through silence, rotation, pings and a geo-blocked REST."""

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.ops.readiness import check_readiness
from market_data.sim.exchange import SimConfig
from tests.integration.service_harness import book_matches_truth, running_service
from tests.support import wait_for


async def test_silent_stream_is_reconnected_by_the_watchdog(redis_server: EmbeddedRedis) -> None:
    async with running_service(redis_server.url, ("BTCUSDT",), silence_timeout_s=0.5) as (
        app,
        sim,
        received,
    ):
        service = app.service
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="live")
        sim.pause(1.5)
        depth = next(c for c in service.connections if c.plan.carries_depth)
        await wait_for(lambda: depth.connects >= 2, what="watchdog reconnect")
        assert "watchdog" in depth.last_disconnect_reason
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="resync")
    problems = [p for b in received.live_books("BTCUSDT") if (p := book_matches_truth(sim, b))]
    assert not problems


async def test_rotation_is_make_before_break_with_no_gap(redis_server: EmbeddedRedis) -> None:
    # The exchange cuts a connection at its age limit (24 h; here 2.5 s): the rotation
    # (from 1 s) must have replaced it by then.
    sim_config = SimConfig(
        symbols=["BTCUSDT", "ETHUSDT"], diff_rate_hz=40, trade_rate_hz=20, max_connection_age_s=2.5
    )
    async with running_service(
        redis_server.url, ("BTCUSDT", "ETHUSDT"), sim_config=sim_config, connection_max_age_s=1.0
    ) as (app, sim, received):
        service = app.service
        await wait_for(
            lambda: (
                bool(service.connections) and all(c.handovers >= 4 for c in service.connections)
            ),
            within=15,
            what="rotations",
        )
        # Every connection was replaced four times and never dropped: no reset, no snapshot.
        assert all(c.connects == 1 and c.disconnects == 0 for c in service.connections)
        assert all(c.handover_timeouts == 0 for c in service.connections)  # all confirmed
        assert sum(service.counters.resets.values()) == 0
        assert all(s.state is BookState.LIVE for s in service.symbols.values())
        assert sim.counters.age_closes == 0  # no connection lived to be cut
    for symbol in ("BTCUSDT", "ETHUSDT"):
        books = received.books[symbol]
        first_live = next(i for i, b in enumerate(books) if b["initialized"])
        # Live from the first live book to shutdown's last one: never a non-live one between.
        assert all(b["initialized"] for b in books[first_live:-1]), symbol
        problems = [p for b in received.live_books(symbol) if (p := book_matches_truth(sim, b))]
        assert not problems, problems[:2]
        ids = [t["trade_id"] for t in received.trades[symbol]]
        assert ids == list(range(ids[0], ids[0] + len(ids))), symbol  # none lost, none twice


async def test_server_pings_are_answered(redis_server: EmbeddedRedis) -> None:
    sim_config = SimConfig(symbols=["BTCUSDT"], diff_rate_hz=20, ping_interval_s=0.2)
    async with running_service(redis_server.url, ("BTCUSDT",), sim_config=sim_config) as (
        app,
        sim,
        received,
    ):
        service = app.service
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="live")
        await wait_for(lambda: len(received.live_books("BTCUSDT")) > 30, what="1.5 s of books")
        # The simulator drops a client that misses a pong within half an interval.
        assert all(c.connects == 1 and c.connected for c in service.connections)


async def test_geo_blocked_rest_falls_back_to_partial_depth_and_returns(
    redis_server: EmbeddedRedis,
) -> None:
    sim_config = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], diff_rate_hz=20, geo_blocked=True)
    async with running_service(
        redis_server.url, ("BTCUSDT", "ETHUSDT"), sim_config=sim_config, partial_depth_levels=10
    ) as (app, sim, received):
        service = app.service
        await wait_for(lambda: service.partial_mode, what="partial mode")
        await wait_for(
            lambda: all(len(received.live_books(s)) >= 3 for s in ("BTCUSDT", "ETHUSDT")),
            what="partial books",
        )
        assert service.counters.snapshot_failures["geo_blocked"] >= 1
        assert not await service.probe_rest()  # still blocked: stays on partial depth
        partial_books = {s: list(received.live_books(s)) for s in ("BTCUSDT", "ETHUSDT")}
        # The block ends: the next probe finds REST and the books go back to diff depth.
        sim.set_geo_blocked(False)
        assert await service.probe_rest()
        await wait_for(
            lambda: all(s.state is BookState.LIVE for s in service.symbols.values()),
            what="diff books live again",
        )
        await wait_for(
            lambda: all(
                any(b["state"] == "live" for b in received.live_books(s))
                for s in ("BTCUSDT", "ETHUSDT")
            ),
            what="live books published",
        )
    for symbol in ("BTCUSDT", "ETHUSDT"):
        books = partial_books[symbol]
        assert {b["state"] for b in books} == {"partial"}
        assert all(len(b["bids"]) == 10 for b in books)
        problems = [p for b in books if (p := book_matches_truth(sim, b, depth=10))]
        assert not problems, problems[:2]
        live = [b for b in received.live_books(symbol) if b["state"] == "live"]
        problems = [p for b in live if (p := book_matches_truth(sim, b))]
        assert live and not problems, problems[:2]


async def test_a_silent_trade_stream_is_told_by_the_exchanges_ticker(
    redis_server: EmbeddedRedis,
) -> None:
    """Its connection stays busy with tickers, so the watchdog sees nothing wrong; the
    tickers' last trade id moving on while no aggTrade comes does."""
    sim_config = SimConfig(symbols=["BTCUSDT"], diff_rate_hz=20, trade_rate_hz=10)
    async with running_service(
        redis_server.url, ("BTCUSDT",), sim_config=sim_config, trades_silent_after_s=3.0
    ) as (app, sim, received):
        service = app.service
        state = service.symbols["BTCUSDT"]
        await wait_for(lambda: len(received.trades["BTCUSDT"]) > 10, what="trades")
        ready = await check_readiness(app)
        assert not any("trades silent" in reason for reason in ready.reasons)
        sim.mute_trades("BTCUSDT", 20.0)  # tickers every 2 s: told after 3 s of trading on
        await wait_for(lambda: state.trade_watch.silent, within=15, what="silence told")
        ready = await check_readiness(app)
        assert "BTCUSDT: trades silent (the exchange's ticker counts trades)" in ready.reasons
        assert service.counters.trade_silences["BTCUSDT"] == 1
        assert all(c.connects == 1 for c in service.connections)  # no watchdog reconnect
        await wait_for(lambda: not state.trade_watch.silent, within=20, what="trades again")
