"""Example consumer: watch one symbol's book, trades and 24h figures from Redis.

    .venv/bin/python examples/consumer.py [--redis-url URL] [--symbol BTCUSDT] [--depth 10]
    .venv/bin/python examples/consumer.py --raw     # the JSON messages as published

The service publishes three channels per symbol: ``orderbook:{SYMBOL}``,
``market_data:{SYMBOL}`` (also stored under that key for 5 minutes) and
``trades:{SYMBOL}``. Without ``--raw`` this draws them with ``market_data.client.watch``
(a live view on a terminal, one line per second otherwise). Ctrl+C stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

from redis.asyncio.cluster import ClusterPubSub

from market_data.client.watch import watch
from market_data.outputs.redis_client import redis_client
from market_data.outputs.redis_url import redact_url


async def print_raw(redis_url: str, symbol: str, stop: asyncio.Event) -> None:
    """All a consumer needs without the view: subscribe and decode JSON.

    On a Redis Cluster (``redis+cluster://``) the service publishes with SPUBLISH,
    so this reads with SSUBSCRIBE, which redis-py sends to each channel's shard.
    """
    client = redis_client(redis_url)
    channels = (f"orderbook:{symbol}", f"market_data:{symbol}", f"trades:{symbol}")
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    if isinstance(pubsub, ClusterPubSub):
        await client.initialize()  # the slot map routes each SSUBSCRIBE
        await pubsub.ssubscribe(*channels)
        next_message = pubsub.get_sharded_message
    else:
        await pubsub.subscribe(*channels)
        next_message = pubsub.get_message  # type: ignore[assignment]
    try:
        while not stop.is_set():
            message = await next_message(timeout=0.5)
            if message is not None:  # data is JSON: json.loads(message["data"])
                print(message["channel"].decode(), message["data"].decode(), flush=True)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis-url", default="redis://localhost:6379/0")
    parser.add_argument("--symbol", default="BTCUSDT")
    parser.add_argument("--depth", type=int, default=10, help="book levels per side")
    parser.add_argument("--raw", action="store_true", help="print the JSON messages instead")
    args = parser.parse_args()
    symbol = args.symbol.upper()

    stop = asyncio.Event()  # Ctrl+C (or SIGTERM) ends the loop cleanly
    for signum in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)

    print(f"{symbol} from {redact_url(args.redis_url)} (Ctrl+C to stop)", file=sys.stderr)
    if args.raw:
        await print_raw(args.redis_url, symbol, stop)
    else:
        await watch(args.redis_url, symbol, depth=args.depth, stop=stop)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
