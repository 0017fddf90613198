"""Soak: 1,000 forced disconnects of a feed line; does anything grow?

Two ``market-data run`` processes with ``feed_lines: 2``, each on its own
simulated exchange, the same symbols and traffic, for the same time: the
soaked one has a depth line cut ``--disconnects`` times (a random line, once
both are up again), the control one is left alone (the plain baseline: what
the same run costs without disconnects). Both are sampled from their own
``/metrics`` every ``--every`` disconnects: resident memory, open file
descriptors, asyncio tasks, book resyncs and whether every book is live.
"""

from __future__ import annotations

import argparse
import asyncio
import random
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

from market_data.bench.processes import ServiceProcess
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.exchange import SimConfig, SimExchange

SYMBOLS = ("BTCUSDT", "ETHUSDT")


@dataclass(frozen=True)
class Sample:
    disconnects: int
    rss_mb: float
    fds: int
    tasks: int
    resyncs: int
    live: bool


async def _sample(service: ServiceProcess, disconnects: int) -> Sample:
    answer = await service.get("/metrics")
    if answer is None or answer[0] != 200:
        raise RuntimeError(f"the service on port {service.port} does not answer /metrics")
    values: dict[str, float] = {}
    live = True
    for family in text_string_to_metric_families(answer[1].decode()):
        for sample in family.samples:
            name = sample.name
            if name == "orderbook_state" and sample.labels.get("state") == "live":
                live = live and sample.value == 1
            elif name in ("orderbook_resyncs_total",):
                values[name] = values.get(name, 0.0) + sample.value
            else:
                values[name] = sample.value
    return Sample(
        disconnects=disconnects,
        rss_mb=values["process_resident_memory_bytes"] / 2**20,
        fds=int(values["process_open_fds"]),
        tasks=int(values["asyncio_tasks"]),
        resyncs=int(values.get("orderbook_resyncs_total", 0)),
        live=live,
    )


async def _all_lines_up(sim: SimExchange, within_s: float = 30.0) -> list[int]:
    """The simulator's depth connections, once both lines of the service are there."""
    async with asyncio.timeout(within_s):
        while True:
            public = [cid for cid in sim.connection_ids if sim.connection_route(cid) == "/public"]
            if len(public) >= 2:
                return public
            await asyncio.sleep(0.01)


async def bench_soak(
    disconnects: int, every: int, seed: int = 7
) -> tuple[list[Sample], list[Sample]]:
    """(soaked samples, control samples), the first of each after warm-up."""
    rng = random.Random(seed)
    config = SimConfig(list(SYMBOLS), diff_rate_hz=20, trade_rate_hz=10)
    with EmbeddedRedis() as redis_server:
        async with SimExchange(config) as soaked_sim, SimExchange(config) as control_sim:
            soaked = ServiceProcess(soaked_sim, redis_server.url, ",".join(SYMBOLS), feed_lines=2)
            control = ServiceProcess(control_sim, redis_server.url, ",".join(SYMBOLS), feed_lines=2)
            try:
                for service in (soaked, control):
                    await service.start()
                await _all_lines_up(soaked_sim)
                await _all_lines_up(control_sim)
                await asyncio.sleep(2.0)  # warm-up: every book live, first caches filled
                soaked_samples = [await _sample(soaked, 0)]
                control_samples = [await _sample(control, 0)]
                for done in range(1, disconnects + 1):
                    soaked_sim.disconnect(rng.choice(await _all_lines_up(soaked_sim)))
                    await asyncio.sleep(0.05)
                    await _all_lines_up(soaked_sim)
                    await asyncio.sleep(0.05)  # the new line catches up before the next cut
                    if done % every == 0:
                        soaked_samples.append(await _sample(soaked, done))
                        control_samples.append(await _sample(control, 0))
            finally:
                for service in (soaked, control):
                    await service.stop()
    return soaked_samples, control_samples


def format_results(soaked: list[Sample], control: list[Sample]) -> str:
    lines = [
        "Soak: forced disconnects of a depth line, feed_lines 2, same run",
        f"  {'disconnects':>11}  {'RSS MB':>7} {'fds':>4} {'tasks':>5} {'resyncs':>7} {'live':>5}"
        f"   | control: {'RSS MB':>7} {'fds':>4} {'tasks':>5}",
    ]
    for one, base in zip(soaked, control, strict=True):
        lines.append(
            f"  {one.disconnects:>11}  {one.rss_mb:>7.1f} {one.fds:>4} {one.tasks:>5} "
            f"{one.resyncs:>7} {'yes' if one.live else 'NO':>5}   |          "
            f"{base.rss_mb:>7.1f} {base.fds:>4} {base.tasks:>5}"
        )
    warm, last = soaked[1] if len(soaked) > 2 else soaked[0], soaked[-1]
    base_growth = control[-1].rss_mb - (control[1] if len(control) > 2 else control[0]).rss_mb
    lines.append(
        f"  after warm-up: RSS {last.rss_mb - warm.rss_mb:+.1f} MB (control {base_growth:+.1f} MB),"
        f" fds {last.fds - warm.fds:+d}, tasks {last.tasks - warm.tasks:+d},"
        f" resyncs {last.resyncs - soaked[0].resyncs:+d}"
    )
    return "\n".join(lines)


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``market-data bench soak``."""
    parser.add_argument("--disconnects", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100, help="sample every N disconnects")


def run(args: argparse.Namespace) -> int:
    """Run the soak and print the samples."""
    soaked, control = asyncio.run(bench_soak(args.disconnects, args.every))
    print(format_results(soaked, control))
    return 0
