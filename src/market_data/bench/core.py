"""``market-data bench core``: decode + sync + apply speed and book memory.

Measured on pre-encoded frames, in one process, against a plain baseline in
the same run (orjson + ``sortedcontainers.SortedDict`` applying the same
frames), because these machines are noisy and only ratios travel well.

Workloads: (a) one symbol, ~20 level changes per frame on a ~1000-level book;
(b) the same over 100 symbols; (c) the real ETHUSDT capture in ``tests/data``.
"""

import argparse
import gc
import random
import time
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec

from market_data.binance.decode import decode_depth, decode_snapshot
from market_data.binance.schemas import DepthSnapshot
from market_data.capture import read_capture
from market_data.core.sync import DepthSync

ETH_CAPTURE = Path(__file__).resolve().parents[3] / "tests" / "data"
ETH_CAPTURE = ETH_CAPTURE / "hftbacktest_usdm_ethusdt_20240808.gz"

_encode = msgspec.json.Encoder().encode


@dataclass
class Workload:
    """Pre-encoded frames plus the snapshot each symbol starts from."""

    name: str
    frames: list[bytes]
    snapshots: dict[str, bytes]
    level_changes: int


def synthetic(symbols: int, frames_per_symbol: int, levels: int = 1000, seed: int = 7) -> Workload:
    """Random-walk-free but realistic diffs: most changes near the top of a deep book."""
    rng = random.Random(seed)
    names = [f"SYM{i:03d}USDT" for i in range(symbols)]
    books = {}
    snapshots = {}
    last_u = {}
    for name in names:
        bids = {10_000 - i: rng.randint(1, 5000) for i in range(1, levels + 1)}
        asks = {10_000 + i: rng.randint(1, 5000) for i in range(1, levels + 1)}
        books[name] = (bids, asks)
        last_u[name] = 1_000_000
        snapshots[name] = _encode(
            {
                "lastUpdateId": 1_000_000,
                "bids": [
                    [f"{p / 100:.2f}", f"{q / 1000:.3f}"] for p, q in sorted(bids.items())[::-1]
                ],
                "asks": [[f"{p / 100:.2f}", f"{q / 1000:.3f}"] for p, q in sorted(asks.items())],
            }
        )
    frames = []
    changes = 0
    next_id = 1_000_001
    for i in range(frames_per_symbol * symbols):
        name = names[i % symbols]
        bids, asks = books[name]
        sides: tuple[list[list[str]], list[list[str]]] = ([], [])
        for k in range(20):
            is_bid = k % 2 == 0
            book = bids if is_bid else asks
            depth = min(int(rng.expovariate(1 / 40)) + 1, levels + 50)
            tick = 10_000 - depth if is_bid else 10_000 + depth
            qty = 0 if rng.random() < 0.15 else rng.randint(1, 5000)
            if qty:
                book[tick] = qty
            else:
                book.pop(tick, None)
            sides[0 if is_bid else 1].append([f"{tick / 100:.2f}", f"{qty / 1000:.3f}"])
        changes += 20
        first, next_id = next_id, next_id + rng.randint(1, 5)
        frames.append(
            _encode(
                {
                    "stream": f"{name.lower()}@depth@100ms",
                    "data": {
                        "e": "depthUpdate",
                        "E": 1_700_000_000_000 + i,
                        "T": 1_700_000_000_000 + i,
                        "s": name,
                        "U": first,
                        "u": next_id,
                        "pu": last_u[name],
                        "b": sides[0],
                        "a": sides[1],
                    },
                }
            )
        )
        last_u[name] = next_id
        next_id += rng.randint(1, 3)
    name = f"(a) 1 symbol, 20 changes/frame, {levels} lv/side"
    if symbols > 1:
        name = f"(b) {symbols} symbols, 20 changes/frame, {levels} lv/side"
    return Workload(name, frames, snapshots, changes)


def eth_capture(path: Path = ETH_CAPTURE) -> Workload:
    """The real capture's depth frames from its snapshot on."""
    frames: list[bytes] = []
    snapshot = b""
    for item in read_capture(path):
        if item.is_snapshot:
            snapshot = item.body
        elif b"@depth" in item.body[:40]:
            frames.append(item.body)
    last_id = decode_snapshot(snapshot).lastUpdateId
    kept = []
    changes = 0
    for raw in frames:
        data = decode_depth(raw)
        if data.u >= last_id:
            kept.append(raw)
            changes += len(data.b) + len(data.a)
    return Workload("(c) real ETHUSDT @depth@0ms capture", kept, {"ETHUSDT": snapshot}, changes)


# --------------------------------------------------------------------- runners

Step = Callable[[bytes], object]


def project_runner(work: Workload, top_n: int) -> Step:
    """decode -> sync -> apply (and optionally read the top N), as the service does."""
    syncs: dict[str, DepthSync] = {}
    for name, snapshot in work.snapshots.items():
        sync = DepthSync(name)
        syncs[name] = sync
        first = work.frames[
            [i for i, f in enumerate(work.frames) if name.lower().encode() in f[:30]][0]
        ]
        sync.on_depth(decode_depth(first))
        sync.on_snapshot(decode_snapshot(snapshot))
        sync.drain()
        assert sync.is_live, name
    get = syncs.__getitem__

    if top_n:

        def step_top(raw: bytes) -> object:
            data = decode_depth(raw)
            sync = get(data.s)
            sync.on_depth(data)
            return sync.book.top(top_n)

        return step_top

    def step(raw: bytes) -> object:
        data = decode_depth(raw)
        return get(data.s).on_depth(data)

    return step


