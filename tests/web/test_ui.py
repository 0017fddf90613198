"""The web view's routes, token guard and view model, on an App that is not running."""

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, make_mocked_request

from market_data.binance.schemas import DepthSnapshot
from market_data.core.state import BookState
from market_data.ops.config import Config
from market_data.outputs.sinks import TradeUpdate
from market_data.service.app import App
from market_data.web.auth import presented_token, require_token, token_ok
from market_data.web.snapshot import RateMeter, Secrets, scrub, spread_bps
from market_data.web.ui import selected_symbol, static_files

TOKEN = "view-token-1"
PASSWORD = "pw-f00dcafe"


def app_of(**overrides: object) -> App:
    settings: dict[str, object] = {
        "symbols": ("BTCUSDT", "ETHUSDT"),
        "health_port": 0,
        "shm_enabled": False,
        "redis_url": f"redis://viewer:{PASSWORD}@127.0.0.1:1/0",
    }
    settings.update(overrides)
    return App(Config(**settings))  # type: ignore[arg-type]


def make_live(app: App, symbol: str = "BTCUSDT") -> None:
    """Feed one diff and its snapshot: the book goes live with two levels per side."""
    data = {
        "e": "depthUpdate", "E": 1, "T": 1, "s": symbol, "U": 5, "u": 9, "pu": 1,
        "b": [["100.0", "1.5"], ["99.5", "2.0"]], "a": [["100.5", "0.5"], ["101.0", "3.0"]],
    }  # fmt: skip
    app.service.on_frame(json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data}))
    state = app.service.symbols[symbol]
    state.sync.on_snapshot(DepthSnapshot(lastUpdateId=7, bids=[], asks=[]))
    assert state.state is BookState.LIVE


@pytest.fixture
async def client() -> AsyncIterator[tuple[App, TestClient[web.Request, web.Application]]]:
    app = app_of(ui_token=TOKEN)
    async with TestClient(TestServer(app.http.build())) as test_client:
        yield app, test_client


# ----------------------------------------------------------------- the token


def test_token_compare_and_where_it_is_read() -> None:
    assert token_ok("", "") and token_ok("", "anything")
    assert token_ok(TOKEN, TOKEN) and not token_ok(TOKEN, "") and not token_ok(TOKEN, "x")
    assert presented_token(make_mocked_request("GET", f"/ui?token={TOKEN}")) == TOKEN
    bearer = make_mocked_request("GET", "/ui", headers={"Authorization": f"Bearer {TOKEN}"})
    assert presented_token(bearer) == TOKEN
    header = make_mocked_request("GET", "/ui", headers={"X-UI-Token": TOKEN})
    assert presented_token(header) == TOKEN
    with pytest.raises(web.HTTPUnauthorized):
        require_token(TOKEN, make_mocked_request("GET", "/ui?token=nope"))
    require_token("", make_mocked_request("GET", "/ui"))


async def test_page_and_websocket_need_the_token(
    client: tuple[App, TestClient[web.Request, web.Application]],
) -> None:
    _, http = client
    assert (await http.get("/ui")).status == 401
    assert (await http.get("/ui?token=wrong-one")).status == 401
    page = await http.get(f"/ui?token={TOKEN}")
    assert page.status == 200 and "<title>market-data</title>" in await page.text()
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert (await http.get("/ui", headers={"Authorization": f"Bearer {TOKEN}"})).status == 200
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await http.ws_connect("/ui/ws")
    assert refused.value.status == 401
    # The script and style hold no data: served without the token.
    assert (await http.get("/ui/static/app.js")).status == 200
    assert (await http.get("/ui/static/nothing.js")).status == 404
    assert (await http.get("/ui/static/index.html")).status == 404
    root = await http.get(f"/?token={TOKEN}", allow_redirects=False)
    assert root.status == 302 and root.headers["Location"] == f"/ui?token={TOKEN}"
    assert (await http.get("/ui/stats")).status == 401
    stats = await http.get("/ui/stats", headers={"X-UI-Token": TOKEN})
    assert stats.status == 200 and (await stats.json())["pages"] == 0
    # The API is as it was.
    assert (await http.get("/health")).status == 200


async def test_websocket_pushes_overview_and_the_selected_symbol(
    client: tuple[App, TestClient[web.Request, web.Application]],
) -> None:
    app, http = client
    make_live(app)
    ws = await http.ws_connect(f"/ui/ws?token={TOKEN}")
    first = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
    assert first["view"]["detail"] is None
    assert [row["symbol"] for row in first["view"]["overview"]["symbols"]] == [
        "BTCUSDT",
        "ETHUSDT",
    ]
    await ws.send_str('{"symbol": "btcusdt"}')
    for _ in range(30):
        frame = json.loads(await asyncio.wait_for(ws.receive_str(), 5))
        if frame["view"]["detail"] is not None:
            break
    detail = frame["view"]["detail"]
    assert detail["symbol"] == "BTCUSDT" and detail["live"] is True
    assert detail["bids"] == [[100.0, 1.5], [99.5, 2.0]]
    assert detail["asks"] == [[100.5, 0.5], [101.0, 3.0]]
    assert PASSWORD not in json.dumps(frame) and TOKEN not in json.dumps(frame)
    await ws.close()


