"""REST failures reach the caller as the error kind that says what to do."""

from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

from market_data.binance.rest import GeoBlockedError, RestError, rest_get


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A real HTTP server answering as the exchange does: its paths only, 451 on /geo."""

    async def depth(request: web.Request) -> web.Response:
        return web.json_response({"lastUpdateId": 1, "bids": [], "asks": []})

    async def geo(request: web.Request) -> web.Response:
        return web.Response(status=451, text="restricted location")

    app = web.Application()
    app.router.add_get("/fapi/v1/depth", depth)
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
