"""``market-data bench growth``: the service's CPU per frame and RSS as its load grows.

Every point is one run of ``bench e2e``'s pipeline (:func:`market_data.bench.e2e.measure`:
pre-built frames from the load generator, the service in its own process, a
real redis-server, the latency subscriber) at the same total rate, so only one
thing changes along a series:

- **symbols** 1 -> 100 -> 500, books 1000 levels per side;
- **depth** 1000 -> 5000 levels per side (``max_levels_per_side`` follows);
- **subscribers** 1 -> 20 on every book channel: the latency subscriber plus
  19 that read and discard, in a process of their own.

Per point: the service's CPU time over the measured window divided by the
frames sent (μs per frame), its RSS at the end of the window, books published
per frame, update latency p50/p99 and the service's gap and reset counters;
medians of ``--repeat`` runs, taken in rounds over all the scenarios so that
drift on a shared machine reaches every point alike, with the range of CPU per
frame over the repeats beside it. A point shared by two series (the same
symbols, depth and subscribers) is measured once and shown in both.

Where the work per frame is flat the CPU per frame must be too. Depth: the
diffs change levels near the top whatever the depth, so only memory should
grow. Subscribers: Redis does the fan-out, the service publishes once. Symbols:
at one symbol the service conflates (one publish covers every frame read in an
event-loop pass), at 100 or 500 every frame is for another symbol and gets a
publish of its own, so the work per frame is *not* flat there: books/frame is
printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import multiprocessing
import os
import platform
import statistics
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import TextIO, cast

from rich.console import Console
from rich.table import Table

from market_data.arg_types import positive_float
from market_data.bench.e2e import RunResult, measure
from market_data.embedded_redis import EmbeddedRedis

DEFAULT_RATE = 5_000.0
DEFAULT_SECONDS = 4.0
DEFAULT_SYMBOLS = (1, 100, 500)
DEFAULT_DEPTHS = (1000, 5000)
DEFAULT_SUBSCRIBERS = (1, 20)
DEFAULT_SERIES_SYMBOLS = 100  # symbols of the depth and subscriber series
DEFAULT_REPEAT = 3
BASE_DEPTH = 1000
#: Flat: the last point's CPU per frame within 10% of the first's (the repeats of one
#: point spread by about that much on a shared 2-core machine: see the range column).
FLAT_WITHIN = 1.10
_READY_TIMEOUT_S = 30.0


@dataclasses.dataclass(frozen=True)
class Scenario:
    """What one point runs: the series varies exactly one of these."""

    symbols: int
    depth: int
    subscribers: int


@dataclasses.dataclass(frozen=True)
class Measured:
    """One run of one scenario."""

    run: RunResult
    fanout_bytes: int  # what the extra subscribers received in the window

    @property
    def frames(self) -> int:
        return self.run.paced.sent

    @property
    def window_s(self) -> float:
        return self.run.paced.elapsed_s + self.run.drain_s

    @property
    def cpu_us_per_frame(self) -> float:
        """Service CPU time over the window, per frame sent (nan: no frame was sent)."""
        return self.run.cpu_us_per_frame

    @property
    def clean(self) -> bool:
        run = self.run
        return run.gaps == 0 and run.resets == 0 and run.behind == 0 and run.not_live == 0


@dataclasses.dataclass(frozen=True)
class Point:
    """One point of one series: the medians of its repeated runs."""

    series: str  # "symbols", "depth" or "subscribers"
    scenario: Scenario
    runs: tuple[Measured, ...]

    @property
    def value(self) -> int:
        return int(getattr(self.scenario, self.series))

    def _median(self, figure: Callable[[Measured], float]) -> float:
        return statistics.median(figure(m) for m in self.runs)

    @property
    def frames_per_s(self) -> float:
        return self._median(lambda m: m.run.offered_rate)

    @property
    def cpu_us_per_frame(self) -> float:
        return self._median(lambda m: m.cpu_us_per_frame)

    @property
    def cpu_range(self) -> tuple[float, float]:
        """Lowest and highest CPU per frame over the repeats: the noise to read a slope against."""
        values = [m.cpu_us_per_frame for m in self.runs]
        return min(values), max(values)

    @property
    def cpu_percent(self) -> float:
        return self._median(lambda m: m.run.cpu_percent)

    @property
    def books_per_frame(self) -> float:
        return self._median(lambda m: m.run.publishes / m.frames if m.frames else float("nan"))

    @property
    def rss_mb(self) -> float:
        return self._median(lambda m: m.run.rss_bytes / 2**20)

    @property
    def p50_ms(self) -> float:
        return self._median(lambda m: m.run.update_percentile_ms(0.5))

    @property
    def p99_ms(self) -> float:
        return self._median(lambda m: m.run.update_percentile_ms(0.99))

    @property
    def redis_percent(self) -> float:
        return self._median(lambda m: m.run.redis_cpu_percent)

    @property
    def fanout_mb_s(self) -> float:
        return self._median(lambda m: m.fanout_bytes / m.window_s / 2**20)

    @property
    def gaps(self) -> int:
        return sum(m.run.gaps or 0 for m in self.runs)

    @property
    def resets(self) -> int:
        return sum(m.run.resets or 0 for m in self.runs)

    @property
    def clean(self) -> bool:
        return all(m.clean for m in self.runs)


def scenarios(
    symbols: Sequence[int],
    depths: Sequence[int],
    subscribers: Sequence[int],
    series_symbols: int,
) -> list[tuple[str, Scenario]]:
    """The three series in order, as (series, scenario) pairs."""
    planned = [("symbols", Scenario(count, BASE_DEPTH, 1)) for count in symbols]
    planned += [("depth", Scenario(series_symbols, depth, 1)) for depth in depths]
    planned += [("subscribers", Scenario(series_symbols, BASE_DEPTH, n)) for n in subscribers]
    return planned


# ------------------------------------------------------------ extra subscribers


#: The bytes the extra subscribers read since they subscribed, asked of their process.
ReadSoFar = Callable[[], Awaitable[int]]


def subscribers_main(port: int, count: int, control: Connection) -> None:
    """Process entry point: ``count`` PSUBSCRIBE connections that read and discard."""
    asyncio.run(_discard(port, count, control))


class _Discarding(asyncio.Protocol):
    """Subscribed to every book channel; counts the bytes and parses nothing."""

    def __init__(self) -> None:
        self.received = 0
        self.subscribed = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        pattern = b"orderbook:*"
        message = b"*2\r\n$10\r\nPSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(pattern), pattern)
        cast(asyncio.Transport, transport).write(message)  # uvloop's is no subclass

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if not self.subscribed.done() and b"psubscribe" in data:
            self.subscribed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("Redis closed the subscription"))


async def _discard(port: int, count: int, control: Connection) -> None:
    loop = asyncio.get_running_loop()
    opened = [await loop.create_connection(_Discarding, "127.0.0.1", port) for _ in range(count)]
    await asyncio.wait_for(asyncio.gather(*(p.subscribed for _, p in opened)), 10.0)
    before = sum(p.received for _, p in opened)

    def read() -> int:
        return sum(p.received for _, p in opened) - before

    control.send("subscribed")
    while await asyncio.to_thread(control.recv) == "count":  # until "stop"
        control.send(read())
    control.send(read())
    for transport, _ in opened:
        transport.close()


async def _nothing_read() -> int:
    return 0


def extra_subscribers(
    port: int, count: int, received: list[int]
) -> Callable[[], contextlib.AbstractAsyncContextManager[ReadSoFar]]:
    """``count`` more subscribers for the measured window; their bytes end up in ``received``.

    Entered, it gives what they read so far, so a caller can wait for bytes still in flight.
    """

    @contextlib.asynccontextmanager
    async def subscribed() -> AsyncIterator[ReadSoFar]:
        if count <= 0:
            yield _nothing_read
            return
        context = multiprocessing.get_context("spawn")
        control, child_end = context.Pipe()
        process = context.Process(target=subscribers_main, args=(port, count, child_end))
        process.daemon = True
        process.start()
        child_end.close()

        async def read_so_far() -> int:
            control.send("count")
            if not await asyncio.to_thread(control.poll, _READY_TIMEOUT_S):
                raise TimeoutError(f"{count} subscribers did not tell what they read in time")
            read: int = control.recv()
            return read

        try:
            if not await asyncio.to_thread(control.poll, _READY_TIMEOUT_S):
                raise TimeoutError(f"{count} subscribers did not subscribe in time")
            control.recv()
            yield read_so_far
        finally:
            with contextlib.suppress(OSError, EOFError):
                control.send("stop")
                if await asyncio.to_thread(control.poll, 10.0):
                    received.append(control.recv())
            await asyncio.to_thread(process.join, 10.0)
            if process.is_alive():
                process.kill()
            control.close()

    return subscribed


# ------------------------------------------------------------------ measuring


async def measure_point(
    scenario: Scenario, rate: float, seconds: float, redis: EmbeddedRedis
) -> Measured:
    """One e2e run of the service for ``scenario``."""
    received: list[int] = []
    run = await measure(
        "service",
        scenario.symbols,
        rate,
        seconds,
        redis,
        during=extra_subscribers(redis.port, scenario.subscribers - 1, received),
        overrides={"max_levels_per_side": scenario.depth},
        snapshot_levels=scenario.depth,
        log_level="ERROR",
    )
    return Measured(run, sum(received))


async def run_all(
    planned: list[tuple[str, Scenario]],
    rate: float,
    seconds: float,
    redis: EmbeddedRedis,
    repeat: int = 1,
    progress: Callable[[str], None] = lambda line: None,
) -> list[Point]:
    """Every distinct scenario ``repeat`` times, in rounds (slow drift hits them all alike)."""
    distinct = list(dict.fromkeys(scenario for _, scenario in planned))
    measured: dict[Scenario, list[Measured]] = {scenario: [] for scenario in distinct}
    for round_ in range(repeat):
        for scenario in distinct:
            progress(
                f"round {round_ + 1}/{repeat}: {scenario.symbols} symbols, depth "
                f"{scenario.depth}, {scenario.subscribers} subscriber(s)"
            )
            measured[scenario].append(await measure_point(scenario, rate, seconds, redis))
    return [Point(series, scenario, tuple(measured[scenario])) for series, scenario in planned]


# ------------------------------------------------------------------- output

SERIES = ("symbols", "depth", "subscribers")


def table(points: list[Point], rate: float) -> Table:
    grid = Table(
        title=f"bench growth: the service at {rate:,.0f} frames/s in total (medians of "
        f"{len(points[0].runs) if points else 0} runs a point)",
        title_justify="left",
    )
    grid.add_column("series", no_wrap=True)
    for name in ("symbols", "depth", "subs", "frames/s", "books/frame", "CPU μs/frame (range)"):
        grid.add_column(name, justify="right", no_wrap=True)
    for name in ("CPU %", "RSS MB", "upd p50 ms", "p99 ms", "redis %", "fan-out MB/s", "gaps"):
        grid.add_column(name, justify="right", no_wrap=True)
    for index, point in enumerate(points):
        first_of_series = not index or points[index - 1].series != point.series
        if first_of_series and index:
            grid.add_section()
        low, high = point.cpu_range
        scenario = point.scenario
        grid.add_row(
            point.series if first_of_series else "",
            f"{scenario.symbols:,}",
            f"{scenario.depth:,}",
            f"{scenario.subscribers}",
            f"{point.frames_per_s:,.0f}",
            f"{point.books_per_frame:.2f}",
            f"{point.cpu_us_per_frame:.1f} ({low:.0f}-{high:.0f})",
            f"{point.cpu_percent:.0f}",
            f"{point.rss_mb:.0f}",
            f"{point.p50_ms:.2f}",
            f"{point.p99_ms:.2f}",
            f"{point.redis_percent:.0f}",
            f"{point.fanout_mb_s:.1f}",
            f"{point.gaps}/{point.resets}",
        )
    return grid


def same_work(a: Point, b: Point) -> bool:
    """Both points publish about as many books per frame: the work per frame compares."""
    return abs(a.books_per_frame - b.books_per_frame) <= 0.1 * max(b.books_per_frame, 1e-9)


def _slope(series: str, first: Point, last: Point) -> str:
    ratio = last.cpu_us_per_frame / first.cpu_us_per_frame
    line = (
        f"{series} {first.value:,} -> {last.value:,}: CPU per frame "
        f"{first.cpu_us_per_frame:.1f} -> {last.cpu_us_per_frame:.1f} μs ({ratio:.2f}x), "
        f"RSS {first.rss_mb:.0f} -> {last.rss_mb:.0f} MB, books per frame "
        f"{first.books_per_frame:.2f} -> {last.books_per_frame:.2f}"
    )
    if not same_work(first, last):
        return line + " (more publishes per frame: the work per frame is not flat)"
    verdict = "flat" if ratio <= FLAT_WITHIN else "NOT flat"
    return line + f" -> {verdict} (within {FLAT_WITHIN:.2f}x)"


def slope_lines(points: list[Point]) -> list[str]:
    """Per series: the last point against the first, and against the first doing the same work.

    With few symbols the service conflates (books per frame below 1), so the
    symbols series is judged from its first point that publishes as often as
    its last.
    """
    lines: list[str] = []
    for series in SERIES:
        chosen = [p for p in points if p.series == series]
        if len(chosen) < 2:
            continue
        first, last = chosen[0], chosen[-1]
        lines.append(_slope(series, first, last))
        comparable = next(p for p in chosen if same_work(p, last))
        if comparable is not first and comparable is not last:
            lines.append(_slope(series, comparable, last))
    for point in points:
        if not point.clean:
            lines.append(
                f"note: {point.series} {point.value}: gaps {point.gaps}, resets "
                f"{point.resets}, or books behind / not live in a run"
            )
    return lines


# ------------------------------------------------------------------- command


def _counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, comma separated: {text!r}")
    return counts


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``market-data bench growth``."""
    parser.add_argument(
        "--rate", type=positive_float, default=DEFAULT_RATE, help="total diff frames/s (5000)"
    )
    parser.add_argument(
        "--seconds",
        type=positive_float,
        default=DEFAULT_SECONDS,
        help="measured seconds a point (4)",
    )
    for flag, defaults, what in (
        ("--symbols", DEFAULT_SYMBOLS, "symbol counts of the symbols series"),
        ("--depths", DEFAULT_DEPTHS, "levels per side of the depth series"),
        ("--subscribers", DEFAULT_SUBSCRIBERS, "subscriber counts of the subscribers series"),
    ):
        parser.add_argument(
            flag,
            type=_counts,
            default=list(defaults),
            help=f"{what}, comma separated ({','.join(map(str, defaults))})",
        )
    parser.add_argument(
        "--repeat", type=int, default=DEFAULT_REPEAT, help="runs a point, medians shown (3)"
    )
    parser.add_argument(
        "--series-symbols",
        type=int,
        default=DEFAULT_SERIES_SYMBOLS,
        help="symbols in the depth and subscribers series (100)",
    )
    parser.add_argument(
        "--chart", metavar="PATH.svg", help="also draw the curves as an SVG picture there"
    )


