"""A/B feed lines: one line killed again and again, the books never leave live."""

import asyncio
import random

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig
from tests.integration.service_harness import book_matches_truth, running_service
from tests.ops.ops_harness import scrape, value
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def test_a_line_killed_20_times_costs_no_reset_and_no_non_live_book(
    redis_server: EmbeddedRedis,
) -> None:
    sim_config = SimConfig(list(SYMBOLS), diff_rate_hz=40, trade_rate_hz=10, line_jitter_ms=20)
    async with running_service(redis_server.url, SYMBOLS, sim_config=sim_config, feed_lines=2) as (
        app,
        sim,
        received,
    ):
        service = app.service
        states = list(service.symbols.values())
        await wait_for(lambda: all(s.state is BookState.LIVE for s in states), what="live")
        depth_lines = [c for c in service.connections if c.plan.carries_depth]
        assert sorted(c.plan.name for c in depth_lines) == ["depth-1/a", "depth-1/b"]
        await wait_for(lambda: all(c.connected for c in depth_lines), what="both lines up")
        first_live = {s: len(received.books[s]) for s in SYMBOLS}
        rng = random.Random(5)
        for _ in range(20):
            public = [cid for cid in sim.connection_ids if sim.connection_route(cid) == "/public"]
            assert public, "no depth line to kill"
            sim.disconnect(rng.choice(public))
            await asyncio.sleep(0.15)
            await wait_for(lambda: all(c.connected for c in depth_lines), what="line back")
            # Let the new line catch up (past the other's jitter) before the next kill: a
            # kill of the other line within that window would lose updates on both lines.
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.3)
        assert [s.sync.resets for s in states] == [0, 0], service.counters.resets
        assert sum(c.disconnects for c in depth_lines) >= 20
        wins = [sum(s.sync.first_arrivals[i] for s in states) for i in (0, 1)]
        assert min(wins) > 0  # both lines won some first arrivals
        metrics = await scrape(f"http://127.0.0.1:{app.http_port}")
        for line, won in zip("ab", wins, strict=True):
            assert value(metrics, "feed_line_first_arrivals_total", line=line) >= won
            assert value(metrics, "feed_line_duplicates_total", line=line) > 0
        lags = [value(metrics, "feed_line_lag_seconds", line=line) for line in "ab"]
        assert min(lags) == 0.0 and 0.0 <= max(lags) < 0.1  # relative to the faster line
    for symbol in SYMBOLS:
        after = received.books[symbol][first_live[symbol] :]
        while after and after[-1]["state"] != "live":  # the shutdown retires the books
            after.pop()
        assert len(after) > 50 and all(b["state"] == "live" for b in after)
        problems = [p for b in after if (p := book_matches_truth(sim, b))]
        assert not problems, problems[:2]
        ids = [t["trade_id"] for t in received.trades[symbol]]
        assert ids == sorted(set(ids))  # each trade once, in order, across both lines
