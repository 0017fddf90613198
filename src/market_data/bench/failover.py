"""Failover: how long consumers wait after the publisher is killed, with a standby and without.

One simulated exchange, one embedded redis-server, one subscriber, and real
``market-data run`` processes:

- ``standby``: two instances of one ``ha_group`` (lease ``--lease-ms``). The
  active one is killed with SIGKILL ``--kills`` times; the wait is from the
  kill to the first message of the new active's epoch at the subscriber. The
  killed instance is started again and stands by before the next kill.
- ``restart`` (the plain baseline): one instance without a standby, killed
  and started again at once ``--restarts`` times; the wait is from the kill to
  the first live book of the new process.

Over the whole run: trades lost (ids that never reached the subscriber) and
published twice, and live books that differ from the exchange's at their
update id (each checked against the simulator's own book).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from market_data.bench.processes import ServiceProcess
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig, SimExchange
from market_data.sim.truth import book_matches_truth

SYMBOL = "BTCUSDT"


@dataclass
class Seen:
    """What the subscriber got: (arrival, payload) of books and trades."""

    books: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    trades: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


async def _subscribe(url: str, seen: Seen, ready: asyncio.Event) -> None:
    client = aioredis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    try:
        await pubsub.subscribe(f"orderbook:{SYMBOL}", f"trades:{SYMBOL}")
        ready.set()
        while True:
            message = await pubsub.get_message(timeout=0.1)
            if message is None:
                continue
            kind = seen.books if message["channel"].startswith(b"orderbook") else seen.trades
            kind.append((time.monotonic(), json.loads(message["data"])))
    finally:
        await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
        await client.aclose()


async def _role(instance: ServiceProcess) -> str | None:
    answer = await instance.get("/ready")
    if answer is None:
        return None
    ha = json.loads(answer[1])["checks"].get("ha")
    return None if ha is None else str(ha["role"])


def _instance(sim: SimExchange, url: str, ha_group: str, lease_ms: int) -> ServiceProcess:
    return ServiceProcess(sim, url, SYMBOL, ha_group=ha_group, ha_lease_ms=lease_ms)


async def _until(what: str, within_s: float, check: Callable[[], Awaitable[bool]]) -> None:
    try:
        async with asyncio.timeout(within_s):
            while not await check():  # noqa: ASYNC110 (polls other processes and a feed)
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise RuntimeError(f"no {what} within {within_s:.0f}s") from None


async def _first_after(
    entries: list[tuple[float, dict[str, Any]]],
    since: float,
    wanted: Callable[[dict[str, Any]], bool],
    what: str,
    within_s: float = 60.0,
) -> float:
    """Arrival of the first entry after ``since`` that is ``wanted`` (polled)."""
    deadline = time.monotonic() + within_s
    seen_up_to = 0
    while time.monotonic() < deadline:
        for at, payload in entries[seen_up_to:]:
            if at > since and wanted(payload):
                return at
        seen_up_to = len(entries)
        await asyncio.sleep(0.01)
    raise RuntimeError(f"no {what} within {within_s:.0f}s")


async def _with_standby(
    sim: SimExchange, url: str, seen: Seen, kills: int, lease_ms: int
) -> list[float]:
    pair = [_instance(sim, url, "bench", lease_ms), _instance(sim, url, "bench", lease_ms)]
    waits: list[float] = []

    async def one_active_one_standby() -> bool:
        roles = [str(await _role(instance)) for instance in pair]
        return sorted(roles) == ["active", "standby"] and len(seen.trades) > 0

    try:
        for instance in pair:
            await instance.start()
        for _ in range(kills):
            await _until("active/standby pair", 60, one_active_one_standby)
            await asyncio.sleep(1.0)  # the standby's books are live by now
            roles = [await _role(instance) for instance in pair]
            victim = pair[roles.index("active")]
            old = max((trade.get("epoch", 0) for _, trade in seen.trades), default=0)
            killed_at = time.monotonic()
            await victim.kill()
            first = await _first_after(
                seen.trades, killed_at, functools.partial(_newer_epoch, old), "new active's trade"
            )
            waits.append(first - killed_at)
            await victim.start()
    finally:
        for instance in pair:
            await instance.stop()
    return waits


async def _restarting(sim: SimExchange, url: str, seen: Seen, restarts: int) -> list[float]:
    alone = _instance(sim, url, "", 1000)
    waits: list[float] = []
    try:
        await alone.start()
        started = time.monotonic()
        for _ in range(restarts):
            await _first_after(seen.books, started, _live, "live book")
            await asyncio.sleep(1.0)
            killed_at = time.monotonic()
            await alone.kill()
            await alone.start()
            first = await _first_after(seen.books, killed_at, _live, "live book after restart")
            waits.append(first - killed_at)
            started = killed_at
    finally:
        await alone.stop()
    return waits


def _newer_epoch(old: int, trade: dict[str, Any]) -> bool:
    return int(trade.get("epoch", 0)) > old


def _live(book: dict[str, Any]) -> bool:
    return bool(book["initialized"])


def _losses(trades: list[dict[str, Any]]) -> tuple[int, int]:
    """(ids never received between the first and last, ids received more than once)."""
    ids = [trade["trade_id"] for trade in trades]
    if not ids:
        return 0, 0
    unique = set(ids)
    return (max(ids) - min(ids) + 1) - len(unique), len(ids) - len(unique)


def _wrong_books(sim: SimExchange, seen: Seen) -> tuple[int, int]:
    """(live books checked, live books that differ from the exchange's)."""
    checked = wrong = 0
    for _, book in seen.books:
        if not book["initialized"]:
            continue
        try:
            problem = book_matches_truth(sim, book)
        except KeyError:  # older than the history the simulator keeps
            continue
        checked += 1
        wrong += problem is not None
    return checked, wrong


async def bench_failover(kills: int, restarts: int, lease_ms: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with EmbeddedRedis() as redis_server:
        config = SimConfig([SYMBOL], diff_rate_hz=20, trade_rate_hz=20)
        url = redis_server.url
        for name in ("standby", "restart"):
            async with SimExchange(config) as sim:
                seen, ready = Seen(), asyncio.Event()
                subscriber = asyncio.create_task(_subscribe(url, seen, ready))
                await asyncio.wait_for(ready.wait(), 5)
                try:
                    if name == "standby":
                        waits = await _with_standby(sim, url, seen, kills, lease_ms)
                    else:
                        waits = await _restarting(sim, url, seen, restarts)
                finally:
                    subscriber.cancel()
                    await asyncio.gather(subscriber, return_exceptions=True)
                lost, twice = _losses([trade for _, trade in seen.trades])
                checked, wrong = _wrong_books(sim, seen)
                results[name] = {
                    "waits": waits,
                    "lost": lost,
                    "twice": twice,
                    "books": checked,
                    "wrong": wrong,
                }
            await _flush(url)
    return results


async def _flush(url: str) -> None:
    client = aioredis.from_url(url)
    with contextlib.suppress(Exception):
        await client.flushall()
    await client.aclose()


def format_results(results: dict[str, Any], lease_ms: int) -> str:
    lines = [
        f"Failover after kill -9 of the publisher ({SYMBOL}, 20 trades/s), same run",
        f"  {'setup':<30} {'kills':>5} {'p50 s':>7} {'max s':>7} {'lost':>6} {'twice':>6}"
        f" {'books wrong':>12}",
    ]
    for name, label in (
        ("standby", f"active/standby, lease {lease_ms} ms"),
        ("restart", "restart, no standby (base)"),
    ):
        figures = results[name]
        waits = figures["waits"]
        lines.append(
            f"  {label:<30} {len(waits):>5} {statistics.median(waits):>7.2f} {max(waits):>7.2f}"
            f" {figures['lost']:>6} {figures['twice']:>6}"
            f" {figures['wrong']:>5} of {figures['books']:<5}"
        )
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``market-data bench failover``."""
    parser.add_argument("--kills", type=int, default=20, help="kills of the active (20)")
    parser.add_argument("--restarts", type=int, default=5, help="kills without a standby (5)")
    parser.add_argument("--lease-ms", type=int, default=1000, help="ha_lease_ms (1000)")


def run(args: argparse.Namespace) -> int:
    """Run both setups and print the figures."""
    results = asyncio.run(bench_failover(args.kills, args.restarts, args.lease_ms))
    print(format_results(results, args.lease_ms))
    return 0