def run_bench(args: argparse.Namespace, out: TextIO | None = None) -> list[Point]:
    """Measure every point, print the table and the slopes; return the points."""
    stream = out if out is not None else sys.stdout
    console = Console(file=stream, width=180)
    planned = scenarios(args.symbols, args.depths, args.subscribers, args.series_symbols)
    console.print(
        f"market-data bench growth: {len(set(s for _, s in planned))} scenarios x "
        f"{args.repeat} runs of {args.seconds:g} s at {args.rate:,.0f} frames/s; "
        f"{os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )

    def progress(line: str) -> None:
        console.print(line, style="dim")

    with EmbeddedRedis() as redis:

        async def main() -> list[Point]:
            return await run_all(planned, args.rate, args.seconds, redis, args.repeat, progress)

        try:
            import uvloop
        except ImportError:  # pragma: no cover - other platforms
            points = asyncio.run(main())
        else:
            points = uvloop.run(main())
    console.print(table(points, args.rate))
    console.print(
        "CPU μs/frame: the service process's CPU time over the window / frames sent; RSS at "
        "the window's end (the 64 MiB shared-memory ring included); books/frame: publishes per "
        "frame (below 1: conflated); upd: send -> subscriber of every update; fan-out: what the "
        "extra subscribers read; gaps: the service's gaps/resets."
    )
    for line in slope_lines(points):
        console.print(line)
    if args.chart:
        from market_data.bench.growth_chart import growth_svg

        Path(args.chart).write_text(growth_svg(points, args.rate), encoding="utf-8")
        console.print(f"chart: {args.chart}")
    return points


def run(args: argparse.Namespace) -> int:
    run_bench(args)
    return 0
