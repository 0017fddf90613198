"""``market-data bench history``: what recording + the Parquet store cost the service.

Two scenarios, each run with history off, with recording only and with
recording + Parquet (interleaved, ``--repeat`` times, medians): 10 symbols at
10,000 diff frames/s in all, and 100 symbols at 20 frames/s each. The runs are
``bench e2e``'s (``measure``: pre-built frames, the service in its own process,
a real Redis, update latency send -> subscriber receive); the history modes set
``recording_dir`` (and ``parquet_dir``) to fresh folders. Printed: the
service's CPU% (its history process included, and that process's share) and
RSS, update latency p99, recording and Parquet bytes per hour per symbol at
that rate (the load generator's frames repeat a few bodies, so they compress
better than real ones). Each run first runs ``--warm-up`` seconds of the same
load unmeasured, longer than ``parquet_flush_s``: the day's folders and the
hour's files are made then, as a running service made them long before (in a
6-second window at 100 symbols, making 400 folders and 100 files was a third of
the history process's samples). Then the row builder and the Parquet store alone in
this process: rows/s from the items the engine makes of the same frames.
"""

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from market_data.bench.e2e import RunResult, bench_symbols, measure
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.loadgen import build_frames

SCENARIOS = ((10, 10_000.0), (100, 2_000.0))
MODES = ("off", "recording", "recording+parquet")
#: Unmeasured seconds before each run: past ``parquet_flush_s`` (5 s), so that every
#: symbol's folders and files exist, as in a service that has been running.
WARM_S = 6.0


@dataclass
class Row:
    symbols: int
    rate: float
    mode: str  # "off", "recording", "recording+parquet"
    warm_s: float = 0.0  # seconds of load before each run: its files hold them too
    runs: list[RunResult] = field(default_factory=list)
    recorded_bytes: list[int] = field(default_factory=list)
    parquet_bytes: list[int] = field(default_factory=list)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu_percent for r in self.runs)

    @property
    def history_cpu(self) -> float:
        """The history process's part of :attr:`cpu`."""
        return statistics.median(r.children_cpu_percent for r in self.runs)

    @property
    def rss_mib(self) -> float:
        return statistics.median(r.rss_bytes for r in self.runs) / 2**20

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.update_percentile_ms(0.99) for r in self.runs)

    def per_hour_per_symbol(self, sizes: list[int]) -> float:
        """Bytes an hour of this rate writes per symbol (from the run's files and length)."""
        if not sizes:
            return 0.0
        spans = [self.warm_s + r.paced.elapsed_s for r in self.runs]
        return (
            statistics.median(s / t for s, t in zip(sizes, spans, strict=True))
            * 3600
            / self.symbols
        )


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


async def run_rows(
    seconds: float, repeat: int, redis: EmbeddedRedis, warm_s: float = 0.0
) -> list[Row]:
    rows = {(n, rate, m): Row(n, rate, m, warm_s) for n, rate in SCENARIOS for m in MODES}
    for _ in range(repeat):
        for (n, rate, mode), row in rows.items():
            with tempfile.TemporaryDirectory(prefix="bench-history-") as tmp:
                # 100 snapshots of 1000 levels would wait for the REST weight budget.
                overrides: dict[str, object] = {"snapshot_limit": 100}
                if mode != "off":
                    overrides["recording_dir"] = f"{tmp}/rec"
                if mode == "recording+parquet":
                    overrides["parquet_dir"] = f"{tmp}/pq"
                result = await measure(
                    "service",
                    n,
                    rate,
                    seconds,
                    redis,
                    overrides=overrides,
                    log_level="ERROR",
                    warm_s=warm_s,
                )
                row.runs.append(result)
                if mode != "off":
                    row.recorded_bytes.append(_size(Path(tmp) / "rec"))
                    row.parquet_bytes.append(_size(Path(tmp) / "pq"))
    return list(rows.values())


def parquet_rows_per_s(symbols: int, frames_per_symbol: int) -> tuple[int, float]:
    """The row builder and the store alone, in this process: (rows written, rows/s).

    The items are the engine's (the pipeline's ``book_rows`` hook on a sync fed the
    pre-built frames), made and encoded before the clock starts; the clock runs
    while they are decoded 256 items at a time and their rows taken every 2,560,
    as the history process does at 10,000 frames/s.
    """
    from market_data.binance.decode import decode_frame, decode_snapshot
    from market_data.core.sync import DepthSync
    from market_data.history.parquet import ParquetStore
    from market_data.history.pipeline import HistoryPipeline
    from market_data.history.schema.rows import RowBuilder
    from market_data.history.stores import RowFeed
    from market_data.history.worker import decode_items, encode_items, feed_rows
    from market_data.ops.config import Config

    built = build_frames(bench_symbols(symbols), frames_per_symbol, depth_stream="depth@100ms")
    pipeline = HistoryPipeline(
        Config().with_overrides(parquet_dir="unused"), queue_max=10**9, clock_ns=time.time_ns
    )
    syncs = {symbol: DepthSync(symbol) for symbol in built}
    for symbol, sync in syncs.items():
        sync.on_applied = pipeline.book_rows(symbol, sync)
    for symbol, frames in built.items():  # each first event asks for its snapshot
        syncs[symbol].on_depth(decode_frame(_payload(frames.frames[0]))[1])  # type: ignore[arg-type]
        syncs[symbol].on_snapshot(decode_snapshot(frames.snapshot))
    for index in range(1, frames_per_symbol):
        for symbol, frames in built.items():
            syncs[symbol].on_depth(decode_frame(_payload(frames.frames[index]))[1])  # type: ignore[arg-type]
    queued = list(pipeline._queue)
    batches = [encode_items(queued[i : i + 256]) for i in range(0, len(queued), 256)]
    with tempfile.TemporaryDirectory(prefix="bench-parquet-") as tmp:
        store = ParquetStore(tmp)
        feed = RowFeed(RowBuilder(), [store])
        started = time.perf_counter()
        for index, batch in enumerate(batches):  # as the history process reads them
            feed_rows(feed, decode_items(batch)[0])
            if index % 10 == 9:  # it takes the rows every ROWS_S: ~2,500 items at 10k/s
                feed.flush(time.time_ns())
        feed.close()
        elapsed = time.perf_counter() - started
    rows = sum(store.rows_written.values())
    return rows, rows / elapsed


