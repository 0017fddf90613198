"""The simulated exchange over real sockets: streams, subscriptions, REST, faults."""

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from market_data.sim.exchange import PeriodicFaults, SimConfig, SimExchange
from market_data.sim.faults import MalformedKind
from market_data.sim.market import MarketConfig
from tests.sim.sim_client import ClientBook, receive_json, receive_until

FAST = SimConfig(
    symbols=["BTCUSDT", "ETHUSDT"],
    diff_rate_hz=100,
    trade_rate_hz=20,
    seed=1,
    market=MarketConfig(levels_per_side=300),
)


@pytest.fixture
async def sim() -> AsyncIterator[SimExchange]:
    async with SimExchange(FAST) as exchange:
        yield exchange


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def _snapshot(session: aiohttp.ClientSession, sim: SimExchange, symbol: str) -> Any:
    async with session.get(f"{sim.rest_base_url}/fapi/v1/depth?symbol={symbol}&limit=1000") as r:
        assert r.status == 200
        return await r.json()


async def test_frames_are_json_with_string_prices_and_a_pu_chain_per_symbol(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    streams = "btcusdt@depth@100ms/ethusdt@depth@100ms"
    last_u: dict[str, int] = {}
    per_symbol = {"BTCUSDT": 0, "ETHUSDT": 0}
    async with session.ws_connect(f"{sim.ws_base_url}/stream?streams={streams}") as ws:
        while min(per_symbol.values()) < 40:
            frame = await receive_json(ws)
            data = frame["data"]
            assert frame["stream"] == data["s"].lower() + "@depth@100ms"
            for price, qty in data["b"] + data["a"]:
                assert isinstance(price, str) and isinstance(qty, str)
                assert Decimal(price) > 0 and Decimal(qty) >= 0
            if data["s"] in last_u:
                assert data["pu"] == last_u[data["s"]]
            assert data["U"] <= data["u"]
            last_u[data["s"]] = data["u"]
            per_symbol[data["s"]] += 1


async def test_snapshot_plus_stream_reproduces_true_book_at_every_u(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{sim.ws_base_url}/public/stream?streams=ethusdt@depth") as ws:
        buffered = await receive_until(ws, 1, "ethusdt@depth")
        book = ClientBook(await _snapshot(session, sim, "ETHUSDT"))
        compared = 0
        for diff in buffered + await receive_until(ws, 60, "ethusdt@depth"):
            if book.apply(diff):
                assert book.sides() == sim.market.true_book("ETHUSDT", diff["u"])
                compared += 1
        assert compared >= 55


async def test_a_snapshot_is_ahead_of_the_stream_and_its_bridge_comes_after(
    session: aiohttp.ClientSession,
) -> None:
    """As in the real capture: the answer includes a change whose diff arrives later."""
    async with SimExchange(SimConfig(symbols=["ETHUSDT"], diff_rate_hz=2)) as sim:
        url = f"{sim.ws_base_url}/public/stream?streams=ethusdt@depth"
        async with session.ws_connect(url) as ws:
            (seen,) = await receive_until(ws, 1, "ethusdt@depth")
            # At 2 diffs a second none comes between that one and the answer, so:
            snapshot = await _snapshot(session, sim, "ETHUSDT")
            last_id = snapshot["lastUpdateId"]
            assert last_id > seen["u"]  # ahead of everything sent so far
            (bridge,) = await receive_until(ws, 1, "ethusdt@depth")
    assert bridge["pu"] == seen["u"] and bridge["U"] <= last_id == bridge["u"]


async def test_partial_depth_and_book_ticker_show_the_top_of_the_true_book(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    streams = "btcusdt@depth5@100ms/btcusdt@bookTicker"
    async with session.ws_connect(f"{sim.ws_base_url}/public/stream?streams={streams}") as ws:
        for partial in await receive_until(ws, 3, "btcusdt@depth5@100ms"):
            bids, asks = sim.market.true_book("BTCUSDT", partial["u"])
            assert [tuple(level) for level in partial["b"]] == bids[:5]
            assert [tuple(level) for level in partial["a"]] == asks[:5]
            assert {"U", "u", "pu", "E", "T"} <= partial.keys()
        for ticker in await receive_until(ws, 5, "btcusdt@bookTicker"):
            bids, asks = sim.market.true_book("BTCUSDT", ticker["u"])
            assert (ticker["b"], ticker["B"]) == bids[0]
            assert (ticker["a"], ticker["A"]) == asks[0]


async def test_agg_trades_trade_at_the_best_bid_or_ask(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    base = sim.ws_base_url
    async with session.ws_connect(f"{base}/market/stream?streams=ethusdt@aggTrade") as ws:
        trades = 0
        while trades < 10:
            data = (await receive_json(ws))["data"]
            assert {"e", "E", "s", "a", "p", "q", "f", "l", "T", "m", "nq"} <= data.keys()
            bids, asks = sim.market.true_book("ETHUSDT", sim.market.current_update_id("ETHUSDT"))
            # an earlier trade may have used up the best level: then the next one
            side = bids if data["m"] else asks
            assert data["p"] in [price for price, _ in side[:3]]
            trades += 1


async def test_subscribe_unsubscribe_and_list(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{sim.ws_base_url}/stream") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 1})
        assert await receive_json(ws) == {"result": None, "id": 1}
        await ws.send_json(
            {"method": "SUBSCRIBE", "params": ["btcusdt@depth", "ethusdt@bookTicker"], "id": 2}
        )
        assert await receive_json(ws) == {"result": None, "id": 2}
        await ws.send_json({"method": "UNSUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 3})
        assert await receive_json(ws) == {"result": None, "id": 3}
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 4})
        while (reply := await receive_json(ws)).get("id") != 4:
            assert "stream" in reply
        assert reply == {"result": ["btcusdt@depth", "ethusdt@bookTicker"], "id": 4}
        assert sim.subscriber_count("ethusdt@aggTrade") == 0
        await receive_until(ws, 2, "btcusdt@depth")


async def _reply_to(ws: aiohttp.ClientWebSocketResponse, request_id: int) -> Any:
    """The answer to ``request_id`` (stream frames in between are skipped)."""
    while (reply := await receive_json(ws)).get("id") != request_id:
        assert "stream" in reply
    return reply


async def _frames_within(ws: aiohttp.ClientWebSocketResponse, seconds: float) -> list[str]:
    """Stream names of every frame received within ``seconds``."""
    streams: list[str] = []
    try:
        async with asyncio.timeout(seconds):
            while True:
                streams.append((await receive_json(ws, seconds))["stream"])
    except TimeoutError:
        return streams


async def test_bogus_subscriptions_are_acknowledged_and_stay_silent(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    """Unknown symbols, unknown kinds and uppercase names: acknowledged, then nothing."""
    bogus = ["nosuchusdt@depth", "ethusdt@depth7", "ETHUSDT@depth", "xyzusdt@aggTrade"]
    async with session.ws_connect(f"{sim.ws_base_url}/stream") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": [*bogus, "ethusdt@depth"], "id": 5})
        assert await _reply_to(ws, 5) == {"result": None, "id": 5}
        assert set(await _frames_within(ws, 0.5)) == {"ethusdt@depth"}  # the real one flows
        await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": 6})
        assert sorted((await _reply_to(ws, 6))["result"]) == sorted([*bogus, "ethusdt@depth"])
        await ws.send_str("not json")
        while "stream" in (reply := await receive_json(ws)):
            pass
        assert reply["error"]["code"] == 3
    assert sim.counters.silent_subscriptions == len(bogus)


async def test_past_the_stream_limit_the_connection_is_closed_with_1008(
    session: aiohttp.ClientSession,
) -> None:
    assert SimConfig().max_streams_per_connection == 1024
    config = SimConfig(symbols=["ETHUSDT"], max_streams_per_connection=4)
    names = ["ethusdt@depth", "ethusdt@aggTrade", "ethusdt@bookTicker", "nosuchusdt@depth"]
    async with (
        SimExchange(config) as small,
        session.ws_connect(f"{small.ws_base_url}/stream") as ws,
    ):
        await ws.send_json({"method": "SUBSCRIBE", "params": names, "id": 7})
        assert await _reply_to(ws, 7) == {"result": None, "id": 7}
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@depth5"], "id": 8})
        reply = await _reply_to(ws, 8)
        assert reply["error"] == {"code": 4, "msg": "Too many subscriptions"}
        while (message := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
            pass
        assert message.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1008
        assert small.counters.policy_closes == 1


async def test_more_than_10_messages_a_second_close_the_connection_with_1008(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{sim.ws_base_url}/stream") as ws:
        for request_id in range(15):
            await ws.send_json({"method": "LIST_SUBSCRIPTIONS", "id": request_id})
        answered = 0
        while (message := await ws.receive(timeout=5)).type is aiohttp.WSMsgType.TEXT:
            answered += 1
        assert message.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1008
        assert answered == 10 and message.extra == "Too many requests"


async def test_routes_split_depth_from_trades(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    base = sim.ws_base_url
    async with session.ws_connect(f"{base}/market/stream?streams=ethusdt@depth@100ms") as ws:
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 1})
        assert await _reply_to(ws, 1) == {"result": None, "id": 1}
        # depth is not served on /market: silent, while the trades flow.
        assert set(await _frames_within(ws, 1.2)) == {"ethusdt@aggTrade"}
    async with session.ws_connect(f"{base}/public/stream") as ws:
        # A connection on /public acknowledges aggTrade and never sends one (cryptofeed #1128).
        await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@aggTrade"], "id": 2})
        assert await receive_json(ws) == {"result": None, "id": 2}
        assert await _frames_within(ws, 1.2) == []
    # No route (retired 2026-04-23): /public data only; trades acknowledged, never sent.
    streams = "ethusdt@depth@100ms/ethusdt@aggTrade/ethusdt@ticker"
    async with session.ws_connect(f"{base}/stream?streams={streams}") as ws:
        assert set(await _frames_within(ws, 2.5)) == {"ethusdt@depth@100ms"}
    async with session.ws_connect(f"{base}/public/ws/ethusdt@depth") as ws:
        data = await receive_json(ws)  # raw stream: the payload without the envelope
        assert data["e"] == "depthUpdate" and "stream" not in data


async def test_rest_depth_limits_weights_and_errors(session: aiohttp.ClientSession) -> None:
    now = [120.0]
    config = SimConfig(symbols=["BTCUSDT"], rest_weight_limit=50, clock=lambda: now[0])
    async with SimExchange(config) as sim:
        url = f"{sim.rest_base_url}/fapi/v1/depth"
        expected_used = 0
        for limit, weight in [(5, 2), (10, 2), (20, 2), (50, 2), (100, 5), (500, 10), (1000, 20)]:
            async with session.get(url, params={"symbol": "BTCUSDT", "limit": limit}) as r:
                body = await r.json()
                expected_used += weight
                assert r.status == 200
                assert r.headers["X-MBX-USED-WEIGHT-1M"] == str(expected_used)
                assert len(body["bids"]) == len(body["asks"]) == min(limit, 1000)
                assert {"lastUpdateId", "E", "T"} <= body.keys()
        async with session.get(url, params={"symbol": "BTCUSDT", "limit": 20}) as r:  # 43 + 2
            assert r.status == 200
        async with session.get(url, params={"symbol": "BTCUSDT", "limit": 100}) as r:  # 45 + 5
            assert r.status == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "50"
        async with session.get(url, params={"symbol": "BTCUSDT"}) as r:  # 500 levels: 1
            assert r.status == 429 and (await r.json())["code"] == -1003
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "50"
            assert int(r.headers["Retry-After"]) > 0
        now[0] += 60  # next minute: the budget is back
        async with session.get(url, params={"symbol": "BTCUSDT"}) as r:
            assert r.status == 200 and r.headers["X-MBX-USED-WEIGHT-1M"] == "1"
            assert len((await r.json())["bids"]) == 500
        for params, code in [
            ({"symbol": "BTCUSDT", "limit": "7"}, -1100),
            ({"symbol": "NOPEUSDT"}, -1121),
            ({}, -1102),
        ]:
            async with session.get(url, params=params) as r:
                assert r.status == 400 and (await r.json())["code"] == code
                assert "X-MBX-USED-WEIGHT-1M" in r.headers
        sim.set_geo_blocked(True)
        async with session.get(url, params={"symbol": "BTCUSDT"}) as r:
            assert r.status == 451
            assert "X-MBX-USED-WEIGHT-1M" in r.headers
        async with session.get(f"{sim.rest_base_url}/fapi/v1/time") as r:
            assert r.status == 451


async def test_asking_again_before_a_429_runs_out_is_an_ip_ban(
    session: aiohttp.ClientSession,
) -> None:
    """A client that ignores Retry-After gets 418 on every endpoint, and longer each time."""
    now = [120.0]
    config = SimConfig(symbols=["BTCUSDT"], rest_weight_limit=30, clock=lambda: now[0])
    async with SimExchange(config) as sim:
        depth = f"{sim.rest_base_url}/fapi/v1/depth"
        params = {"symbol": "BTCUSDT", "limit": "1000"}  # weight 20

        async def status(url: str) -> tuple[int, int]:
            async with session.get(url, params=params if url == depth else None) as r:
                return r.status, int(r.headers.get("Retry-After", "0"))

        assert (await status(depth))[0] == 200
        limited, retry_after = await status(depth)
        assert limited == 429 and 0 < retry_after <= 60
        now[0] += 1  # did not wait, and asks for something cheap: a ban all the same
        assert await status(f"{sim.rest_base_url}/fapi/v1/ping") == (418, 120)
        assert await status(depth) == (418, 120)
        assert (await status(f"{sim.rest_base_url}/fapi/v1/time"))[0] == 418  # the whole IP
        now[0] += 121  # served; a new minute, a new budget
        assert (await status(depth))[0] == 200
        assert (await status(depth))[0] == 429
        assert await status(depth) == (418, 240)  # again: twice as long
        assert sim.bans == 2


async def test_default_snapshot_has_500_levels(session: aiohttp.ClientSession) -> None:
    async with SimExchange(SimConfig(symbols=["ETHUSDT"])) as sim:
        async with session.get(f"{sim.rest_base_url}/fapi/v1/depth?symbol=ETHUSDT") as r:
            body = await r.json()
            assert len(body["bids"]) == len(body["asks"]) == 500
            assert r.headers["X-MBX-USED-WEIGHT-1M"] == "1"  # no limit: weight 1 (§4)
            assert body["lastUpdateId"] == sim.market.current_update_id("ETHUSDT")


async def test_dropped_diff_shows_as_a_pu_gap(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{sim.ws_base_url}/stream?streams=ethusdt@depth@100ms") as ws:
        before = await receive_until(ws, 3, "ethusdt@depth@100ms")
        sim.drop_next_diff("ETHUSDT")
        after = await receive_until(ws, 10, "ethusdt@depth@100ms")
    chain = before + after
    gaps = [i for i in range(1, len(chain)) if chain[i]["pu"] != chain[i - 1]["u"]]
    assert len(gaps) == 1
    assert sim.counters.dropped_diffs == 1


async def test_a_connection_is_cut_at_its_age_limit(session: aiohttp.ClientSession) -> None:
    """The exchange's 24 h limit (here 0.5 s): the server closes, whatever it carries."""
    config = SimConfig(symbols=["ETHUSDT"], max_connection_age_s=0.5)
    async with SimExchange(config) as sim:
        url = f"{sim.ws_base_url}/public/stream?streams=ethusdt@depth"
        async with session.ws_connect(url) as ws:
            async with asyncio.timeout(5):
                while (message := await ws.receive()).type is aiohttp.WSMsgType.TEXT:
                    pass
            assert message.type is aiohttp.WSMsgType.CLOSE and ws.close_code == 1000
        assert sim.counters.age_closes == 1


async def test_disconnect_cuts_the_socket(sim: SimExchange, session: aiohttp.ClientSession) -> None:
    url = f"{sim.ws_base_url}/stream?streams=ethusdt@depth"
    async with session.ws_connect(url) as first, session.ws_connect(url) as second:
        await receive_until(first, 1, "ethusdt@depth")
        await receive_until(second, 1, "ethusdt@depth")
        assert sim.disconnect(sim.connection_ids[0]) == 1
        ended = await _drain_until_closed(first)
        assert ended in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR)
        await receive_until(second, 2, "ethusdt@depth")  # the other one lives on
        assert sim.disconnect() == 1
        await _drain_until_closed(second)
    assert sim.counters.disconnects == 2


async def _drain_until_closed(ws: aiohttp.ClientWebSocketResponse) -> aiohttp.WSMsgType:
    async with asyncio.timeout(5):
        while True:
            message = await ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                return message.type


@pytest.mark.parametrize("kind", list(MalformedKind))
async def test_malformed_frames_arrive(
    kind: MalformedKind, sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{sim.ws_base_url}/stream?streams=ethusdt@depth") as ws:
        await receive_until(ws, 1, "ethusdt@depth")
        assert sim.send_malformed(kind, "ETHUSDT") == 1
        async with asyncio.timeout(5):
            while True:
                text = (await ws.receive()).data
                try:
                    data = json.loads(text)["data"]
                except json.JSONDecodeError:
                    assert kind is MalformedKind.NOT_JSON
                    break
                if kind is MalformedKind.WRONG_TYPES and isinstance(data.get("u"), str):
                    assert not isinstance(data["b"][0][0], str)
                    break
                if kind is MalformedKind.MISSING_FIELDS and "u" not in data:
                    assert "b" not in data
                    break
                if kind is MalformedKind.NEGATIVE_PRICE and data["b"][:1] == [["-1.00", "1.000"]]:
                    break
    assert sim.counters.malformed[kind] == 1 and sim.counters.malformed_total == 1


async def test_pause_silences_the_stream_and_burst_floods_it(
    sim: SimExchange, session: aiohttp.ClientSession
) -> None:
    async with session.ws_connect(f"{sim.ws_base_url}/stream?streams=btcusdt@depth") as ws:
        await receive_until(ws, 1, "btcusdt@depth")
        sim.pause(0.6)
        loop = asyncio.get_running_loop()
        paused_at = loop.time()
        last_before = None
        while True:  # frames already in flight may still arrive
            message = await ws.receive(timeout=2)
            data = json.loads(message.data)["data"]
            if loop.time() - paused_at > 0.1:
                break
            last_before = data
        silence = loop.time() - paused_at
        assert silence >= 0.5
        assert last_before is None or data["pu"] == last_before["u"]  # silent, not a gap
        assert sim.counters.pauses == 1

        sim.burst("BTCUSDT", 200)
        start = loop.time()
        burst = await receive_until(ws, 200, "btcusdt@depth")
        assert loop.time() - start < 1.0  # 100/s would need 2 s
        assert all(b["pu"] == a["u"] for a, b in zip(burst, burst[1:], strict=False))
        assert sim.counters.burst_diffs == 200


async def test_server_pings(session: aiohttp.ClientSession) -> None:
    config = SimConfig(symbols=["ETHUSDT"], ping_interval_s=0.2)
    async with SimExchange(config) as sim:
        async with session.ws_connect(f"{sim.ws_base_url}/stream", autoping=False) as ws:
            message = await ws.receive(timeout=3)
            assert message.type is aiohttp.WSMsgType.PING
            await ws.pong(message.data)


async def test_shutdown_closes_client_connections(session: aiohttp.ClientSession) -> None:
    sim = SimExchange(SimConfig(symbols=["ETHUSDT"]))
    async with sim, session.ws_connect(f"{sim.ws_base_url}/stream?streams=ethusdt@depth") as ws:
        await receive_until(ws, 1, "ethusdt@depth")
        await sim.stop()
        assert await _drain_until_closed(ws) in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        )
        assert sim.connection_ids == []


async def test_a_client_that_falls_behind_is_cut_off(session: aiohttp.ClientSession) -> None:
    config = SimConfig(symbols=["ETHUSDT"], diff_rate_hz=1, max_queued_frames=50)
    async with SimExchange(config) as sim:
        async with session.ws_connect(f"{sim.ws_base_url}/stream") as ws:
            await ws.send_json({"method": "SUBSCRIBE", "params": ["ethusdt@depth"], "id": 1})
            assert await receive_json(ws) == {"result": None, "id": 1}
            sim.burst("ETHUSDT", 200)  # queued at once, faster than any socket drains
            assert await _drain_until_closed(ws) in (
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            )
        assert sim.counters.slow_consumers_closed == 1


async def test_periodic_faults_fire_on_their_timers(session: aiohttp.ClientSession) -> None:
    plan = PeriodicFaults(drop_every_s=0.1, malformed_every_s=0.1, burst_every_s=0.1, burst_size=5)
    config = SimConfig(symbols=["ETHUSDT"], diff_rate_hz=50, periodic=plan)
    async with SimExchange(config) as sim:
        async with session.ws_connect(f"{sim.ws_base_url}/stream?streams=ethusdt@depth") as ws:
            malformed = gaps = 0
            last_u = None
            async with asyncio.timeout(5):
                while malformed < 2 or gaps < 2:
                    try:
                        data = json.loads((await ws.receive()).data)["data"]
                        if not isinstance(data.get("u"), int) or data["b"][:1] == [
                            ["-1.00", "1.000"]
                        ]:
                            raise ValueError("malformed")
                    except (ValueError, KeyError):
                        malformed += 1
                        continue
                    if data["u"] == data["pu"]:  # the well-formed negative-price frame
                        continue
                    gaps += last_u is not None and data["pu"] != last_u
                    last_u = data["u"]
        assert sim.counters.dropped_diffs >= 2 and sim.counters.malformed_total >= 2
        assert sim.counters.burst_diffs >= 10
