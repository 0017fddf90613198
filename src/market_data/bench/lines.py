"""``market-data bench lines``: one feed line against two (A/B), on a jittery simulator.

The service runs in-process on the simulator with ``--jitter`` ms of random
extra delay on every frame of every connection, independently. For 1 and for 2
lines it measures:

- arrival latency of every applied depth event: local apply time minus the
  exchange's event time ``E`` (the first arrival of two jittered lines should
  cut the tail);
- ``--kills`` random kills of one depth line under load, each once every line
  is back and delivering: book resets and non-live publications (with 1 line
  each kill is a resync; with 2, none).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from dataclasses import dataclass

from market_data.core.state import BookState
from market_data.ops.config import Config
from market_data.outputs.sinks import BookUpdate, MemorySink
from market_data.service.engine import MarketDataService
from market_data.service.feed import FeedConnection
from market_data.sim.exchange import SimConfig, SimExchange

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass
class LinesResult:
    lines: int
    latencies_ms: list[float]
    kills: int
    resets: int
    non_live_publications: int

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def _caught_up(lines: list[FeedConnection], margin_s: float) -> bool:
    """Every line back and delivering past the jitter (kills are apart, not overlapping)."""
    return all(c.connected and c.last_message_at > c.opened_at + margin_s for c in lines)


async def measure(lines: int, jitter_ms: float, seconds: float, kills: int) -> LinesResult:
    sim_config = SimConfig(
        list(SYMBOLS), diff_rate_hz=50, trade_rate_hz=5, line_jitter_ms=jitter_ms
    )
    async with SimExchange(sim_config) as sim:
        config = Config(
            symbols=SYMBOLS,
            exchange_ws_url=sim.ws_base_url,
            exchange_rest_url=sim.rest_base_url,
            health_port=0,
            shm_enabled=False,
            reconnect_delay_ms=20,
            max_reconnect_delay_ms=100,
            feed_lines=lines,
            book_refresh_interval_s=0,
        )
        sink = MemorySink()
        service = MarketDataService(config, [sink])
        latencies: list[float] = []
        for state in service.symbols.values():
            state.sync.on_applied = lambda ev: latencies.append(time.time() * 1000 - ev.E)
        shutdown = asyncio.Event()
        task = asyncio.create_task(service.run(shutdown))
        states = list(service.symbols.values())
        while not all(s.state is BookState.LIVE for s in states):  # noqa: ASYNC110 (no event)
            await asyncio.sleep(0.05)
        latencies.clear()
        await asyncio.sleep(seconds)
        measured = list(latencies)
        start = len(sink.updates)
        resets_before = sum(s.sync.resets for s in states)
        rng = random.Random(1)
        for _ in range(kills):
            public = [c for c in sim.connection_ids if sim.connection_route(c) == "/public"]
            if public:
                sim.disconnect(rng.choice(public))
            await asyncio.sleep(0.02 + rng.random() * 0.03)
            depth = [c for c in service.connections if c.plan.carries_depth]
            while not _caught_up(depth, jitter_ms / 1000):  # noqa: ASYNC110 (no event for it)
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.5)
        non_live = sum(
            1
            for u in sink.updates[start:]
            if isinstance(u, BookUpdate) and u.state is not BookState.LIVE
        )
        resets = sum(s.sync.resets for s in states) - resets_before
        shutdown.set()
        await asyncio.wait_for(task, 10)
    return LinesResult(lines, measured, kills, resets, non_live)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--jitter", type=float, default=20.0, help="max extra ms per frame")
    parser.add_argument("--seconds", type=float, default=5.0, help="latency sample length")
    parser.add_argument("--kills", type=int, default=100, help="depth lines killed at random")


def run(args: argparse.Namespace) -> int:
    print(
        f"simulator: {len(SYMBOLS)} symbols x 50 diffs/s, up to {args.jitter:g} ms of random "
        f"delay per frame on each connection; {args.kills} random kills of a depth line"
    )
    print(f"{'lines':>5} {'events':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} "
          f"{'kills':>6} {'resets':>7} {'non-live books':>15}")  # fmt: skip
    for lines in (1, 2):
        result = asyncio.run(measure(lines, args.jitter, args.seconds, args.kills))
        print(
            f"{lines:>5} {len(result.latencies_ms):>7} {result.percentile(0.5):>7.1f} "
            f"{result.percentile(0.99):>7.1f} {max(result.latencies_ms, default=0):>7.1f} "
            f"{result.kills:>6} {result.resets:>7} {result.non_live_publications:>15}"
        )
    return 0
