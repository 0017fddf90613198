"""Publishing throughput: the sink against plain redis-py, on one real redis-server.

Run ``python -m market_data.bench.redis`` (starts an embedded redis-server on a
free port) or pass ``--url``. Every variant sends the same PUBLISH commands with
the same payload in the same run, so the figures compare like with like:

- ``baseline``: one ``await redis.publish()`` per message (redis-py asyncio);
- ``pipeline``: redis-py asyncio pipeline (transaction=False), batches of 100;
- ``sink``: ``RedisSink.publish_trade`` (trades are not conflated, so every
  message is a command), enqueued in bursts like frames arriving, until Redis
  acknowledged all of them;
- ``enqueue``: the hot-path cost of one ``publish_book`` call, no I/O.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence

import redis.asyncio as aioredis

from market_data.embedded_redis import EmbeddedRedis
from market_data.outputs.redis import RedisSink

_CHANNEL = "trades:BENCHUSDT"
_PIPELINE_SIZE = 100
_BURST = 50  # messages enqueued between two yields to the event loop


async def _baseline(url: str, n: int, payload: bytes) -> float:
    async with aioredis.Redis.from_url(url) as client:
        started = time.perf_counter()
        for _ in range(n):
            await client.publish(_CHANNEL, payload)
        return n / (time.perf_counter() - started)


async def _pipeline(url: str, n: int, payload: bytes) -> float:
    async with aioredis.Redis.from_url(url) as client:
        started = time.perf_counter()
        for start in range(0, n, _PIPELINE_SIZE):
            pipe = client.pipeline(transaction=False)
            for _ in range(min(_PIPELINE_SIZE, n - start)):
                pipe.publish(_CHANNEL, payload)
            await pipe.execute()
        return n / (time.perf_counter() - started)


async def _wait_published(sink: RedisSink, n: int) -> None:
    while sink.stats.published_trades < n:  # noqa: ASYNC110 (stats have no event)
        await asyncio.sleep(0.0005)


async def _sink(url: str, n: int, payload: bytes, stream: bool = False) -> tuple[float, float]:
    """Trades/s through the sink (with the XADD to the trade stream or not), mean batch."""
    maxlen = 100_000 if stream else 0
    async with RedisSink(url, max_pending_trades=n, trade_stream_maxlen=maxlen) as sink:
        while not sink.connected:  # noqa: ASYNC110 (connection state has no event)
            await asyncio.sleep(0.001)
        started = time.perf_counter()
        for index in range(n):
            sink.publish_trade("BENCHUSDT", payload)
            if index % _BURST == 0:
                await asyncio.sleep(0)
        await asyncio.wait_for(_wait_published(sink, n), timeout=60)
        rate = n / (time.perf_counter() - started)
        batches = sink.stats.batches
        if sink.stats.dropped_trades or sink.stats.errors:
            raise RuntimeError(f"benchmark run was not clean: {sink.stats}")
    return rate, n / max(batches, 1)


def _enqueue_ns(n: int, payload: bytes) -> float:
    sink = RedisSink("redis://127.0.0.1:1/0")  # never started: measures the hot path alone
    symbols = [f"SYM{index}USDT" for index in range(16)]
    started = time.perf_counter()
    for index in range(n):
        sink.publish_book(symbols[index & 15], payload)
    return (time.perf_counter() - started) / n * 1e9


async def bench_publish(url: str, n: int, payload_bytes: int = 512) -> dict[str, float]:
    """Throughput figures (commands/s, except ``enqueue_ns`` and ``sink_mean_batch``)."""
    payload = b"x" * payload_bytes
    sink_rate, mean_batch = await _sink(url, n, payload)
    streamed_rate, _ = await _sink(url, n, payload, stream=True)
    return {
        "baseline_cmd_per_s": await _baseline(url, n, payload),
        "pipeline_cmd_per_s": await _pipeline(url, n, payload),
        "sink_cmd_per_s": sink_rate,
        "sink_streamed_trades_per_s": streamed_rate,
        "sink_mean_batch": mean_batch,
        "enqueue_ns": _enqueue_ns(max(n, 100_000), payload),
    }


def format_results(results: dict[str, float], n: int, payload_bytes: int) -> str:
    baseline = results["baseline_cmd_per_s"]
    lines = [
        f"Redis PUBLISH, {n} messages of {payload_bytes} B, one redis-server, same run",
        f"  baseline (await publish each) {baseline:>12,.0f} cmd/s   1.0x",
    ]
    for label, key in (
        ("redis-py pipeline of 100   ", "pipeline_cmd_per_s"),
        ("RedisSink (RESP + hiredis) ", "sink_cmd_per_s"),
    ):
        lines.append(f"  {label}   {results[key]:>12,.0f} cmd/s {results[key] / baseline:>6.1f}x")
    streamed = results["sink_streamed_trades_per_s"]
    lines.append(
        f"  RedisSink trades + XADD stream {streamed:>12,.0f} trades/s {streamed / baseline:>4.1f}x"
        f"  ({1e6 / streamed - 1e6 / results['sink_cmd_per_s']:+.2f} us per trade)"
    )
    lines.append(f"  sink mean batch size           {results['sink_mean_batch']:>12,.0f} commands")
    lines.append(f"  hot-path publish_book call     {results['enqueue_ns']:>12,.0f} ns")
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``market-data bench redis``."""
    parser.add_argument("--n", type=int, default=20_000, help="messages per variant")
    parser.add_argument("--payload-bytes", type=int, default=512)
    parser.add_argument("--url", help="an existing Redis (default: start an embedded one)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    configure_parser(parser)
    return run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Run with parsed options and print the figures."""
    if args.url:
        results = asyncio.run(bench_publish(args.url, args.n, args.payload_bytes))
    else:
        with EmbeddedRedis() as server:
            results = asyncio.run(bench_publish(server.url, args.n, args.payload_bytes))
    print(format_results(results, args.n, args.payload_bytes))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
