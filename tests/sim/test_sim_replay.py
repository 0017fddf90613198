"""Replaying real captures through the simulated exchange, and reading them."""

import asyncio
import gzip
from pathlib import Path

import aiohttp

from market_data.sim.capture_source import iter_frames, load_capture, split_frame
from market_data.sim.exchange import SimConfig, SimExchange
from tests.sim.sim_client import ClientBook, receive_json

DATA = Path(__file__).resolve().parents[1] / "data"
CRYPTOFEED = DATA / "cryptofeed_BINANCE_FUTURES.ws.1.0"
HFTBACKTEST = DATA / "hftbacktest_usdm_ethusdt_20240808.gz"


def test_cryptofeed_capture_is_read_completely() -> None:
    capture = load_capture(CRYPTOFEED)
    kinds = [frame.stream.split("@", 1)[1] for frame in capture.frames]
    assert kinds.count("depth@100ms") == 764
    assert kinds.count("aggTrade") == 91
    assert kinds.count("bookTicker") == 613
    assert kinds.count("kline_1m") == 67
    assert capture.symbols == ["AKROUSDT", "CTKUSDT", "KEEPUSDT", "SUSHIUSDT"]
    assert {s.symbol: s.last_update_id for s in capture.snapshots}["SUSHIUSDT"] == 600859605926
    stamps = [frame.recv_ns for frame in capture.frames]
    assert stamps == sorted(stamps)
    lines = CRYPTOFEED.read_bytes().splitlines()[1:]
    assert [body for _, body in iter_frames(CRYPTOFEED)] == [
        line.split(b": ", 1)[1] for line in lines
    ]


def test_hftbacktest_capture_snapshot_is_found_between_frames() -> None:
    capture = load_capture(HFTBACKTEST)
    assert len(capture.snapshots) == 1
    snapshot = capture.snapshots[0]
    assert (snapshot.symbol, snapshot.last_update_id) == ("ETHUSDT", 5123107856276)
    with gzip.open(HFTBACKTEST, "rb") as lines:
        raw = [line.rstrip(b"\n").split(b" ", 1)[1] for line in lines]
    assert snapshot.body in raw
    assert len(capture.frames) == len(raw) - 1
    stream, data = split_frame(raw[0])
    assert capture.frames[0].stream == stream and capture.frames[0].data == data


async def test_replay_serves_the_frames_in_order_and_the_recorded_snapshot() -> None:
    capture = load_capture(CRYPTOFEED)
    wanted = "sushiusdt@depth@100ms"
    expected = [frame.data for frame in capture.frames if frame.stream == wanted]
    config = SimConfig(replay=CRYPTOFEED, speed=0)
    # Depth and trades are on routes of their own, as on the exchange; each replay
    # starts at its first subscriber, so each route gets a replay of its own.
    async with SimExchange(config) as sim, aiohttp.ClientSession() as session:
        url = f"{sim.ws_base_url}/market/stream?streams=sushiusdt@aggTrade"
        async with session.ws_connect(url) as ws:
            trades = 0
            async with asyncio.timeout(10):
                while trades < 40:
                    message = await ws.receive()
                    assert split_frame(message.data.encode())[0] == "sushiusdt@aggTrade"
                    trades += 1
    async with SimExchange(config) as sim, aiohttp.ClientSession() as session:
        url = f"{sim.ws_base_url}/public/stream?streams={wanted}/sushiusdt@aggTrade"
        async with session.ws_connect(url) as ws:
            received: list[bytes] = []
            async with asyncio.timeout(10):
                while len(received) < len(expected):
                    message = await ws.receive()
                    stream, data = split_frame(message.data.encode())
                    assert stream == wanted  # no trade on /public
                    received.append(data)
            assert received == expected
        async with session.get(
            f"{sim.rest_base_url}/fapi/v1/depth", params={"symbol": "SUSHIUSDT", "limit": 1000}
        ) as response:
            recorded = next(s for s in capture.snapshots if s.symbol == "SUSHIUSDT")
            assert await response.read() == recorded.body


async def test_replayed_stream_rebuilds_a_book_from_the_replayed_snapshot() -> None:
    config = SimConfig(replay=HFTBACKTEST, speed=0)
    async with SimExchange(config) as sim, aiohttp.ClientSession() as session:
        url = f"{sim.ws_base_url}/public/stream?streams=ethusdt@depth@0ms"
        async with session.ws_connect(url) as ws:
            first = await receive_json(ws)
            async with session.get(
                f"{sim.rest_base_url}/fapi/v1/depth", params={"symbol": "ETHUSDT", "limit": 100}
            ) as response:
                snapshot = await response.json()
            assert snapshot["lastUpdateId"] == 5123107856276 and len(snapshot["bids"]) == 100
            book = ClientBook(snapshot)
            applied = book.apply(first["data"])
            for _ in range(300):
                applied += book.apply((await receive_json(ws))["data"])
            assert applied >= 290  # the pu chain held across the whole replay
            bids, asks = book.sides()
            assert bids[0][0] < asks[0][0]


async def test_replay_keeps_the_recorded_pace() -> None:
    capture = load_capture(CRYPTOFEED)
    wanted = "akrousdt@aggTrade"
    stamps = [frame.recv_ns for frame in capture.frames if frame.stream == wanted]
    speed = 40.0
    recorded_span = (stamps[-1] - capture.frames[0].recv_ns) / 1e9 / speed
    async with SimExchange(SimConfig(replay=CRYPTOFEED, speed=speed)) as sim:
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(f"{sim.ws_base_url}/market/stream") as ws:
                loop = asyncio.get_running_loop()
                start = loop.time()
                await ws.send_json({"method": "SUBSCRIBE", "params": [wanted], "id": 1})
                assert await receive_json(ws) == {"result": None, "id": 1}
                for _ in stamps:
                    assert (await receive_json(ws))["data"]["e"] == "aggTrade"
                elapsed = loop.time() - start
    assert recorded_span * 0.8 <= elapsed <= recorded_span + 1.0
