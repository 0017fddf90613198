"""Run the whole service in-process against the simulator and a real Redis."""

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio.cluster import ClusterPubSub

from market_data.outputs.redis_client import redis_client
from market_data.service.app import App
from market_data.sim.exchange import SimConfig, SimExchange
from market_data.sim.truth import book_matches_truth as book_matches_truth
from tests.support import service_config


@dataclass
class Received:
    """What a Redis subscriber saw, per channel kind and symbol."""

    books: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    trades: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    market: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))

    def live_books(self, symbol: str) -> list[dict[str, Any]]:
        return [b for b in self.books[symbol] if b["initialized"]]


async def subscribe(
    url: str, received: Received, ready: asyncio.Event, symbols: tuple[str, ...] = ()
) -> None:
    """Collect every message; on a cluster (sharded pub/sub) those of ``symbols``."""
    client = redis_client(url)
    pubsub = client.pubsub()
    try:
        if isinstance(pubsub, ClusterPubSub):  # no pattern subscriptions for shard channels
            await client.initialize()
            channels = [f"{kind}:{s}" for s in symbols for kind in ("orderbook", "trades")]
            await pubsub.ssubscribe(*channels, *(f"market_data:{s}" for s in symbols))
            next_message: Callable[..., Awaitable[dict[str, Any] | None]]
            next_message = pubsub.get_sharded_message
        else:
            await pubsub.psubscribe("orderbook:*", "trades:*", "market_data:*")
            next_message = pubsub.get_message
        ready.set()
        while True:
            msg = await next_message(ignore_subscribe_messages=True, timeout=0.2)
            if msg is None:
                continue
            channel = msg["channel"].decode()
            kind, _, symbol = channel.partition(":")
            payload = json.loads(msg["data"])
            {
                "orderbook": received.books,
                "trades": received.trades,
                "market_data": received.market,
            }[kind][symbol].append(payload)
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call]
        await client.aclose()


@contextlib.asynccontextmanager
async def running_service(
    redis_url: str,
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT"),
    *,
    sim_config: SimConfig | None = None,
    sim: SimExchange | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[App, SimExchange, Received]]:
    """The service on a simulator (a new one, or ``sim`` if given), with a subscriber."""
    async with contextlib.AsyncExitStack() as stack:
        if sim is None:
            sim_cfg = sim_config or SimConfig(
                symbols=list(symbols), diff_rate_hz=40, trade_rate_hz=10
            )
            sim = await stack.enter_async_context(SimExchange(sim_cfg))
        config = service_config(sim, redis_url, symbols, **overrides)
        received = Received()
        ready = asyncio.Event()
        subscriber = asyncio.create_task(subscribe(redis_url, received, ready, symbols))
        await asyncio.wait_for(ready.wait(), 5)
        app = App(config)
        shutdown = asyncio.Event()
        task = asyncio.create_task(app.run(shutdown))
        try:
            yield app, sim, received
        finally:
            shutdown.set()
            await asyncio.wait_for(task, 10)
            subscriber.cancel()
            # A subscriber whose Redis was killed on purpose ends with an error: fine here.
            await asyncio.gather(subscriber, return_exceptions=True)