async def test_a_page_that_stops_reading_is_dropped(
    client: tuple[App, TestClient[web.Request, web.Application]],
) -> None:
    app, http = client
    view = app.http.web_view
    big = [0]

    def huge(symbol: str | None) -> bytes:
        big[0] += 1  # a different 512 KiB view at every tick
        return b'{"pad":"%s","n":%d}' % (b"x" * (1 << 19), big[0])

    view.cache.view = huge  # type: ignore[method-assign]
    ws = await http.ws_connect(f"/ui/ws?token={TOKEN}")  # and never read from it
    for _ in range(200):
        if view.dropped:
            break
        await asyncio.sleep(0.05)
    assert view.dropped == 1
    assert view.frames_sent < 40  # bounded: a few MB at most went to the socket
    for _ in range(100):
        if view.clients == 0:
            break
        await asyncio.sleep(0.05)
    assert view.clients == 0
    await ws.close()


# ------------------------------------------------------------- the view model


def test_view_model_overview_and_detail() -> None:
    app = app_of()
    make_live(app)
    model = app.http.web_view.model
    app.tape.publish(TradeUpdate("BTCUSDT", 11, 100.25, 0.3, 1_700_000_000_000, True, 0, b""))
    app.tape.publish(TradeUpdate("BTCUSDT", 12, 100.5, 0.1, 1_700_000_000_100, False, 0, b""))
    overview = model.overview()
    rows = {row["symbol"]: row for row in overview["symbols"]}
    btc, eth = rows["BTCUSDT"], rows["ETHUSDT"]
    assert (btc["state"], btc["live"], btc["best_bid"], btc["best_ask"]) == (
        "live",
        True,
        100.0,
        100.5,
    )
    assert btc["spread_bps"] == spread_bps(100.0, 100.5)
    assert (eth["state"], eth["live"], eth["best_bid"], eth["spread_bps"]) == (
        "waiting",
        False,
        None,
        None,
    )
    assert overview["redis"] == {"connected": False, "error": None}
    detail = model.detail("BTCUSDT")
    assert detail is not None
    assert [t["id"] for t in detail["trades"]] == [12, 11]  # newest first
    assert [t["side"] for t in detail["trades"]] == ["buy", "sell"]
    assert model.detail("XRPUSDT") is None
    encoded = model.encode({"overview": overview, "detail": detail})
    assert PASSWORD.encode() not in encoded


def test_a_book_that_is_not_live_has_no_levels_and_says_why() -> None:
    app = app_of()
    make_live(app)
    state = app.service.symbols["BTCUSDT"]
    state.book.on_disconnect()
    app.service._handle_outputs(state)
    detail = app.http.web_view.model.detail("BTCUSDT")
    assert detail is not None
    assert (detail["live"], detail["bids"], detail["asks"]) == (False, [], [])
    assert detail["state"] == "waiting" and detail["last_reset"] == "reconnect"
    row = app.http.web_view.model.overview()["symbols"][0]
    assert (row["best_bid"], row["last_reset"]) == (None, "reconnect")


def test_spread_rate_and_scrub() -> None:
    assert spread_bps(99.0, 101.0) == 200.0
    assert spread_bps(None, 101.0) is None
    meter = RateMeter(window_s=2.0)
    assert meter.sample("S", 0.0, 0) == 0.0
    assert meter.sample("S", 1.0, 50) == 50.0
    assert meter.sample("S", 2.0, 100) == 50.0
    assert meter.sample("S", 5.0, 100) == pytest.approx(0.0, abs=20)
    assert meter.sample("S", 6.0, 3) == 0.0  # counter restarted
    secrets = Secrets.of("redis://u:p%40ss@h:1/0", TOKEN)
    assert set(secrets.values) >= {"p%40ss", "p@ss", TOKEN}
    assert scrub(b'{"e":"auth p@ss failed"}', secrets) == b'{"e":"auth *** failed"}'
    quoted = Secrets.of("redis://u:a%22b%5Cc@h:1/0", "")  # a password holding " and \\
    assert scrub(b'{"e":"auth a\\"b\\\\c failed"}', quoted) == b'{"e":"auth *** failed"}'


def test_selection_and_static_files() -> None:
    assert selected_symbol('{"symbol": "ethusdt"}') == "ETHUSDT"
    assert selected_symbol('{"symbol": null}') is None
    assert selected_symbol("not json") is None
    assert selected_symbol('{"symbol": "../etc"}') is None
    files = static_files()
    assert set(files) == {"index.html", "app.js", "style.css"}
    for name, body in files.items():  # nothing is fetched from elsewhere
        assert b"http://" not in body and b"https://" not in body, name
