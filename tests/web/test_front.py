"""The web view behind ``--workers``: the supervisor's front merges the workers' views."""

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest

from market_data.embedded_redis import EmbeddedRedis
from market_data.service.app import App
from market_data.service.front import Front, WorkerAddress
from market_data.sim.exchange import SimConfig, SimExchange
from market_data.web.front import merge_views
from tests.support import free_port, service_config, wait_for
from tests.web.browser import browser_page, screenshot, wait_page

TOKEN = "front-token-1"


def test_merge_marks_a_silent_worker_unknown_and_takes_the_owner_detail() -> None:
    row = {"symbol": "BTCUSDT", "state": "live", "live": True}
    view = {
        "overview": {
            "version": "1",
            "redis": {"connected": True, "error": None},
            "connections": [{"name": "depth-1", "connected": True}],
            "symbols": [row],
        },
        "detail": {"symbol": "BTCUSDT", "live": True},
    }
    merged = merge_views([(0, ("BTCUSDT",)), (1, ("ETHUSDT",))], {0: view}, "BTCUSDT")
    rows = merged["overview"]["symbols"]
    assert [r["symbol"] for r in rows] == ["BTCUSDT", "ETHUSDT"]
    assert (rows[1]["state"], rows[1]["live"]) == ("unknown", False)
    assert merged["overview"]["connections"][0]["name"] == "w0/depth-1"
    assert merged["overview"]["redis"]["connected"] is False
    assert merged["detail"] == view["detail"]
    assert merge_views([(0, ("BTCUSDT",))], {0: view}, "ETHUSDT")["detail"] is None


@pytest.mark.timeout(180)
async def test_the_front_serves_one_page_over_two_workers(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    sim_config = SimConfig(symbols=["BTCUSDT", "ETHUSDT"], diff_rate_hz=30, trade_rate_hz=5)
    async with SimExchange(sim_config) as sim:
        apps = [
            App(service_config(sim, redis_server.url, (symbol,), ui_token=TOKEN))
            for symbol in ("BTCUSDT", "ETHUSDT")
        ]
        stops = [asyncio.Event() for _ in apps]
        tasks = [asyncio.create_task(a.run(s)) for a, s in zip(apps, stops, strict=True)]
        front = None
        try:
            await wait_for(lambda: all(a.http_port for a in apps), what="worker ports")
            workers = [
                WorkerAddress(i, a.config.symbols, f"http://127.0.0.1:{a.http_port}")
                for i, a in enumerate(apps)
            ]
            front = Front("127.0.0.1", free_port(), workers, lambda i: True, ui_token=TOKEN)
            await asyncio.to_thread(front.start)
            base = f"http://127.0.0.1:{front.port}"
            async with aiohttp.ClientSession() as session:
                async with session.get(f"{base}/ui") as refused:
                    assert refused.status == 401
                async with session.ws_connect(f"{base}/ui/ws?token={TOKEN}") as ws:
                    await ws.send_str('{"symbol": "ETHUSDT"}')
                    for _ in range(100):
                        frame = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
                        view = frame["view"]
                        states = [r["state"] for r in view["overview"]["symbols"]]
                        detail = view["detail"]
                        if states == ["live", "live"] and detail and detail["live"]:
                            break
                    assert states == ["live", "live"]
                    assert detail["symbol"] == "ETHUSDT" and detail["bids"]
            async with browser_page(tmp_path / "profile") as page:
                await page.goto(f"{base}/?token={TOKEN}")
                for symbol in ("BTCUSDT", "ETHUSDT"):
                    await wait_page(
                        page,
                        f"() => document.querySelector('#overview tr[data-symbol={symbol}]')"
                        "?.dataset.state === 'live'",
                        what=f"{symbol} live through the front",
                    )
                await page.click("#overview tr[data-symbol=ETHUSDT]")
                await wait_page(
                    page,
                    "() => document.querySelector('#detail').dataset.live === 'true'",
                    what="ETHUSDT's ladder from worker 1",
                )
                await screenshot(page, "ui-front-symbol.png")
                stops[1].set()  # worker 1 goes away: its symbol is not live on the page
                await asyncio.wait_for(tasks[1], 10)
                await wait_page(
                    page,
                    "() => document.querySelector('#detail').dataset.live === 'false'",
                    what="ETHUSDT not live once its worker is gone",
                )
                await page.goto(f"{base}/ui?token={TOKEN}")
                await wait_page(
                    page,
                    "() => document.querySelector('#overview tr[data-symbol=ETHUSDT]')"
                    "?.dataset.state === 'unknown'",
                    what="ETHUSDT unknown in the overview",
                )
                assert page.js_errors == []
        finally:
            if front is not None:
                await asyncio.to_thread(front.stop)
            for stop in stops:
                stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