def baseline_runner(work: Workload, top_n: int) -> Step:
    """orjson + SortedDict keyed by float price, with the same pu continuity check."""
    import orjson
    from sortedcontainers import SortedDict

    books: dict[str, tuple[SortedDict, SortedDict, list[int]]] = {}
    for name, snapshot in work.snapshots.items():
        snap = orjson.loads(snapshot)
        bids = SortedDict({float(p): float(q) for p, q in snap["bids"]})
        asks = SortedDict({float(p): float(q) for p, q in snap["asks"]})
        books[name] = (bids, asks, [snap["lastUpdateId"]])
    loads: Callable[[bytes], Any] = orjson.loads

    def step(raw: bytes) -> object:
        data = loads(raw)["data"]
        bids, asks, last = books[data["s"]]
        if data["pu"] != last[0] and data["u"] > last[0]:
            pass  # the project's runner re-syncs; the synthetic streams never gap
        last[0] = data["u"]
        for side, levels in ((bids, data["b"]), (asks, data["a"])):
            for p, q in levels:
                price = float(p)
                qty = float(q)
                if qty:
                    side[price] = qty
                else:
                    side.pop(price, None)
        if top_n:
            n = len(bids)
            return (
                [bids.peekitem(n - 1 - i) for i in range(min(top_n, n))],
                [asks.peekitem(i) for i in range(min(top_n, len(asks)))],
            )
        return None

    return step


@dataclass
class Result:
    rate: float  # messages per second, untimed loop
    p50: float  # μs per message
    p99: float
    p999: float


def measure(make: Callable[[Workload, int], Step], work: Workload, top_n: int) -> Result:
    """Throughput from an untimed loop, then latency percentiles from a timed one."""
    step = make(work, top_n)
    frames = work.frames
    half = len(frames) // 2
    for raw in frames[: min(2000, half)]:  # warm up on the first frames
        step(raw)
    gc.collect()
    gc.disable()
    try:
        rest = frames[min(2000, half) :]
        split = len(rest) // 2
        start = time.perf_counter()
        for raw in rest[:split]:
            step(raw)
        rate = split / (time.perf_counter() - start)
        clock = time.perf_counter_ns
        samples: list[int] = []
        append = samples.append
        for raw in rest[split:]:
            t0 = clock()
            step(raw)
            append(clock() - t0)
    finally:
        gc.enable()
    samples.sort()
    n = len(samples)

    def pct(q: float) -> float:
        return samples[min(n - 1, int(q * n))] / 1000.0

    return Result(rate, pct(0.50), pct(0.99), pct(0.999))


def book_memory(levels: int = 1000, buffer_events: int = 1000) -> tuple[int, int]:
    """Bytes for one live symbol with ``levels`` per side, and for a full sync buffer."""
    work = synthetic(1, buffer_events + 1, levels=levels, seed=3)
    decoded = []
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        sync = DepthSync("SYM000USDT", max_buffer=buffer_events + 10)
        snap: DepthSnapshot = decode_snapshot(work.snapshots["SYM000USDT"])
        sync.on_depth(decode_depth(work.frames[0]))
        sync.on_snapshot(snap)
        del snap
        book_bytes = tracemalloc.get_traced_memory()[0] - base
        base = tracemalloc.get_traced_memory()[0]
        for raw in work.frames[1 : buffer_events + 1]:
            decoded.append(decode_depth(raw))
        buffer_bytes = tracemalloc.get_traced_memory()[0] - base
    finally:
        tracemalloc.stop()
    assert sync.is_live
    return book_bytes, buffer_bytes


def run_bench(frames: int = 100_000, capture: Path = ETH_CAPTURE) -> Iterator[str]:
    """The report, one line at a time as each measurement completes."""
    yield f"building workloads: {frames:,} synthetic frames, and the capture {capture} ..."
    workloads = [synthetic(1, frames), synthetic(100, max(frames // 100, 100))]
    if capture.is_file():
        workloads.append(eth_capture(capture))
    else:
        yield f"(c) skipped: no capture at {capture} (run from a source checkout, or --capture)"
    header = (
        f"{'workload':<44} {'runner':<30} {'msg/s':>10} {'p50 μs':>8} {'p99 μs':>8} {'p999 μs':>9}"
    )
    yield header
    for work in workloads:
        for top_n in (0, 20):
            label = "decode+sync+apply" + ("+top20" if top_n else "")
            ours = measure(project_runner, work, top_n)
            base = measure(baseline_runner, work, top_n)
            for name, r in (("ours " + label, ours), ("baseline " + label, base)):
                yield (
                    f"{work.name[:44]:<44} {name:<30}"
                    f" {r.rate:>10,.0f} {r.p50:>8.2f} {r.p99:>8.2f} {r.p999:>9.2f}"
                )
            extra = ""
            if "capture" in work.name:
                per_frame = work.level_changes / len(work.frames)
                extra = f", {ours.rate * per_frame:,.0f} level updates/s ({per_frame:.0f}/frame)"
            yield f"{'':<44} ratio ours/baseline: {ours.rate / base.rate:.2f}x{extra}"
    book_bytes, buffer_bytes = book_memory()
    yield (
        f"memory: one live symbol, 1000 levels/side: {book_bytes / 1e6:.2f} MB;"
        f" full sync buffer (1000 events x 20 changes): {buffer_bytes / 1e6:.2f} MB;"
        f" total {(book_bytes + buffer_bytes) / 1e6:.2f} MB per symbol"
    )


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--frames", type=int, default=100_000, help="synthetic frames (100000)")
    parser.add_argument(
        "--capture",
        type=Path,
        default=ETH_CAPTURE,
        help="hftbacktest-format capture for workload (c) (tests/data's ETHUSDT one)",
    )


def run(args: argparse.Namespace) -> int:
    for line in run_bench(args.frames, args.capture):
        print(line, flush=True)
    return 0
