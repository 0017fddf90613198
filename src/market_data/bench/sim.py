"""How many diff frames per second the simulated exchange pushes to one local client.

The client runs in its own process (aiohttp, counting text frames), so server and
client use one core each. Printed next to two baselines measured in the same run:
the market model alone (step + encode, no I/O), and a plain aiohttp server sending
one pre-encoded frame in a loop (the transport's ceiling on this machine).

Run: ``python -m market_data.bench.sim`` (or ``measure_emit_rate()`` from code).
"""

from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass

import msgspec
from aiohttp import WSMsgType, web

from market_data.sim.exchange import SimConfig, SimExchange
from market_data.sim.market import MarketConfig, SimMarket

_CLIENT = """
import asyncio, os, sys, time, aiohttp
async def main(url, seconds):
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, max_msg_size=0) as ws:
            await ws.receive()
            count, end = 0, time.perf_counter() + seconds
            while time.perf_counter() < end:
                message = await ws.receive()
                if message.type is not aiohttp.WSMsgType.TEXT:
                    break
                count += 1
            print(count / seconds, flush=True)
            os._exit(0)  # no close handshake: a sender that never reads would stall it
asyncio.run(main(sys.argv[1], float(sys.argv[2])))
"""


@dataclass(frozen=True)
class EmitRate:
    label: str
    target_per_s: float  # 0 when the sender is not paced
    received_per_s: float


async def _count_in_client(url: str, seconds: float) -> float:
    """Frames/s one aiohttp client in a child process receives from ``url``."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _CLIENT, url, str(seconds), stdout=asyncio.subprocess.PIPE
    )
    output, _ = await process.communicate()
    return float(output.decode().strip() or 0.0)


async def _measure_sim(rate: float, seconds: float, levels: int) -> float:
    config = SimConfig(
        symbols=["ETHUSDT"],
        diff_rate_hz=rate,
        trade_rate_hz=0.0,
        market=MarketConfig(levels_per_side=levels),
        max_queued_frames=10_000_000,
    )
    async with SimExchange(config) as sim:
        return await _count_in_client(f"{sim.ws_base_url}/stream?streams=ethusdt@depth", seconds)


async def _measure_plain_server(seconds: float) -> float:
    """Baseline: one pre-encoded ~1 KB frame sent as fast as aiohttp allows."""
    market = SimMarket(["ETHUSDT"], seed=1)
    frame = b'{"stream":"ethusdt@depth","data":%s}' % msgspec.json.encode(market.step("ETHUSDT", 0))

    async def handler(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        try:
            while not ws.closed:
                for _ in range(100):
                    await ws.send_frame(frame, WSMsgType.TEXT)
                await asyncio.sleep(0)
        except ConnectionError:
            pass
        return ws

    app = web.Application()
    app.router.add_get("/stream", handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        return await _count_in_client(f"ws://127.0.0.1:{port}/stream", seconds)
    finally:
        await runner.cleanup()


def measure_model_rate(steps: int = 20_000, levels: int = 1000) -> float:
    """Diffs/s the market model produces and encodes with no I/O at all."""
    market = SimMarket(["ETHUSDT"], seed=1, config=MarketConfig(levels_per_side=levels))
    encode = msgspec.json.Encoder().encode
    start = time.perf_counter()
    for step in range(steps):
        encode(market.step("ETHUSDT", step))
    return steps / (time.perf_counter() - start)


def measure_emit_rate(
    rates: tuple[float, ...] = (1_000.0, 5_000.0, 10_000.0, 20_000.0),
    seconds: float = 2.0,
    levels: int = 1000,
) -> list[EmitRate]:
    """Diff frames/s received by one local client, at several target rates."""

    async def run_all() -> list[EmitRate]:
        results = [EmitRate("plain aiohttp, one pre-encoded frame (baseline)", 0.0, 0.0)]
        results[0] = EmitRate(results[0].label, 0.0, await _measure_plain_server(seconds))
        for rate in rates:
            received = await _measure_sim(rate, seconds, levels)
            results.append(EmitRate("simulated exchange, live market", rate, received))
        return results

    return asyncio.run(run_all())


def main() -> None:
    model = measure_model_rate()
    print(f"market model alone (step + encode, 1000 levels): {model:,.0f} diffs/s")
    for result in measure_emit_rate():
        target = f"target {result.target_per_s:>8,.0f}/s" if result.target_per_s else " " * 17
        print(f"{result.label:<50} {target}  received {result.received_per_s:>9,.0f} frames/s")


if __name__ == "__main__":
    main()
