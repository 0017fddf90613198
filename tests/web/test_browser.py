"""The web view in a real browser (headless Chromium) against the service on the simulator.

The service runs in-process on the simulated exchange with a real
redis-server (``running_service``); the page is driven by Playwright through
the system Chromium. Screenshots go to ``test-artifacts/web/``.
"""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from market_data.core.state import BookState
from market_data.embedded_redis import EmbeddedRedis
from market_data.ops.config import Config
from market_data.service.app import App
from market_data.sim.exchange import SimConfig, SimExchange
from tests.integration.service_harness import running_service
from tests.support import free_port, service_config, wait_for
from tests.web.browser import browser_page, screenshot, wait_page

SYMBOLS = ("BTCUSDT", "ETHUSDT")
pytestmark = pytest.mark.timeout(180)


LADDER_JS = """() => {
  const side = (cls) => [...document.querySelectorAll('#ladder td.' + cls + '[data-price]')]
      .map((td) => [Number(td.dataset.price), Number(td.dataset.qty)]);
  const detail = document.querySelector('#detail');
  return {id: Number(detail.dataset.updateId), live: detail.dataset.live,
          bids: side('bid'), asks: side('ask')};
}"""


async def _book(base: str, symbol: str) -> dict[str, Any]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/book/{symbol}") as r:
        body: dict[str, Any] = await r.json()
        return body


