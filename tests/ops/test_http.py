"""HTTP endpoints against the running service (simulator + real Redis)."""

import asyncio
import json

from market_data import __version__
from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.ops.readiness import check_readiness
from market_data.sim.exchange import SimConfig
from market_data.wire.payloads import orderbook_payload
from tests.ops.ops_harness import get, running_app, wait_for_answer
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def test_ready_follows_redis_down_and_back(redis_server: EmbeddedRedis) -> None:
    async with running_app(redis_server.url, SYMBOLS) as run:
        health = await get(run.base_url, "/health")
        assert health.status == 200
        expected = {"status": "healthy", "service": "market-data", "version": __version__}
        assert health.body == expected

        ready = await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 200)
        assert ready.body["status"] == "ready" and ready.body["reasons"] == []
        assert ready.body["checks"]["feeds"]["up"] == 2
        assert {b["state"] for b in ready.body["checks"]["books"].values()} == {"live"}

        await asyncio.to_thread(redis_server.kill)
        down = await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 503)
        assert down.body["status"] == "not_ready"
        redis_reasons = [r for r in down.body["reasons"] if r.startswith("redis: ")]
        assert len(redis_reasons) == 1, down.body
        assert down.body["checks"]["redis"]["ok"] is False
        assert (await get(run.base_url, "/health")).status == 200  # liveness ignores Redis

        await asyncio.to_thread(redis_server.restart)
        back = await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 200)
        assert back.body["reasons"] == []


async def test_ready_names_each_symbol_while_syncing_and_when_stale(
    redis_server: EmbeddedRedis,
) -> None:
    slow_snapshots = SimConfig(list(SYMBOLS), diff_rate_hz=40, trade_rate_hz=5, rest_delay_s=1.5)
    async with running_app(
        redis_server.url, SYMBOLS, sim_config=slow_snapshots, ready_max_book_age_s=0.5
    ) as run:
        service = run.app.service
        await wait_for(
            lambda: all(s.state is BookState.SYNCING for s in service.symbols.values()),
            what="books syncing",
        )
        syncing = await get(run.base_url, "/ready")
        assert syncing.status == 503
        assert "BTCUSDT: syncing" in syncing.body["reasons"]
        assert "ETHUSDT: syncing" in syncing.body["reasons"]
        assert not any(r.startswith("redis") for r in syncing.body["reasons"])

        await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 200)
        # ETHUSDT alone stops changing while its connection delivers BTCUSDT: quiet, ready.
        run.sim.pause(1.5, "ETHUSDT")
        quiet = await wait_for_answer(
            run.base_url, "/ready", lambda a: "ETHUSDT" in a.body["checks"]["quiet"]
        )
        assert quiet.status == 200 and quiet.body["reasons"] == []
        # The whole connection goes silent: that is the stream, not the market: stale.
        run.sim.pause(1.5)
        stale = await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 503)
        assert sorted(r.split(" (")[0] for r in stale.body["reasons"]) == [
            "BTCUSDT: stale",
            "ETHUSDT: stale",
        ]
        assert "connection depth-1 silent" in stale.body["reasons"][0]
        await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 200)


async def test_ready_is_503_during_shutdown_while_publications_flush(
    redis_server: EmbeddedRedis,
) -> None:
    async with running_app(redis_server.url, SYMBOLS) as run:
        await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 200)
        # With Redis gone, pending publications hold the shutdown for the flush
        # timeout, long enough to ask /ready while the service is stopping.
        await asyncio.to_thread(redis_server.kill)
        await wait_for(lambda: run.app.redis.queue_depth > 0, what="pending publications")
        run.shutdown.set()
        readiness = await check_readiness(run.app)
        assert readiness.reasons[0] == "shutting down"
        answer = await get(run.base_url, "/ready")
        assert answer.status == 503 and answer.body["reasons"][0] == "shutting down"
        assert not run.task.done()


