"""Periodic re-base on fresh snapshots: books stay live and exact, and are audited."""

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig
from tests.integration.service_harness import book_matches_truth, running_service
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def test_books_are_rebased_and_audited_without_ever_leaving_live(
    redis_server: EmbeddedRedis,
) -> None:
    sim_config = SimConfig(symbols=list(SYMBOLS), diff_rate_hz=40, trade_rate_hz=5)
    async with running_service(
        redis_server.url, SYMBOLS, sim_config=sim_config, book_refresh_interval_s=0.4
    ) as (app, sim, received):
        service = app.service
        states = list(service.symbols.values())
        await wait_for(lambda: all(s.state is BookState.LIVE for s in states), what="live")
        first_live = {s: len(received.books[s]) for s in SYMBOLS}
        await wait_for(
            lambda: all(s.sync.refreshes >= 3 for s in states), within=10, what="3 re-bases each"
        )
        assert sum(s.sync.snapshots_applied for s in states) == 2  # the re-bases are extra
        assert [s.sync.resets for s in states] == [0, 0]
    for symbol in SYMBOLS:
        after = received.books[symbol][first_live[symbol] :]
        while after and after[-1]["state"] != "live":  # the shutdown retires the books
            after.pop()
        assert len(after) > 20 and all(b["state"] == "live" for b in after)  # never left live
        problems = [p for b in after if (p := book_matches_truth(sim, b))]
        assert not problems, problems[:2]
    for state in states:
        # The simulator's window equals its book here, so nothing can rot: an audit that
        # finds differences would be comparing wrongly.
        assert (state.sync.audit_window_differences, state.sync.audit_top_of_book) == (0, 0)
