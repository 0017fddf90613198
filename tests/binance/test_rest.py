"""REST failures reach the caller as the error kind that says what to do."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from market_data.binance.rest import GeoBlockedError, RateLimitedError, RestError, rest_get
from market_data.core.weights import WeightBudget


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A real HTTP server answering as the exchange does: its paths only, 451 on /geo,
    429 on /limited."""

    async def depth(request: web.Request) -> web.Response:
        return web.json_response({"lastUpdateId": 1, "bids": [], "asks": []})

    async def geo(request: web.Request) -> web.Response:
        return web.Response(status=451, text="restricted location")

    async def limited(request: web.Request) -> web.Response:
        headers = {"Retry-After": "30", "X-MBX-USED-WEIGHT-1M": "2401"}
        return web.Response(status=429, text='{"code":-1003}', headers=headers)

    app = web.Application()
    app.router.add_get("/fapi/v1/depth", depth)
    app.router.add_get("/limited/fapi/v1/depth", limited)
    app.router.add_get("/geo/fapi/v1/depth", geo)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


async def test_a_base_url_with_a_path_is_named_with_the_key_to_fix(server: str) -> None:
    async with aiohttp.ClientSession() as session:
        body, _ = await rest_get(session, server, "/fapi/v1/depth", {}, "depth snapshot")
        assert b"lastUpdateId" in body
        with pytest.raises(RestError) as caught:  # the base URL as pasted from the API docs
            await rest_get(session, f"{server}/fapi/v1", "/fapi/v1/depth", {}, "depth snapshot")
    message = str(caught.value)
    assert caught.value.status == 404
    assert f"HTTP 404 from {server}/fapi/v1/fapi/v1/depth" in message
    assert "check exchange_rest_url" in message


async def test_geo_blocking_is_its_own_kind(server: str) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(GeoBlockedError):
            await rest_get(session, f"{server}/geo", "/fapi/v1/depth", {}, "depth snapshot")


async def test_a_429_holds_the_budget_and_nothing_is_sent_before_its_retry_after(
    server: str,
) -> None:
    budget, now = WeightBudget(2400), [100.0]
    async with aiohttp.ClientSession() as session:

        async def get(base: str) -> bytes:
            body, _ = await rest_get(
                session, base, "/fapi/v1/depth", {}, "depth", budget=budget, clock=lambda: now[0]
            )
            return body

        with pytest.raises(RateLimitedError) as first:
            await get(f"{server}/limited")
        assert first.value.retry_after_s == 30
        assert budget.used_now(100.0) == 2401  # the exchange's count, read from the 429
        now[0] += 10
        with pytest.raises(RateLimitedError, match="not sent"):  # any request, 20 s more
            await get(server)
        now[0] += 21
        assert b"lastUpdateId" in await get(server)