async def test_book_and_stats_views_404_and_cors(redis_server: EmbeddedRedis) -> None:
    async with running_app(redis_server.url, SYMBOLS) as run:
        service = run.app.service
        await wait_for(lambda: service.symbols["BTCUSDT"].state is BookState.LIVE, what="live")
        await wait_for(lambda: service.symbols["BTCUSDT"].trades >= 3, what="trades")
        run.sim.pause(5.0)  # freeze the market so the view can be compared with the book
        await asyncio.sleep(0.2)

        book = await get(run.base_url, "/book/btcusdt?depth=5")
        assert book.status == 200
        assert book.headers["Access-Control-Allow-Origin"] == "*"
        state = service.symbols["BTCUSDT"]
        bids, asks = state.top(5)
        assert book.body["symbol"] == "BTCUSDT" and book.body["state"] == "live"
        assert book.body["initialized"] is True
        assert book.body["last_update_id"] == state.last_update_id
        # The same spelling as the keys of the Redis payload of the same levels.
        published = json.loads(
            orderbook_payload(
                "BTCUSDT", bids, asks, last_update_id=0, event_time_ms=0, now_ms=0,
                state=BookState.LIVE,
            )
        )  # fmt: skip
        assert book.body["bids"] == [[p, q] for p, q in published["bids"].items()]
        assert book.body["asks"] == [[p, q] for p, q in published["asks"].items()]
        assert len(book.body["bids"]) == 5 and book.body["bids"][0][0] < book.body["asks"][0][0]
        assert 0 <= book.body["age_s"] < 5

        default_depth = await get(run.base_url, "/book/BTCUSDT")
        assert len(default_depth.body["bids"]) == run.app.config.order_book_depth
        bad_depth = await get(run.base_url, "/book/BTCUSDT?depth=zero")
        assert bad_depth.status == 400 and "depth" in bad_depth.body["error"]

        stats = await get(run.base_url, "/stats/BTCUSDT")
        assert stats.status == 200
        assert stats.body["trades_received"] == state.trades
        snapshot = state.stats.snapshot(stats.body["updated_at"])
        # Raw trades, as the exchange counts them: an aggTrade covers l - f + 1.
        assert stats.body["trade_count_24h"] == snapshot.trade_count >= state.trades
        assert stats.body["last_price"] == snapshot.last_price
        # Sums in the exchange's own decimals (BTCUSDT: step 0.001), no float residue.
        assert stats.body["volume_24h"] == round(snapshot.volume, 3)
        assert stats.body["window_complete"] is True  # filled from the simulator's klines
        assert stats.body["high_24h"] >= stats.body["low_24h"] > 0

        for path in ("/book/DOGEUSDT", "/stats/DOGEUSDT"):
            missing = await get(run.base_url, path)
            assert missing.status == 404
            assert missing.body["error"].startswith("unknown symbol 'DOGEUSDT'")
            assert missing.body["symbols"] == list(SYMBOLS)
            assert missing.headers["Access-Control-Allow-Origin"] == "*"
        no_route = await get(run.base_url, "/nowhere")
        assert no_route.status == 404
        assert no_route.headers["Access-Control-Allow-Origin"] == "*"


async def test_cors_header_follows_the_config(redis_server: EmbeddedRedis) -> None:
    async with running_app(redis_server.url, ("BTCUSDT",), cors_allow_origin="") as run:
        answer = await get(run.base_url, "/health")
        assert answer.status == 200 and "Access-Control-Allow-Origin" not in answer.headers
        missing = await get(run.base_url, "/book/XRPUSDT")
        assert missing.status == 404 and "Access-Control-Allow-Origin" not in missing.headers
    origin = "https://dash.example.com"
    async with running_app(redis_server.url, ("BTCUSDT",), cors_allow_origin=origin) as run:
        answer = await get(run.base_url, "/metrics")
        assert answer.headers["Access-Control-Allow-Origin"] == origin
