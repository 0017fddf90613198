"""``market-data bench e2e``: exchange -> service -> Redis -> subscriber, measured end to end.

For each scenario (symbols x total diff frames/s) the benchmark process runs
the load generator (``loadgen.py``: pre-built frames written straight to the
socket) and a lean Redis subscriber (``PSUBSCRIBE orderbook:*``, hiredis); the
service runs in its own process (``workers.worker_main``, one App, or N shards
with ``--workers``), so its CPU and RSS are its own and it has a core the load
generator does not use. A real redis-server (embedded) sits in between.

Latency: the load generator stamps every frame with ``time.monotonic_ns()``
when it writes it; the subscriber, in the same process, maps the published
``last_update_id`` back to the frame that carried it. Two figures:

- *book*: newest update in each delivered book, send -> subscriber receive;
- *update*: every update, send -> receive of the first book that includes it
  (conflated updates waited for a later publish, so this is the stricter one).

Conflation: the service publishes a symbol's book once per event-loop pass, so
under load one publish covers several frames; "updates/s" counts the exchange
updates the delivered books covered, "books/s" the publishes.

Baseline, same run, same frames: a plain aiohttp client that decodes each frame
with orjson and ``await redis.publish(...)`` the raw frame, one await per
message (redis-py). It checks nothing (no sequence, no book): it is the floor
of "just forward it", not an equivalent service.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import platform
import signal
import sys
import time
import uuid
from array import array
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import SpawnProcess
from typing import Any, cast

import hiredis
import msgspec
import psutil

from market_data.embedded_redis import EmbeddedRedis
from market_data.ops.config import Config
from market_data.service.supervisor import shard_configs, worker_main
from market_data.sim.loadgen import LoadGenerator, PacedRun, build_frames, frame_index

DEPTH_STREAM = "depth@100ms"
DEFAULT_SYMBOL_COUNTS = (1, 10, 100)
DEFAULT_RATES = (1_000, 10_000)
_SETTLE_TIMEOUT_S = 30.0
_DRAIN_TIMEOUT_S = 5.0
_STOP_TIMEOUT_S = 15.0
_SYMBOL_NAMES = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "DOGEUSDT")


def bench_symbols(count: int) -> list[str]:
    """``count`` valid symbol names: real ones first, then synthetic ``SYM0006USDT``..."""
    names = list(_SYMBOL_NAMES[:count])
    names.extend(f"SYM{i:04d}USDT" for i in range(len(names), count))
    return names


# ----------------------------------------------------------------- what arrives


class _ServiceBook(msgspec.Struct):
    symbol: str
    last_update_id: int
    initialized: bool


class _RawDiff(msgspec.Struct):
    s: str
    u: int


class _RawFrame(msgspec.Struct):
    data: _RawDiff


_service_decoder = msgspec.json.Decoder(_ServiceBook)
_raw_decoder = msgspec.json.Decoder(_RawFrame)


def _decode_service(payload: bytes) -> tuple[str, int, bool]:
    book = _service_decoder.decode(payload)
    return book.symbol, book.last_update_id, book.initialized


def _decode_raw(payload: bytes) -> tuple[str, int, bool]:
    frame = _raw_decoder.decode(payload)
    return frame.data.s, frame.data.u, True


class BookTracker:
    """Turns published books into coverage, sequence and latency figures."""

    def __init__(
        self, generator: LoadGenerator, decode: Callable[[bytes], tuple[str, int, bool]]
    ) -> None:
        self.generator = generator
        self.decode = decode
        self.send_ns = {symbol: generator.send_ns(symbol) for symbol in generator.feeds}
        self.last_index = dict.fromkeys(generator.feeds, -1)
        self.measuring = False
        self.publishes = 0
        self.covered = 0
        self.not_live = 0
        self.repeats = 0
        self.book_latency_ns = array("q")
        self.update_latency_ns = array("q")

    def on_message(self, payload: bytes, received_ns: int) -> None:
        symbol, last_update_id, live = self.decode(payload)
        if not live:
            self.not_live += self.measuring
            return
        index = frame_index(last_update_id)
        last = self.last_index.get(symbol)
        if last is None or index <= last:
            self.repeats += self.measuring
            return
        self.last_index[symbol] = index
        if not self.measuring:
            return
        self.publishes += 1
        self.covered += index - last
        sent = self.send_ns[symbol]
        if sent[index]:
            self.book_latency_ns.append(received_ns - sent[index])
        append = self.update_latency_ns.append
        for covered in range(last + 1, index + 1):
            if sent[covered]:
                append(received_ns - sent[covered])

    def behind(self) -> int:
        """Updates sent but not yet covered by a delivered book, over all symbols."""
        generator = self.generator
        return sum(
            max(0, generator.last_sent_index(symbol) - index)
            for symbol, index in self.last_index.items()
        )

    def primed(self) -> bool:
        return all(index >= 0 for index in self.last_index.values())


class _Subscriber(asyncio.Protocol):
    """PSUBSCRIBE over a raw socket, replies parsed by hiredis: cheap enough not to skew."""

    def __init__(self, on_message: Callable[[bytes, int], None]) -> None:
        self.on_message = on_message
        self.reader = hiredis.Reader()
        self.subscribed = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        pattern = b"orderbook:*"
        self.transport.write(b"*2\r\n$10\r\nPSUBSCRIBE\r\n$%d\r\n%s\r\n" % (len(pattern), pattern))

    def data_received(self, data: bytes) -> None:
        received_ns = time.monotonic_ns()
        reader = self.reader
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if not isinstance(reply, list):
                continue
            kind = reply[0]
            if kind == b"pmessage":
                self.on_message(reply[3], received_ns)
            elif kind == b"psubscribe" and not self.subscribed.done():
                self.subscribed.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.subscribed.done():
            self.subscribed.set_exception(ConnectionError("Redis closed the subscription"))


@contextlib.asynccontextmanager
async def _subscribed(port: int, on_message: Callable[[bytes, int], None]) -> Any:
    loop = asyncio.get_running_loop()
    protocol = _Subscriber(on_message)
    transport, _ = await loop.create_connection(lambda: protocol, "127.0.0.1", port)
    try:
        await asyncio.wait_for(protocol.subscribed, 5.0)
        yield protocol
    finally:
        transport.close()


# ------------------------------------------------------------- the baseline


def baseline_main(ws_url: str, redis_url: str) -> None:
    """Process entry point: receive frames, publish each raw frame with one await each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import uvloop

    uvloop.run(_baseline(ws_url, redis_url))


