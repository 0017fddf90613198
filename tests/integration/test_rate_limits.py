"""The service under the exchange's request-weight limit: a 429 holds every request.

The exchange answers a request over its per-minute weight with 429 and a
Retry-After; asking again before it runs out, from any task, is an IP ban (418)
that grows from 2 minutes to 3 days. The service's snapshots, 24h backfills and
listing share one budget, so one 429 makes all of them wait.
"""

import time

from market_data.embedded_redis import EmbeddedRedis
from market_data.service.rest_hold import RestHoldFile
from market_data.sim.exchange import SimConfig
from tests.integration.service_harness import running_service
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT")


async def test_a_429_holds_every_request_until_retry_after_so_no_ban(
    redis_server: EmbeddedRedis,
) -> None:
    # The exchange's minute ends 12 s from now (its clock is shifted so that it does):
    # exchangeInfo (1) and two snapshots (5 each) fit its 20 a minute; the two 24h
    # backfills (10 each), asked for within a few seconds, do not: a 429 with a
    # Retry-After of up to 12 s.
    shift = 48.0 - time.time() % 60
    sim_config = SimConfig(
        symbols=list(SYMBOLS),
        diff_rate_hz=20,
        trade_rate_hz=5,
        rest_weight_limit=20,
        clock=lambda: time.time() + shift,
    )
    async with running_service(
        redis_server.url, SYMBOLS, sim_config=sim_config, snapshot_limit=100
    ) as (app, sim, received):
        service = app.service
        await wait_for(
            lambda: all(received.live_books(s) for s in SYMBOLS), within=15, what="live books"
        )
        await wait_for(lambda: service.backfill.failures >= 1, within=12, what="a 429")
        await wait_for(
            lambda: all(service.symbols[s].stats_ready for s in SYMBOLS),
            within=25,
            what="both 24h backfills, after the Retry-After",
        )
        assert sim.bans == 0  # nobody asked for anything before the Retry-After ran out
    RestHoldFile.for_url(sim.rest_base_url).path.unlink(missing_ok=True)  # this port's
