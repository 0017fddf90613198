"""The exchange restarts its sequences under a running service: everything recovers."""

import asyncio

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.service.app import App
from market_data.sim.exchange import SimConfig, SimExchange
from tests.integration.service_harness import Received, subscribe
from tests.support import free_port, service_config, wait_for


async def test_trade_ids_and_update_ids_starting_again_do_not_stop_publication(
    redis_server: EmbeddedRedis,
) -> None:
    port = free_port()
    config = SimConfig(["BTCUSDT"], port=port, diff_rate_hz=20, trade_rate_hz=10, seed=1)
    received = Received()
    ready = asyncio.Event()
    subscriber = asyncio.create_task(subscribe(redis_server.url, received, ready))
    await asyncio.wait_for(ready.wait(), 5)
    shutdown = asyncio.Event()
    async with SimExchange(config) as first:
        app = App(service_config(first, redis_server.url, ("BTCUSDT",)))
        task = asyncio.create_task(app.run(shutdown))
        state = app.service.symbols["BTCUSDT"]
        await wait_for(lambda: state.trades > 30 and state.state is BookState.LIVE, what="flow")
    before = len(received.trades["BTCUSDT"])
    last_id = received.trades["BTCUSDT"][-1]["trade_id"]
    # A new exchange process on the same address: trade ids start at 1 again.
    second = SimConfig(["BTCUSDT"], port=port, diff_rate_hz=20, trade_rate_hz=10, seed=2)
    async with SimExchange(second):
        await wait_for(
            lambda: len(received.trades["BTCUSDT"]) > before + 20, within=15, what="trades again"
        )
        await wait_for(lambda: state.state is BookState.LIVE, what="book live again")
        after = [t["trade_id"] for t in received.trades["BTCUSDT"][before:]]
        assert after[0] < last_id  # the new sequence, taken
        assert after == sorted(after) and len(set(after)) == len(after)
        assert state.trade_ids.restarts == 1
        shutdown.set()
        await asyncio.wait_for(task, 10)
    subscriber.cancel()
    await asyncio.gather(subscriber, return_exceptions=True)