async def _baseline(ws_url: str, redis_url: str) -> None:
    import aiohttp
    import orjson
    import redis.asyncio as aioredis

    shutdown = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, shutdown.set)
    client = aioredis.from_url(redis_url)

    async def forward(ws: aiohttp.ClientWebSocketResponse) -> None:
        async for message in ws:
            if message.type is not aiohttp.WSMsgType.TEXT:
                continue
            symbol = orjson.loads(message.data)["data"]["s"]
            await client.publish(f"orderbook:{symbol}", message.data)

    try:
        async with (
            aiohttp.ClientSession() as session,
            session.ws_connect(ws_url, compress=0, max_msg_size=16 << 20) as ws,
        ):
            task = asyncio.create_task(forward(ws))
            await shutdown.wait()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await client.aclose()


# ------------------------------------------------------------- one measured run


@dataclasses.dataclass(frozen=True)
class RunResult:
    """Figures of one pipeline on one scenario."""

    pipeline: str  # "service" or "baseline"
    symbols: int
    target_rate: float
    paced: PacedRun
    publishes: int
    covered: int
    behind: int
    not_live: int
    drain_s: float
    book_latency_ns: array[int]
    update_latency_ns: array[int]
    cpu_percent: float
    rss_bytes: int
    #: The part of ``cpu_percent`` spent in the service's child processes (history).
    children_cpu_percent: float
    driver_cpu_percent: float  # this process: load generator + subscriber
    redis_cpu_percent: float
    report: dict[str, int] | None  # the service's own counters (None for the baseline)

    @property
    def offered_rate(self) -> float:
        return self.paced.sent / self.paced.elapsed_s

    @property
    def delivered_rate(self) -> float:
        return self.publishes / self.paced.elapsed_s

    @property
    def covered_rate(self) -> float:
        return self.covered / self.paced.elapsed_s

    @property
    def gaps(self) -> int | None:
        return None if self.report is None else self.report["gaps"]

    @property
    def resets(self) -> int | None:
        return None if self.report is None else self.report["resets"]

    @property
    def cpu_us_per_frame(self) -> float:
        """The service's CPU time per frame sent: the cost per message.

        ``cpu_percent`` is over the whole window, the paced sending and the drain
        after it, so the CPU time is that share of both (nan: no frame was sent).
        """
        if not self.paced.sent:
            return float("nan")
        window_s = self.paced.elapsed_s + self.drain_s
        return self.cpu_percent / 100.0 * window_s / self.paced.sent * 1e6

    def book_percentile_ms(self, q: float) -> float:
        return _percentile_ms(self.book_latency_ns, q)

    def update_percentile_ms(self, q: float) -> float:
        return _percentile_ms(self.update_latency_ns, q)


