"""Record a simulated run with gaps and disconnects; replay it; every published book matches.

Both the recording (``market-data replay``'s reader and sync core) and the
Parquet ``incremental_book_L2`` dataset must rebuild, at each update id the
service published, exactly the book it published.
"""

import asyncio
from pathlib import Path

import pyarrow.parquet as pq

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig
from tests.history.books import at_or_before, parquet_tops, published_tops, replayed_tops
from tests.integration.service_harness import running_service
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def test_recorded_run_replays_to_every_published_book(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    recording, store = tmp_path / "rec", tmp_path / "pq"
    sim_config = SimConfig(symbols=list(SYMBOLS), diff_rate_hz=40, trade_rate_hz=10)
    async with running_service(
        redis_server.url,
        SYMBOLS,
        sim_config=sim_config,
        recording_dir=str(recording),
        parquet_dir=str(store),
        parquet_flush_s=0.5,
        book_refresh_interval_s=0,
    ) as (app, sim, received):
        service = app.service

        def all_live() -> bool:
            return all(s.state is BookState.LIVE for s in service.symbols.values())

        await wait_for(all_live, what="live")
        await asyncio.sleep(0.5)
        sim.drop_next_diff("BTCUSDT", 2)  # a sequence gap: reset, new snapshot
        await wait_for(lambda: sum(service.counters.resets.values()) >= 1, what="gap reset")
        await wait_for(all_live, what="live after the gap")
        await asyncio.sleep(0.3)
        sim.disconnect()  # every connection: a reconnect and a resync
        await wait_for(lambda: all(c.connects >= 2 for c in service.connections), what="reconnect")
        await wait_for(all_live, what="live after the reconnect")
        await asyncio.sleep(0.5)
        history = app.history
        assert history is not None
    assert history.counters.dropped == 0 and not history.counters.suspended

    depth = service.config.order_book_depth
    replayed = replayed_tops(
        recording,
        depth,
        max_levels=service.config.max_levels_per_side,
        max_buffer=service.config.sync_buffer_max,
    )
    rebuilt = parquet_tops(store, depth)
    for symbol in SYMBOLS:
        published = published_tops(received.books[symbol])
        assert len(published) > 20, symbol
        for u, top in published:
            assert replayed[symbol].get(u) == top, (symbol, u, "replay")
            assert at_or_before(rebuilt[symbol], u) == top, (symbol, u, "parquet")
    assert service.counters.resets["gap"] >= 1 and service.counters.resets["reconnect"] >= 2

    states = [
        row
        for file in sorted((store / "book_state").rglob("*.parquet"))
        for row in pq.read_table(file).to_pylist()
    ]
    assert {row["symbol"] for row in states if row["state"] == "live"} == set(SYMBOLS)
    for row in states:  # the exchange's time (or the receive time), never a monotonic clock's
        assert abs((row["local_timestamp"] - row["timestamp"]).total_seconds()) < 60, row
