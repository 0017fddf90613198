"""``market-data bench growth`` on a tiny load: the table's figures are measured, not made up."""

from __future__ import annotations

import asyncio
import io

import redis.asyncio as aioredis
from rich.console import Console

from market_data.bench.growth import (
    Measured,
    Point,
    Scenario,
    extra_subscribers,
    run_all,
    scenarios,
    slope_lines,
    table,
)
from market_data.cli import build_parser
from market_data.embedded_redis import EmbeddedRedis
from tests.bench.runs import made_up_run


def test_series_vary_one_thing_each() -> None:
    planned = scenarios([1, 100], [1000, 5000], [1, 20], series_symbols=50)
    assert planned == [
        ("symbols", Scenario(1, 1000, 1)),
        ("symbols", Scenario(100, 1000, 1)),
        ("depth", Scenario(50, 1000, 1)),
        ("depth", Scenario(50, 5000, 1)),
        ("subscribers", Scenario(50, 1000, 1)),
        ("subscribers", Scenario(50, 1000, 20)),
    ]


def test_the_command_is_registered_with_its_options() -> None:
    argv = ["bench", "growth", "--rate", "100", "--depths", "10,20", "--seconds", "0.5"]
    args = build_parser(argv).parse_args(argv)
    assert (args.rate, args.depths, args.seconds, args.symbols) == (
        100.0,
        [10, 20],
        0.5,
        [1, 100, 500],
    )


async def test_depth_points_measure_cpu_rss_and_latency(redis_server: EmbeddedRedis) -> None:
    planned = [
        ("depth", Scenario(10, 1000, 1)),
        ("depth", Scenario(10, 5000, 1)),
        ("subscribers", Scenario(10, 1000, 1)),  # the first point again: measured once
    ]
    points = await run_all(planned, 500.0, 1.0, redis_server)
    shallow, deep, shared = points
    assert shared.runs[0] is shallow.runs[0] and shared.series == "subscribers"
    points = points[:2]
    for point in points:
        (measured,) = point.runs
        assert point.clean, measured.run
        assert 300 <= measured.frames <= 700
        assert 1.0 < point.cpu_us_per_frame < 100_000
        assert point.cpu_range == (point.cpu_us_per_frame, point.cpu_us_per_frame)
        assert 0 < point.books_per_frame <= 1.0
        assert 0 < point.p50_ms <= point.p99_ms
    # 10 books x 2 sides x 4000 more levels: megabytes, well above the noise.
    assert deep.rss_mb > shallow.rss_mb + 2
    out = io.StringIO()
    Console(file=out, width=200).print(table(points, 500.0))
    rendered = out.getvalue()
    for point in points:
        assert f"{point.cpu_us_per_frame:.1f}" in rendered and f"{point.rss_mb:.0f}" in rendered
    (line,) = slope_lines(points)
    assert line.startswith("depth 1,000 -> 5,000: CPU per frame")


async def test_extra_subscribers_are_subscribed_and_count_what_they_read(
    redis_server: EmbeddedRedis,
) -> None:
    received: list[int] = []
    expected = 3 * 20 * 100
    client = aioredis.from_url(redis_server.url)
    loop = asyncio.get_running_loop()
    try:
        async with extra_subscribers(redis_server.port, 3, received)() as read_so_far:
            for _ in range(20):
                assert await client.publish("orderbook:BTCUSDT", b"x" * 100) == 3
            deadline = loop.time() + 10.0  # a spawned child on a loaded machine may lag
            while (read := await read_so_far()) < expected:
                assert loop.time() < deadline, f"{read} of {expected} bytes read within 10 s"
                await asyncio.sleep(0.01)
    finally:
        await client.aclose()
    (total,) = received
    assert total >= expected


async def test_repeats_are_kept_and_the_point_shows_their_median(
    redis_server: EmbeddedRedis,
) -> None:
    (point,) = await run_all([("symbols", Scenario(2, 200, 1))], 400.0, 0.5, redis_server, 2)
    assert len(point.runs) == 2
    low, high = point.cpu_range
    assert 0 < low <= point.cpu_us_per_frame <= high
    assert point.cpu_us_per_frame == (low + high) / 2  # the median of two


def made_up_point(symbols: int, books_per_frame: float, cpu_us_per_frame: float) -> Point:
    """A point of 10,000 frames in 1 s (no drain): CPU % and publishes set to give these figures."""
    run = made_up_run(
        symbols=symbols,
        publishes=int(10_000 * books_per_frame),
        cpu_percent=cpu_us_per_frame,  # x 1 s / 10,000 frames = the figure in μs
    )
    return Point("symbols", Scenario(symbols, 1000, 1), (Measured(run, 0),))


def test_a_conflated_first_point_is_not_judged_and_the_same_work_is() -> None:
    points = [made_up_point(1, 0.2, 40.0), made_up_point(100, 1.0, 80.0)]
    points.append(made_up_point(500, 1.0, 95.0))
    assert points[0].cpu_us_per_frame == 40.0
    conflated, same_work = slope_lines(points)
    assert conflated.startswith("symbols 1 -> 500: CPU per frame 40.0 -> 95.0 μs (2.37x)")
    assert conflated.endswith("(more publishes per frame: the work per frame is not flat)")
    assert same_work.startswith("symbols 100 -> 500: CPU per frame 80.0 -> 95.0 μs (1.19x)")
    assert same_work.endswith("-> NOT flat (within 1.10x)")
    points[2] = made_up_point(500, 1.0, 84.0)
    assert slope_lines(points)[1].endswith("-> flat (within 1.10x)")