def _percentile_ms(samples: array[int], q: float) -> float:
    if not samples:
        return float("nan")
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6


#: A request-weight budget no run reaches (see :func:`_service_config`).
_UNLIMITED_WEIGHT = 1_000_000


def _service_config(
    symbols: list[str], generator: LoadGenerator, redis_url: str, health_port: int = 0
) -> Config:
    return Config(
        symbols=tuple(symbols),
        exchange_ws_url=generator.ws_base_url,
        exchange_rest_url=generator.rest_base_url,
        redis_url=redis_url,
        depth_stream=DEPTH_STREAM,
        health_port=health_port,
        shm_name=f"market_data_bench_{uuid.uuid4().hex[:8]}",
        silence_timeout_s=3600.0,  # trade streams get no frames here
        reconnect_delay_ms=100,
        # The load generator counts no request weight: the client-side budget would spread
        # 100 snapshots of weight 20 beside 100 klines requests of weight 10 over minutes.
        rest_weight_budget_per_minute=_UNLIMITED_WEIGHT,
    )


def _start(target: Callable[..., None], args: tuple[Any, ...]) -> SpawnProcess:
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


async def _stop(process: SpawnProcess, report: Connection | None) -> dict[str, int] | None:
    """SIGTERM, then wait without blocking the loop (the load generator must answer closes)."""
    process.terminate()
    await asyncio.to_thread(process.join, _STOP_TIMEOUT_S)
    if process.is_alive():
        process.kill()
    process.join()
    received: dict[str, int] | None = None
    if report is not None:
        with contextlib.suppress(EOFError, OSError):
            if report.poll(0):
                received = report.recv()
        report.close()
    return received


def _cpu_seconds(processes: list[psutil.Process]) -> float:
    return sum(sum(p.cpu_times()[:2]) for p in processes)


async def _wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.005)


