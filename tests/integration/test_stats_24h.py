"""24h figures against the simulator's own ticker, from the first publication on.

The simulator keeps a day of trade history and serves klines, ticker/24hr and
@ticker from it. Every market_data publication must agree with its 24h ticker
at that instant to within the trades of one minute (the minute the service
joined the stream in, until it closes), also after a restart and after trades
the stream never delivered.
"""

from typing import Any

from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig, SimExchange
from market_data.sim.history import Minute
from tests.integration.service_harness import Received, running_service
from tests.support import wait_for

SYMBOLS = ("BTCUSDT", "ETHUSDT")


def within_one_minute(sim: SimExchange, message: dict[str, Any]) -> str | None:
    """None when ``message``'s figures equal the ticker's, or differ by one minute's trades
    (two at a minute boundary)."""
    history = sim.history[message["symbol"]]
    minutes = history.window(message["updated_at"])
    ticker = history.ticker(message["symbol"], message["updated_at"])

    def without(index: int) -> list[Minute]:
        return minutes[:index] + minutes[index + 1 :]

    problems = []
    # One minute's trades: the minute the service joined in, until it closes. Right
    # after a minute boundary that minute has closed but is not yet asked for again
    # (2 s) while the window has moved on: allow the two largest minutes then.
    largest_volume = sum(sorted(m.volume for m in minutes)[-2:])
    largest_count = sum(sorted(m.trades for m in minutes)[-2:])
    if abs(message["volume_24h"] - float(ticker["volume"])) > largest_volume + 1e-6:
        problems.append(f"volume {message['volume_24h']} vs {ticker['volume']}")
    if abs(message["trade_count_24h"] - ticker["count"]) > largest_count:
        problems.append(f"count {message['trade_count_24h']} vs {ticker['count']}")
    highs = {max(m.high for m in minutes)} | {max(m.high for m in without(i)) for i in (0, -1)}
    lows = {min(m.low for m in minutes)} | {min(m.low for m in without(i)) for i in (0, -1)}
    if message["high_24h"] not in highs or message["low_24h"] not in lows:
        problems.append(f"high/low {message['high_24h']}/{message['low_24h']} vs {highs}/{lows}")
    return f"{message['symbol']} at {message['updated_at']}: {problems}" if problems else None


def check(sim: SimExchange, received: Received) -> int:
    messages = [m for s in SYMBOLS for m in received.market[s]]
    problems = [p for m in messages if (p := within_one_minute(sim, m))]
    assert not problems, problems[:3]
    return len(messages)


async def test_24h_figures_agree_with_the_exchange_from_the_first_publication(
    redis_server: EmbeddedRedis,
) -> None:
    sim_config = SimConfig(symbols=list(SYMBOLS), diff_rate_hz=10, trade_rate_hz=10)
    async with SimExchange(sim_config) as sim:
        for restart in range(2):
            async with running_service(redis_server.url, SYMBOLS, sim=sim) as (app, _, received):
                await wait_for(
                    lambda: all(len(received.market[s]) >= 3 for s in SYMBOLS),
                    what="market data",
                )
                first = received.market["BTCUSDT"][0]
                assert first["window_complete"] is True and first["window_source"] == "trades"
                # A day of history: the figures are the day's, not "since start".
                assert first["trade_count_24h"] > 1000
                if restart:
                    # Trades the stream never delivered: a gap, filled again from klines.
                    sim.skip_trades("BTCUSDT", 200)
                    backfills = app.service.backfill.requests
                    await wait_for(
                        lambda b=backfills: app.service.backfill.requests > b,
                        what="gap backfill",
                    )
                    count = len(received.market["BTCUSDT"])
                    await wait_for(
                        lambda c=count: len(received.market["BTCUSDT"]) > c + 5,
                        what="more data",
                    )
                assert check(sim, received) >= 6


async def test_without_rest_the_ticker_stream_supplies_the_24h_figures(
    redis_server: EmbeddedRedis,
) -> None:
    """Klines geo-blocked: market_data says so and shows the exchange's @ticker figures."""
    sim_config = SimConfig(symbols=["BTCUSDT"], diff_rate_hz=10, trade_rate_hz=10, geo_blocked=True)
    async with running_service(redis_server.url, ("BTCUSDT",), sim_config=sim_config) as (
        app,
        sim,
        received,
    ):
        await wait_for(
            lambda: any(m["window_source"] == "ticker" for m in received.market["BTCUSDT"]),
            within=15,
            what="market data from the ticker",
        )
        message = next(m for m in received.market["BTCUSDT"] if m["window_source"] == "ticker")
        assert message["window_complete"] is False
        ticker = app.service.symbols["BTCUSDT"].ticker
        assert ticker is not None and message["trade_count_24h"] > 1000
        assert abs(message["trade_count_24h"] - ticker.n) <= 100  # a 2 s old ticker at most
        assert within_one_minute(sim, message) is None
