"""Exchange metadata against the simulator: unknown symbols, skip, symbols: all, halts."""

import asyncio
import os
import sys
from pathlib import Path

import pytest

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.errors import MarketDataError
from market_data.service.app import App
from market_data.sim.exchange import SimConfig, SimExchange
from tests.ops.ops_harness import get, running_app, wait_for_answer
from tests.support import service_config, wait_for

QUICK = {"diff_rate_hz": 20, "trade_rate_hz": 5}


async def test_unknown_symbols_stop_the_service_one_line_each(
    redis_server: EmbeddedRedis,
) -> None:
    async with SimExchange(SimConfig(["BTCUSDT"], **QUICK)) as sim:
        config = service_config(sim, redis_server.url, ("BTCUSDT", "BTCUSTD", "LUNAUSDT"))
        with pytest.raises(MarketDataError) as info:
            await asyncio.wait_for(App(config).run(asyncio.Event()), 10)
    lines = str(info.value).splitlines()
    assert lines[1:3] == [
        "BTCUSTD: not listed by the exchange (did you mean BTCUSDT?)",
        "LUNAUSDT: listed with status SETTLING, not TRADING",
    ]
    assert "unknown_symbols: skip" in lines[-1]


async def test_market_data_run_exits_2_naming_the_unknown_symbol(tmp_path: Path) -> None:
    config = tmp_path / "service.yaml"
    config.write_text("log_json: false\n")
    async with SimExchange(SimConfig(["BTCUSDT"], **QUICK)) as sim:
        env = {
            **os.environ,
            "MARKET_DATA_SYMBOLS": "btcusdt,xyzusdt",
            "MARKET_DATA_EXCHANGE_WS_URL": sim.ws_base_url,
            "MARKET_DATA_EXCHANGE_REST_URL": sim.rest_base_url,
            "MARKET_DATA_HEALTH_PORT": "0",
            "MARKET_DATA_SHM_ENABLED": "false",
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "market_data.cli", "run", "--config", str(config),
            env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2, err.decode()
    assert "XYZUSDT: not listed by the exchange" in err.decode()


async def test_with_skip_an_unknown_symbol_never_keeps_another_from_going_live(
    redis_server: EmbeddedRedis,
) -> None:
    sim = SimConfig(["BTCUSDT"], **QUICK)
    async with running_app(
        redis_server.url, ("BTCUSDT", "XYZUSDT"), sim_config=sim, unknown_symbols="skip"
    ) as run:
        ready = await wait_for_answer(run.base_url, "/ready", lambda a: a.status == 200)
        assert ready.body["checks"]["skipped"] == {"XYZUSDT": "not listed by the exchange"}
        assert list(run.app.service.symbols) == ["BTCUSDT"]
        assert run.app.service.symbols["BTCUSDT"].state is BookState.LIVE


async def test_symbols_all_follows_halts_resumptions_and_new_listings(
    redis_server: EmbeddedRedis,
) -> None:
    sim = SimConfig(["BTCUSDT", "ETHUSDT", "SOLUSDT"], **QUICK)
    async with SimExchange(sim) as exchange:
        exchange.set_status("SOLUSDT", "PENDING_TRADING")  # listed, not trading yet
        app = App(service_config(exchange, redis_server.url, ("all",)))
        shutdown = asyncio.Event()
        task = asyncio.create_task(app.run(shutdown))
        service = app.service
        try:
            await wait_for(lambda: service.started, what="service started")
            assert sorted(service.symbols) == ["BTCUSDT", "ETHUSDT"]
            await wait_for(
                lambda: all(s.state is BookState.LIVE for s in service.symbols.values()),
                what="books live",
            )
            # Precision from the listing: BTCUSDT's tick is 0.1 and step 0.001.
            precision = service.symbols["BTCUSDT"].precision
            assert (precision.price_decimals, precision.qty_decimals) == (1, 3)

            exchange.set_status("ETHUSDT", "SETTLING")
            await service.refresh_listing()
            eth = service.symbols["ETHUSDT"]
            assert eth.state is BookState.HALTED and eth.top(5) == ([], [])
            base = f"http://127.0.0.1:{app.http_port}"
            book = await get(base, "/book/ETHUSDT")
            assert book.body["state"] == "halted" and book.body["bids"] == []
            ready = await get(base, "/ready")
            assert ready.status == 200, ready.body  # halted is the market's state, not a fault

            exchange.set_status("ETHUSDT", "TRADING")
            exchange.set_status("SOLUSDT", "TRADING")
            await service.refresh_listing()
            await wait_for(
                lambda: (
                    eth.state is BookState.LIVE
                    and "SOLUSDT" in service.symbols
                    and service.symbols["SOLUSDT"].state is BookState.LIVE
                ),
                what="ETHUSDT live again and SOLUSDT listed and live",
            )
        finally:
            shutdown.set()
            await asyncio.wait_for(task, 10)