async def measure(
    pipeline: str,
    symbol_count: int,
    rate_hz: float,
    seconds: float,
    redis: EmbeddedRedis,
    workers: int = 1,
    *,
    health_port: int = 0,
    during: Callable[[], contextlib.AbstractAsyncContextManager[object]] | None = None,
    overrides: dict[str, Any] | None = None,
    snapshot_levels: int = 200,
    log_level: str = "ERROR",
    warm_s: float = 0.0,
) -> RunResult:
    """Run one pipeline ("service" or "baseline") on one scenario and return its figures.

    ``during`` (if given) is entered once the service is primed and left after the
    measured window: load beside the feed, such as open web pages (``bench ui``).
    ``overrides`` changes the service's configuration (``bench history``: recording on).
    ``snapshot_levels`` per side is the depth of every book, ``log_level`` the
    service's: ERROR by default, since the load generator serves no klines and
    no exchangeInfo and every symbol would warn of it (what a run must show,
    gaps and resets, comes in the service's report). ``warm_s`` seconds of the same load run before
    the measured window, unmeasured (``bench history``: the files and folders a
    running service already has are made then).
    """
    import multiprocessing

    symbols = bench_symbols(symbol_count)
    per_symbol = int(rate_hz / symbol_count * (seconds + warm_s) * 1.2) + 16
    frames = build_frames(
        symbols, per_symbol, depth_stream=DEPTH_STREAM, snapshot_levels=snapshot_levels
    )
    async with LoadGenerator(frames) as generator:
        decode = _decode_service if pipeline == "service" else _decode_raw
        tracker = BookTracker(generator, decode)
        async with _subscribed(redis.port, tracker.on_message):
            started: list[tuple[SpawnProcess, Connection | None]] = []
            reports: list[dict[str, int] | None] = []
            beside = contextlib.AsyncExitStack()
            try:
                if pipeline == "service":
                    config = _service_config(symbols, generator, redis.url, health_port)
                    if overrides:
                        config = config.with_overrides(**overrides)
                    for shard in shard_configs(config, workers):
                        receiver, sender = multiprocessing.get_context("spawn").Pipe(duplex=False)
                        started.append((_start(worker_main, (shard, sender, log_level)), receiver))
                        sender.close()
                else:
                    streams = "/".join(f"{s.lower()}@{DEPTH_STREAM}" for s in symbols)
                    url = f"{generator.ws_base_url}/public/stream?streams={streams}"
                    started.append((_start(baseline_main, (url, redis.url)), None))
                await generator.wait_connected(_SETTLE_TIMEOUT_S)
                generator.prime()
                await _wait_until(
                    tracker.primed, _SETTLE_TIMEOUT_S, "the first book of every symbol"
                )
                if warm_s:
                    await generator.run_paced(rate_hz, warm_s)
                    with contextlib.suppress(TimeoutError):
                        await _wait_until(lambda: tracker.behind() == 0, _DRAIN_TIMEOUT_S, "drain")
                if during is not None:
                    await beside.enter_async_context(during())
                watched = [psutil.Process(process.pid) for process, _ in started]
                # A service's own child processes count as the service (history stores).
                children = [c for w in watched for c in w.children(recursive=True)]
                watched += children
                driver = [psutil.Process()]
                redis_process = [psutil.Process(redis.pid)] if redis.pid is not None else []
                cpu_before, children_before = _cpu_seconds(watched), _cpu_seconds(children)
                driver_before, redis_before = _cpu_seconds(driver), _cpu_seconds(redis_process)
                began = time.monotonic()
                tracker.measuring = True
                paced = await generator.run_paced(rate_hz, seconds)
                paced_end = time.monotonic()
                with contextlib.suppress(TimeoutError):
                    await _wait_until(lambda: tracker.behind() == 0, _DRAIN_TIMEOUT_S, "drain")
                ended = time.monotonic()
                window = ended - began
                cpu_percent = 100.0 * (_cpu_seconds(watched) - cpu_before) / window
                children_percent = 100.0 * (_cpu_seconds(children) - children_before) / window
                driver_percent = 100.0 * (_cpu_seconds(driver) - driver_before) / window
                redis_percent = 100.0 * (_cpu_seconds(redis_process) - redis_before) / window
                rss = sum(p.memory_info().rss for p in watched)
                tracker.measuring = False
            finally:
                await beside.aclose()
                for child, report in started:
                    reports.append(await _stop(child, report))
    return RunResult(
        pipeline=pipeline,
        symbols=symbol_count,
        target_rate=rate_hz,
        paced=paced,
        publishes=tracker.publishes,
        covered=tracker.covered,
        behind=tracker.behind(),
        not_live=tracker.not_live,
        drain_s=ended - paced_end,
        book_latency_ns=tracker.book_latency_ns,
        update_latency_ns=tracker.update_latency_ns,
        cpu_percent=cpu_percent,
        children_cpu_percent=children_percent,
        rss_bytes=rss,
        driver_cpu_percent=driver_percent,
        redis_cpu_percent=redis_percent,
        report=_merge_reports(reports) if pipeline == "service" else None,
    )


def _merge_reports(reports: list[dict[str, int] | None]) -> dict[str, int]:
    """Sum the workers' counters; a worker that sent nothing makes every figure suspect."""
    merged: dict[str, int] = {"missing_reports": 0}
    for report in reports:
        if report is None:
            merged["missing_reports"] += 1
            continue
        for name, value in report.items():
            merged[name] = merged.get(name, 0) + value
    merged.setdefault("gaps", 0)
    merged.setdefault("resets", 0)
    return merged


# ------------------------------------------------------------------- output

_HEADER = (
    f"{'symbols':>7} {'target/s':>8}  {'pipeline':<9} {'offered/s':>9} {'books/s':>8} "
    f"{'updates/s':>9} {'books/upd':>9} {'behind':>6} {'gaps':>4} {'resets':>6}  "
    f"{'book p50':>8} {'p99':>6} {'p99.9':>6}  {'upd p50':>7} {'p99':>6} {'p99.9':>6}  "
    f"{'CPU%':>5} {'RSS MB':>6}  {'drv%':>4} {'redis%':>6}"
)