def _payload(ws_frame: bytes) -> bytes:
    """The JSON inside an unmasked server WebSocket frame (``loadgen.ws_text_frame``)."""
    size = ws_frame[1] & 0x7F
    return ws_frame[2 + (2 if size == 126 else 8 if size == 127 else 0) :]


_HEADER = (
    f"{'symbols':>7} {'frames/s':>8} {'history':>17} {'CPU%':>6} {'of it hist':>10} {'RSS MiB':>8} "
    f"{'upd p99 ms':>10} {'rec MB/h/sym':>12} {'pq MB/h/sym':>11} {'gaps/resets':>11}"
)


def format_row(row: Row) -> str:
    gaps = sum(r.gaps or 0 for r in row.runs)
    resets = sum(r.resets or 0 for r in row.runs)
    rec = row.per_hour_per_symbol(row.recorded_bytes) / 1e6
    pq = row.per_hour_per_symbol(row.parquet_bytes) / 1e6
    return (
        f"{row.symbols:>7} {row.rate:>8.0f} {row.mode:>17} {row.cpu:>6.1f} "
        f"{row.history_cpu:>10.1f} {row.rss_mib:>8.1f} {row.p99_ms:>10.3f} {rec:>12.2f} "
        f"{pq:>11.2f} {f'{gaps}/{resets}':>11}"
    )


def target_lines(rows: list[Row]) -> list[str]:
    lines = []
    for n, rate in SCENARIOS:
        off = next(r for r in rows if (r.symbols, r.rate, r.mode) == (n, rate, "off"))
        for mode in MODES[1:]:
            on = next(r for r in rows if (r.symbols, r.rate, r.mode) == (n, rate, mode))
            cpu = on.cpu - off.cpu
            p99 = on.p99_ms - off.p99_ms
            verdict = "met" if cpu <= 15.0 and p99 <= 0.2 else "NOT met"
            cpu_pairs = paired(off, on, lambda r: r.cpu_percent)
            p99_pairs = paired(off, on, lambda r: r.update_percentile_ms(0.99))
            lines.append(
                f"target at {n} symbols x {rate / n:.0f}/s, {mode}: adds <= 15% CPU and "
                f"<= 0.2 ms p99: {verdict} (CPU {off.cpu:.1f}% -> {on.cpu:.1f}%, {cpu:+.1f}; "
                f"p99 {off.p99_ms:.3f} -> {on.p99_ms:.3f} ms, {p99:+.3f}; run by run: "
                f"CPU {cpu_pairs}, p99 {p99_pairs} ms)"
            )
    return lines


def paired(off: Row, on: Row, figure: Callable[[RunResult], float]) -> str:
    """The differences of the runs made one after the other (repeat k of each row), as
    "median (lowest..highest)": the machine's drift over a whole benchmark cancels out."""
    differences = [figure(b) - figure(a) for a, b in zip(off.runs, on.runs, strict=True)]
    low, high = min(differences), max(differences)
    return f"{statistics.median(differences):+.2f} ({low:+.2f}..{high:+.2f})"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per row, interleaved (3)")
    parser.add_argument(
        "--warm-up",
        type=float,
        default=WARM_S,
        help=f"seconds of unmeasured load before each run ({WARM_S:g})",
    )


def run(args: argparse.Namespace) -> int:
    with EmbeddedRedis() as redis:
        print(
            f"bench history: recording + Parquet off vs on, {args.seconds:g} s per run, "
            f"{args.repeat} runs per row (medians), each after {args.warm_up:g} s unmeasured",
            flush=True,
        )
        rows = asyncio.run(run_rows(args.seconds, args.repeat, redis, args.warm_up))
    print(_HEADER)
    for row in rows:
        print(format_row(row))
    for line in target_lines(rows):
        print(line)
    rows_written, rate = parquet_rows_per_s(10, 5_000)
    print(
        f"row builder + parquet store alone (this process): {rows_written:,} rows at "
        f"{rate:,.0f} rows/s"
    )
    return 0