async def test_page_shows_the_service_book_and_trades(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    async with (
        running_service(redis_server.url, SYMBOLS) as (app, sim, received),
        browser_page(tmp_path / "profile") as page,
    ):
        service = app.service
        await wait_for(lambda: app.http_port is not None, what="HTTP port")
        base = f"http://127.0.0.1:{app.http_port}"
        await page.goto(f"{base}/")  # redirects to /ui
        assert page.url.endswith("/ui")
        await wait_for(
            lambda: all(s.state is BookState.LIVE for s in service.symbols.values()), what="live"
        )
        for symbol in SYMBOLS:
            await wait_page(
                page,
                f"() => document.querySelector('#overview tr[data-symbol={symbol}]')"
                "?.dataset.state === 'live'",
                what=f"{symbol} live in the overview",
            )
        await wait_page(
            page,
            "() => document.querySelector('#connections tbody tr[data-connected=true]')",
            what="a connection line shown up",
        )
        assert await page.evaluate("document.querySelector('#redis').dataset.connected") == "true"
        await asyncio.sleep(2.5)  # an update rate and some trades to show
        await screenshot(page, "ui-overview.png")

        await page.click("#overview tr[data-symbol=BTCUSDT]")
        assert page.url.endswith("#BTCUSDT")
        await wait_page(
            page, "() => document.querySelector('#detail').dataset.live === 'true'", what="live"
        )
        # The book on the page is the service's book: with the exchange quiet, exactly.
        sim.pause(3.0)
        await asyncio.sleep(0.6)
        shown = await page.evaluate(LADDER_JS)
        book = await _book(base, "BTCUSDT")
        assert shown["live"] == "true" and book["state"] == "live"
        assert shown["id"] == book["last_update_id"]
        assert shown["bids"] == [[float(p), q] for p, q in book["bids"]]
        assert shown["asks"] == [[float(p), q] for p, q in book["asks"]]
        assert len(shown["bids"]) == app.config.order_book_depth

        # While the exchange streams, the page is at most one push behind /book: what
        # /book said a push interval (100 ms, plus margin) ago, the page shows or passed.
        await asyncio.sleep(3.0)
        for _ in range(5):
            before = await _book(base, "BTCUSDT")
            await asyncio.sleep(0.4)
            shown = await page.evaluate(LADDER_JS)
            assert shown["live"] == "true"
            assert shown["id"] >= before["last_update_id"], (shown["id"], before)

        # A trade the simulator sent reaches the tape.
        await wait_for(lambda: len(received.trades["BTCUSDT"]) >= 3, what="trades in Redis")
        trade_id = received.trades["BTCUSDT"][-1]["trade_id"]
        await wait_page(
            page,
            f"() => document.querySelector('#tape tr[data-trade-id=\"{trade_id}\"]')",
            what=f"trade {trade_id} in the tape",
        )
        await asyncio.sleep(0.3)
        await screenshot(page, "ui-symbol.png")
        assert page.js_errors == []


async def test_a_killed_connection_turns_the_page_not_live(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    watchdog_s = 1.0
    async with (
        running_service(redis_server.url, ("BTCUSDT",), silence_timeout_s=watchdog_s) as (
            app,
            sim,
            _,
        ),
        browser_page(tmp_path / "profile") as page,
    ):
        await wait_for(lambda: app.http_port is not None, what="HTTP port")
        await page.goto(f"http://127.0.0.1:{app.http_port}/ui#BTCUSDT")
        await wait_page(
            page, "() => document.querySelector('#detail').dataset.live === 'true'", what="live"
        )
        sim.pause(8.0)  # nothing to resync from for a while
        killed_at = asyncio.get_running_loop().time()
        assert sim.disconnect() >= 1
        await wait_page(
            page,
            "() => document.querySelector('#detail').dataset.live === 'false'",
            within=watchdog_s + 2.0,
            what="not live on the page within the watchdog time",
        )
        took = asyncio.get_running_loop().time() - killed_at
        banner = await page.inner_text("#banner")
        assert "not live" in banner and "BTCUSDT" in banner
        levels = "document.querySelectorAll('#ladder td[data-price]').length"
        assert await page.evaluate(levels) == 0
        await screenshot(page, "ui-not-live.png")
        await page.goto(f"http://127.0.0.1:{app.http_port}/ui")
        state = await wait_page(
            page,
            "() => document.querySelector('#overview tr[data-symbol=BTCUSDT]')?.dataset.state",
            what="overview row",
        )
        assert state in ("waiting", "syncing"), state
        assert took <= watchdog_s + 2.0


async def test_the_page_reconnects_after_a_service_restart(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    port = free_port()
    sim_config = SimConfig(symbols=["BTCUSDT"], diff_rate_hz=40, trade_rate_hz=10)
    async with SimExchange(sim_config) as sim, browser_page(tmp_path / "profile") as page:
        async with running_service(redis_server.url, ("BTCUSDT",), sim=sim, health_port=port):
            await wait_for(lambda: _listening(port), what="HTTP port")
            await page.goto(f"http://127.0.0.1:{port}/ui#BTCUSDT")
            await wait_page(
                page,
                "() => document.querySelector('#detail').dataset.live === 'true'",
                what="live",
            )
        # The service is gone: the page says so and stops showing the book as current.
        await wait_page(
            page,
            "() => document.querySelector('#status').dataset.connected === 'false'",
            what="page sees the service gone",
        )
        assert await page.evaluate("document.querySelector('#detail').dataset.live") == "false"
        assert not await page.evaluate(
            "document.querySelector('#offline').classList.contains('hidden')"
        )
        await asyncio.sleep(1.0)  # a few reconnect attempts fail meanwhile
        async with running_service(redis_server.url, ("BTCUSDT",), sim=sim, health_port=port):
            await wait_page(
                page,
                "() => document.querySelector('#detail').dataset.live === 'true'",
                within=20.0,
                what="live again after the restart, without a reload",
            )
            assert await page.evaluate("document.querySelector('#status').dataset.connected")
        assert page.js_errors == []


@asynccontextmanager
async def _app(config: Config) -> AsyncIterator[App]:
    app = App(config)
    shutdown = asyncio.Event()
    task = asyncio.create_task(app.run(shutdown))
    try:
        yield app
    finally:
        shutdown.set()
        await asyncio.wait_for(task, 10)


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_the_token_guards_the_page_and_no_secret_reaches_it(
    redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    token = "tok-" + "7f3a9c1e5b"
    password = "pw-d41d8cd98f00b204"
    # A password the server does not know: the writer fails to log in, and its errors
    # (shown on the page) must not carry the password either.
    url = redis_server.url.replace("redis://", f"redis://viewer:{password}@")
    async with (
        running_service(redis_server.url, ("BTCUSDT",), ui_token=token) as (app, _, _),
        browser_page(tmp_path / "profile") as page,
    ):
        await wait_for(lambda: app.http_port is not None, what="HTTP port")
        base = f"http://127.0.0.1:{app.http_port}"
        refused = await page.goto(f"{base}/ui")
        assert refused is not None and refused.status == 401
        refused = await page.goto(f"{base}/ui?token=wrong-token")
        assert refused is not None and refused.status == 401
        await page.goto(f"{base}/ui?token={token}")
        await wait_page(
            page,
            "() => document.querySelector('#status').dataset.connected === 'true'",
            what="the page's WebSocket, with the token",
        )
    async with (
        SimExchange(SimConfig(["BTCUSDT"], diff_rate_hz=20, trade_rate_hz=5)) as sim,
        _app(service_config(sim, url, ("BTCUSDT",), ui_token=token)) as app,
        browser_page(tmp_path / "profile2") as page,
    ):
        await wait_for(lambda: app.http_port is not None, what="HTTP port")
        await page.goto(f"http://127.0.0.1:{app.http_port}/ui?token={token}#BTCUSDT")
        await wait_page(
            page,
            "() => document.querySelector('#redis').dataset.connected === 'false'",
            what="Redis shown down",
        )
        await asyncio.sleep(1.0)
        html = await page.content()
        assert password not in html
        frames: list[str] = []
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(
                f"ws://127.0.0.1:{app.http_port}/ui/ws",
                headers={"Authorization": f"Bearer {token}"},
            ) as ws,
        ):
            await ws.send_str('{"symbol": "BTCUSDT"}')
            for _ in range(5):
                frames.append(await asyncio.wait_for(ws.receive_str(), 5))
        assert frames and not any(password in f or token in f for f in frames)