def format_row(result: RunResult) -> str:
    def count(value: int | None) -> str:
        return "-" if value is None else str(value)

    ratio = result.publishes / result.covered if result.covered else float("nan")
    return (
        f"{result.symbols:>7} {result.target_rate:>8.0f}  {result.pipeline:<9} "
        f"{result.offered_rate:>9.0f} {result.delivered_rate:>8.0f} {result.covered_rate:>9.0f} "
        f"{ratio:>9.2f} {result.behind:>6} {count(result.gaps):>4} {count(result.resets):>6}  "
        f"{result.book_percentile_ms(0.5):>8.2f} {result.book_percentile_ms(0.99):>6.2f} "
        f"{result.book_percentile_ms(0.999):>6.2f}  "
        f"{result.update_percentile_ms(0.5):>7.2f} {result.update_percentile_ms(0.99):>6.2f} "
        f"{result.update_percentile_ms(0.999):>6.2f}  "
        f"{result.cpu_percent:>5.0f} {result.rss_bytes / 2**20:>6.0f}  "
        f"{result.driver_cpu_percent:>4.0f} {result.redis_cpu_percent:>6.0f}"
    )


def format_notes(result: RunResult) -> list[str]:
    """Anything that makes a row need a second look."""
    notes: list[str] = []
    where = f"{result.symbols} symbols @ {result.target_rate:.0f}/s {result.pipeline}"
    if result.paced.throttled:
        notes.append(
            f"{where}: {result.paced.throttled} frames not offered (its socket buffer was full)"
        )
    if result.paced.exhausted:
        notes.append(f"{where}: {result.paced.exhausted} frames not offered (pre-built ran out)")
    if result.behind:
        notes.append(f"{where}: {result.behind} updates still undelivered after the drain wait")
    if result.not_live:
        notes.append(f"{where}: {result.not_live} books published as not live")
    report = result.report
    if report is not None:
        odd = {
            k: report.get(k, 0)
            for k in ("missing_reports", "crossed", "buffer_overflows", "malformed", "redis_errors")
        }
        odd = {k: v for k, v in odd.items() if v}
        if odd:
            notes.append(f"{where}: {odd}")
    return notes


#: The cost per message aimed at: CPU per frame at 100 symbols x 10k frames/s in all
#: (every frame a publication) and the send -> subscriber p99 there.
COST_TARGET_US = 20.0
COST_TARGET_P99_MS = 1.0


def target_lines(results: list[RunResult]) -> list[str]:
    """The targets, judged on the service rows."""
    lines: list[str] = []
    service = [r for r in results if r.pipeline == "service"]
    loss_runs = [r for r in service if r.symbols >= 100 and r.target_rate >= 1_000]
    if loss_runs:
        clean = all(
            r.gaps == 0 and r.resets == 0 and r.behind == 0 and r.covered == r.paced.sent
            for r in loss_runs
        )
        detail = ", ".join(
            f"{r.target_rate:.0f}/s: covered {r.covered}/{r.paced.sent}, gaps {r.gaps}, "
            f"resets {r.resets}"
            for r in loss_runs
        )
        verdict = "met" if clean else "NOT met"
        lines.append(
            f"target 100 symbols x 1,000 msg/s without sequence loss: {verdict} ({detail})"
        )
    fast_runs = [r for r in service if r.target_rate == 10_000]
    if fast_runs:
        worst = max(r.update_percentile_ms(0.99) for r in fast_runs)
        detail = ", ".join(
            f"{r.symbols} sym: book p99 {r.book_percentile_ms(0.99):.2f} ms, "
            f"update p99 {r.update_percentile_ms(0.99):.2f} ms"
            for r in fast_runs
        )
        verdict = "met" if worst <= 2.0 else "NOT met"
        lines.append(f"target p99 <= 2 ms at 10k msg/s: {verdict} ({detail})")
    cost_runs = [r for r in fast_runs if r.symbols >= 100]
    for r in cost_runs:
        cost, p99 = r.cpu_us_per_frame, r.update_percentile_ms(0.99)
        met = cost <= COST_TARGET_US and p99 <= COST_TARGET_P99_MS
        lines.append(
            f"target cost per message at {r.symbols} symbols x 10k msg/s: <= "
            f"{COST_TARGET_US:g} μs of CPU per frame and p99 <= {COST_TARGET_P99_MS:g} ms: "
            f"{'met' if met else 'NOT met'} ({cost:.1f} μs per frame, p99 {p99:.2f} ms)"
        )
    return lines


# ------------------------------------------------------------------- command


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=5.0, help="seconds per scenario (5)")
    parser.add_argument(
        "--symbols",
        default=",".join(map(str, DEFAULT_SYMBOL_COUNTS)),
        help="symbol counts, comma separated (1,10,100)",
    )
    parser.add_argument(
        "--rates",
        default=",".join(map(str, DEFAULT_RATES)),
        help="total diff frames/s over all symbols, comma separated (1000,10000)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="service worker processes, symbols sharded (1)"
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the baseline rows")


def _counts(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def _redis_version(redis: EmbeddedRedis) -> str:
    import subprocess

    from market_data.embedded_redis import find_redis_server

    try:
        out = subprocess.run(
            [find_redis_server(), "--version"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return "?"
    for word in out.stdout.split():
        if word.startswith("v="):
            return word[2:]
    return "?"


async def run_all(
    symbol_counts: list[int],
    rates: list[float],
    seconds: float,
    workers: int,
    baseline: bool,
    redis: EmbeddedRedis,
    emit: Callable[[str], None],
) -> list[RunResult]:
    """Every scenario, service then baseline, each row printed as soon as it is measured."""
    results: list[RunResult] = []
    emit(_HEADER)
    for count in symbol_counts:
        for rate in rates:
            pipelines = ["service", "baseline"] if baseline else ["service"]
            for pipeline in pipelines:
                result = await measure(pipeline, count, rate, seconds, redis, workers)
                results.append(result)
                emit(format_row(result))
    return results


def run(args: argparse.Namespace) -> int:
    seconds: float = args.seconds
    symbol_counts = _counts(getattr(args, "symbols", ",".join(map(str, DEFAULT_SYMBOL_COUNTS))))
    rates = [float(r) for r in _counts(getattr(args, "rates", ",".join(map(str, DEFAULT_RATES))))]
    workers: int = getattr(args, "workers", 1)
    baseline = not getattr(args, "no_baseline", False)

    def emit(line: str) -> None:
        print(line, flush=True)

    with EmbeddedRedis() as redis:
        sample = build_frames(["BTCUSDT"], 1, depth_stream=DEPTH_STREAM)["BTCUSDT"]
        emit(
            f"market-data bench e2e: load generator -> service ({workers} worker process"
            f"{'es' if workers > 1 else ''}) -> redis-server {_redis_version(redis)} -> "
            f"subscriber; {seconds:g} s per row"
        )
        emit(
            f"machine: {os.cpu_count()} cores, Python {platform.python_version()}; "
            f"diff frames ~{sample.payload_bytes} B (5 bid + 5 ask changes), "
            f"rate = total over all symbols, round-robin"
        )
        emit("")

        async def main() -> list[RunResult]:
            return await run_all(symbol_counts, rates, seconds, workers, baseline, redis, emit)

        try:
            import uvloop
        except ImportError:  # pragma: no cover - other platforms
            results = asyncio.run(main())
        else:
            results = uvloop.run(main())
    emit("")
    emit(
        "books/s: book publishes received; updates/s: exchange updates those books covered "
        "(conflation: one publish per"
    )
    emit(
        "  event-loop pass covers every frame read in it, so books/upd < 1 under load); "
        "behind: updates not delivered"
    )
    emit(
        "  after the drain wait; gaps/resets: the service's own counters (the baseline checks "
        "nothing: '-');"
    )
    emit(
        "  latency in ms from the load generator's write to the subscriber's read: book = newest "
        "update of each"
    )
    emit(
        "  delivered book, upd = every update until a book including it arrives; CPU% of one core "
        "and RSS of the"
    )
    emit(
        "  service (or baseline) process(es) over the measured window; drv%: the load generator "
        "+ subscriber"
    )
    emit("  (this process), redis%: redis-server, same window (2 cores are shared by all three).")
    for result in results:
        for note in format_notes(result):
            emit(f"note: {note}")
    for line in target_lines(results):
        emit(line)
    return 0


if __name__ == "__main__":  # pragma: no cover
    parser = argparse.ArgumentParser(prog="python -m market_data.bench.e2e")
    configure_parser(parser)
    sys.exit(run(parser.parse_args()))
