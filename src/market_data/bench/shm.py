"""``market-data bench shm``: shared-memory ring vs Redis pub/sub, writer -> reader process.

Measures, for 1 KB records (a 30 + 30 level book, 1032 bytes):

- one-way latency at a paced rate (default 10k records/s): the writer stamps
  each record with ``time.monotonic_ns()``, a busy-polling reader in another
  process subtracts it from its own ``monotonic_ns()`` once ``read()`` has
  returned the decoded record (CLOCK_MONOTONIC is shared by all processes);
- the maximum unpaced write rate, and what a reader in another process keeps
  up with (the rest it counts as missed);
- the same latency over Redis pub/sub (real redis-server, redis-py with
  hiredis on both ends): the baseline the ring replaces;
- the writer's own cost per book record (20 + 20 and 30 + 30 levels), against
  the straightforward encoding it replaced (three ``pack_into`` calls, the
  levels flattened through ``chain``) in the same run;
- the machine's floor: the same paced writer storing only its timestamp in
  one shared 8-byte word, the same busy-polling reader spinning on it. No
  shared-memory transport can beat this line; on a virtual machine its p99 is
  the host's scheduling jitter (timer ticks, steal), not code.

The writer paces itself by sleeping; the busy-polling reader spins on its
core. Where the OS allows, writer and reader are pinned to separate cores (a
spinning reader must own its core). 1 KB JSON records measure the ring's own
cost; 60-level books add encoding and decoding 120 floats in Python. On a
2-core machine shared with other work, preemption shows in p99.9: p99 and p99.9
are reported separately for that reason.
"""

from __future__ import annotations

import argparse
import mmap
import multiprocessing
import os
import struct
import sys
import tempfile
import time
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import chain
from multiprocessing.connection import Connection
from typing import Any

from market_data.client.shm import ShmRingReader
from market_data.outputs.shm import ShmRingWriter
from market_data.wire.ring import (
    HEAD_WORD,
    HEADER_SIZE,
    SLOT_OFF_LENGTH,
    SLOT_OFF_LOCAL_TS,
    BookRecord,
    RecordKind,
    RingHeader,
    RingWriter,
    book_body_size,
    encode_header,
    encode_symbol,
)

LEVELS_PER_SIDE = 30  # 48 + 24 + 60 * 16 = 1032 bytes per record
REDIS_PAYLOAD_SIZE = 1024
_READY_TIMEOUT_S = 30.0
_MODE_LABELS = {
    "json": "1 KB JSON, busy-poll",
    "busy": "60-level book, busy-poll",
    "raw": "60-level book, no decode",
    "sleep": "60-level book, sleeping",
}
_WRITER_CORE, _READER_CORE = 0, 1


def _pin(core: int) -> set[int] | None:
    """Pin this process to ``core`` (writer and reader each get a core of their own).

    Returns the previous set to restore, or None where pinning is not possible.
    """
    if not hasattr(os, "sched_setaffinity") or (os.cpu_count() or 1) < 2:
        return None
    previous = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, {core})
    except OSError:
        return None
    return previous


def _unpin(previous: set[int] | None) -> None:
    if previous is not None:
        os.sched_setaffinity(0, previous)


@dataclass(frozen=True)
class LatencyResult:
    """One-way latency figures, in microseconds."""

    transport: str
    sent: int
    received: int
    missed: int
    p50_us: float
    p99_us: float
    p999_us: float
    max_us: float

    def line(self) -> str:
        return (
            f"{self.transport:<42} {self.received:>7}/{self.sent:<7} missed {self.missed:<5} "
            f"p50 {self.p50_us:8.1f}  p99 {self.p99_us:8.1f}  p99.9 {self.p999_us:8.1f}  "
            f"max {self.max_us:9.1f} μs"
        )


@dataclass(frozen=True)
class ThroughputResult:
    """Unpaced write rate and what one reader in another process received."""

    kind: str
    written: int
    write_rate: float
    received: int
    missed: int
    read_rate: float

    def line(self) -> str:
        return (
            f"{self.kind:<42} write {self.write_rate / 1e3:8.0f}k rec/s   "
            f"reader got {self.received}/{self.written} ({self.read_rate / 1e3:.0f}k rec/s), "
            f"missed {self.missed}"
        )


@dataclass(frozen=True)
class WriteCostResult:
    """CPU time of one book write in the writer, against the encoding it replaced."""

    levels_per_side: int
    record_bytes: int
    write_us: float
    baseline_us: float

    def line(self) -> str:
        return (
            f"{f'book write, {self.levels_per_side} + {self.levels_per_side} levels':<42} "
            f"{self.write_us:5.2f} μs per record   baseline (3 packs, levels through chain) "
            f"{self.baseline_us:5.2f} μs   ({self.baseline_us / self.write_us:.1f}x), "
            f"{self.record_bytes} B"
        )


Result = LatencyResult | ThroughputResult | WriteCostResult


def percentiles(samples_ns: Sequence[int]) -> tuple[float, float, float, float]:
    """p50, p99, p99.9 and max of nanosecond samples, in microseconds."""
    if not samples_ns:
        return (float("nan"),) * 4
    ordered = sorted(samples_ns)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e3

    return pick(0.5), pick(0.99), pick(0.999), ordered[-1] / 1e3


def _book_levels(
    per_side: int = LEVELS_PER_SIDE,
) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    bids = [(65000.0 - i * 0.1, 1.0 + i * 0.001) for i in range(per_side)]
    asks = [(65000.1 + i * 0.1, 2.0 + i * 0.001) for i in range(per_side)]
    return bids, asks


def _wait_until(deadline_ns: int) -> None:
    """Sleep (not spin) until ``deadline_ns``: a spinning writer would take the reader's core.

    Sleeps overshoot by ~50-100 μs, so records go out in small bursts; the
    schedule is absolute, so the average rate holds.
    """
    remaining = deadline_ns - time.monotonic_ns()
    if remaining > 0:
        time.sleep(remaining / 1e9)


def _send_paced(count: int, rate: float, send: Callable[[int], object]) -> None:
    """``send(i)`` for each i below ``count``, ``rate`` per second, pinned to the writer's
    core. ``send`` stamps its own record: the call's cost is not in the latency."""
    previous = _pin(_WRITER_CORE)
    try:
        interval_ns = int(1e9 / rate)
        start = time.monotonic_ns() + 1_000_000
        for i in range(count):
            _wait_until(start + i * interval_ns)
            send(i)
    finally:
        _unpin(previous)


def _latency(label: str, sent: int, raw: bytes, missed: int) -> LatencyResult:
    """A reader's samples (``array("q")`` bytes, in ns) as latency figures."""
    samples = array("q")
    samples.frombytes(raw)
    p50, p99, p999, worst = percentiles(samples)
    return LatencyResult(label, sent, len(samples), missed, p50, p99, p999, worst)


# --- the floor: one shared word ----------------------------------------------------------

#: Word indices in the floor's shared page: the writer's last timestamp, and a flag
#: the writer sets to 1 once it has finished (or failed).
_FLOOR_WORD, _FLOOR_DONE = 0, 1


def _floor_reader(path: str, expected: int, conn: Connection) -> None:
    """Spin on one shared word; each new value is a sample (values the writer overwrote
    before this loop saw them count as missed)."""
    _pin(_READER_CORE)
    samples = array("q")
    with open(path, "r+b") as file, mmap.mmap(file.fileno(), 64) as mapping:
        with memoryview(mapping).cast("Q") as words:  # released before the mmap closes
            conn.send("ready")
            clock = time.monotonic_ns
            deadline = clock() + 60 * 1_000_000_000
            last = 0
            while len(samples) < expected and not words[_FLOOR_DONE]:
                value = words[_FLOOR_WORD]
                if value != last:
                    samples.append(clock() - value)
                    last = value
                elif clock() > deadline:
                    break
    conn.send((samples.tobytes(), expected - len(samples)))


def bench_floor_latency(count: int, rate: float) -> LatencyResult:
    """One-way latency of a single 8-byte store seen by a spinning reader: the floor."""
    directory = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.NamedTemporaryFile(prefix="md_bench_floor_", dir=directory) as file:
        file.truncate(64)
        file.flush()
        with mmap.mmap(file.fileno(), 64) as mapping, memoryview(mapping).cast("Q") as words:
            process, conn = _start_child(_floor_reader, file.name, count)
            clock = time.monotonic_ns

            def stamp(_: int) -> None:
                words[_FLOOR_WORD] = clock()

            try:
                _send_paced(count, rate, stamp)
                _wait_until(clock() + 1_000_000)  # the reader sees the last value
            finally:
                words[_FLOOR_DONE] = 1  # also on an error: the reader stops spinning
            raw, missed = _finish_child(process, conn)
    return _latency(f"floor @ {rate / 1e3:.0f}k/s, one 8-byte word", count, raw, missed)


# --- shared-memory children -------------------------------------------------------------


def _shm_latency_reader(name: str, expected: int, mode: str, conn: Connection) -> None:
    """Modes: "busy" / "sleep" use ShmRingReader.read(); "raw" stops at the slot copy.

    "raw" separates the ring's own cost from decoding 60 levels into Python
    tuples (a few μs of the "busy" figure).
    """
    _pin(_READER_CORE)
    reader = ShmRingReader.attach(name)
    conn.send("ready")
    samples = array("q")
    deadline = time.monotonic() + 60
    clock = time.monotonic_ns
    if mode in ("raw", "json"):
        poll_raw = reader._att.cursor.poll_raw  # the layer under poll(): no decoding
        local_ts = struct.Struct("<q")
        offset = SLOT_OFF_LOCAL_TS - SLOT_OFF_LENGTH
        while len(samples) + reader.missed < expected and time.monotonic() < deadline:
            batch = poll_raw()
            if batch:
                now = clock()
                for _, raw in batch:
                    samples.append(now - local_ts.unpack_from(raw, offset)[0])
    else:
        read = reader.read
        busy = mode == "busy"
        while len(samples) + reader.missed < expected and time.monotonic() < deadline:
            record = read(timeout=1.0, busy_poll=busy)
            if type(record) is BookRecord:
                samples.append(clock() - record.local_ts_ns)
    conn.send((samples.tobytes(), reader.missed))
    reader.close()


def _shm_throughput_reader(name: str, expected: int, conn: Connection) -> None:
    reader = ShmRingReader.attach(name)
    conn.send("ready")
    received = 0
    first_ns = last_ns = 0
    deadline = time.monotonic() + 60
    while received + reader.missed < expected and time.monotonic() < deadline:
        records = reader.poll()
        if records:
            if not received:
                first_ns = time.monotonic_ns()
            received += len(records)
            last_ns = time.monotonic_ns()
    conn.send((received, reader.missed, max(last_ns - first_ns, 1)))
    reader.close()


def _start_child(target: Any, *args: Any) -> tuple[Any, Connection]:
    ctx = multiprocessing.get_context("spawn")
    parent_end, child_end = ctx.Pipe()
    process = ctx.Process(target=target, args=(*args, child_end), daemon=True)
    process.start()
    child_end.close()
    if not parent_end.poll(_READY_TIMEOUT_S):
        process.kill()
        raise RuntimeError("benchmark reader process did not start")
    parent_end.recv()
    return process, parent_end


def _finish_child(process: Any, conn: Connection) -> Any:
    if not conn.poll(90):
        process.kill()
        raise RuntimeError("benchmark reader process did not report")
    result = conn.recv()
    conn.close()
    process.join(10)
    return result


def bench_shm_latency(name: str, count: int, rate: float, mode: str = "busy") -> LatencyResult:
    bids, asks = _book_levels()
    payload = b"x" * 1024
    with ShmRingWriter.create(name) as writer:
        process, conn = _start_child(_shm_latency_reader, name, count, mode)
        clock = time.monotonic_ns
        write_book = writer.write_book
        write_json = writer.write_json

        def write(i: int) -> None:
            if mode == "json":
                write_json("BTCUSDT", payload, clock())
            else:
                write_book("BTCUSDT", 2, i, 0, clock(), bids, asks)

        _send_paced(count, rate, write)
        raw, missed = _finish_child(process, conn)
    return _latency(f"shm @ {rate / 1e3:.0f}k/s, {_MODE_LABELS[mode]}", count, raw, missed)


def bench_shm_throughput(name: str, count: int, kind: str) -> ThroughputResult:
    bids, asks = _book_levels()
    payload = b"x" * 1024
    with ShmRingWriter.create(name) as writer:
        process, conn = _start_child(_shm_throughput_reader, name, count)
        started = time.perf_counter()
        if kind == "book":
            write_book = writer.write_book
            for i in range(count):
                write_book("BTCUSDT", 2, i, 0, i, bids, asks)
        else:
            write_json = writer.write_json
            for _ in range(count):
                write_json("BTCUSDT", payload)
        elapsed = time.perf_counter() - started
        received, missed, read_ns = _finish_child(process, conn)
    label = "shm book 60 levels 1032 B" if kind == "book" else "shm json 1024 B"
    return ThroughputResult(
        label, count, count / elapsed, received, missed, received / read_ns * 1e9
    )


# --- the writer's own cost ----------------------------------------------------------

_BASE_SLOT_HEADER = struct.Struct("<IHBx24sq")
_BASE_BOOK_FIXED = struct.Struct("<QqHHB3x")


class _ChainedBookWriter:
    """The book write before per-shape packers, as the same-run baseline.

    Same seqlock steps and the same bytes as ``RingWriter.write_book``, encoded
    the straightforward way: slot header, fixed part and levels packed by three
    calls, the levels flattened into arguments through ``chain``.
    """

    def __init__(self, buf: memoryview, header: RingHeader) -> None:
        self._buf = buf
        self._words = buf.cast("Q")
        self._slot_size = header.slot_size
        self._slot_count = header.slot_count
        self._max_body = header.max_body_size
        self._levels: dict[int, struct.Struct] = {}  # level-array codecs, built on first use
        self.head = 0

    def write_book(
        self,
        symbol: str,
        state: int,
        last_update_id: int,
        event_time_ms: int,
        local_ts_ns: int,
        bids: Sequence[tuple[float, float]],
        asks: Sequence[tuple[float, float]],
    ) -> int:
        n_bids, n_asks = len(bids), len(asks)
        body_len = book_body_size(n_bids, n_asks)
        if body_len > self._max_body:
            raise ValueError("record too large")
        sym = encode_symbol(symbol)
        seq = self.head + 1
        offset = HEADER_SIZE + ((seq - 1) % self._slot_count) * self._slot_size
        self._words[offset >> 3] = 2 * seq - 1
        _BASE_SLOT_HEADER.pack_into(
            self._buf, offset + 8, body_len, RecordKind.BOOK, len(sym), sym, local_ts_ns
        )
        body = offset + 48
        _BASE_BOOK_FIXED.pack_into(
            self._buf, body, last_update_id, event_time_ms, n_bids, n_asks, state
        )
        n = n_bids + n_asks
        levels = self._levels.get(n)
        if levels is None:
            levels = self._levels[n] = struct.Struct(f"<{2 * n}d")
        levels.pack_into(
            self._buf,
            body + _BASE_BOOK_FIXED.size,
            *chain.from_iterable(bids),
            *chain.from_iterable(asks),
        )
        self._words[offset >> 3] = 2 * seq
        self._words[HEAD_WORD] = seq
        self.head = seq
        return seq


def _ring_in_memory(slot_count: int) -> tuple[memoryview, RingHeader]:
    header = RingHeader(2048, slot_count, generation=1, writer_pid=os.getpid(), created_ns=0)
    buf = memoryview(bytearray(header.total_size))
    encode_header(buf, header)
    return buf, header


def bench_write_cost(levels_per_side: int, records: int, repeats: int = 5) -> WriteCostResult:
    """Best of ``repeats`` timed loops of ``records`` book writes, the two encoders alternating.

    The ring is in process memory (1024 slots, 2 MB), written once through
    first so no page is faulted in during the timing: this is the CPU cost of
    the write path alone.
    """
    bids, asks = _book_levels(levels_per_side)
    new_buf, header = _ring_in_memory(1024)
    base_buf, _ = _ring_in_memory(1024)
    writers = {
        "new": RingWriter(new_buf, header).write_book,
        "base": _ChainedBookWriter(base_buf, header).write_book,
    }
    best = {"new": float("inf"), "base": float("inf")}
    for _ in range(repeats):
        for key, write_book in writers.items():
            started = time.perf_counter()
            for i in range(records):
                write_book("BTCUSDT", 2, i, 1, i, bids, asks)
            best[key] = min(best[key], (time.perf_counter() - started) / records)
    if bytes(new_buf) != bytes(base_buf):  # same records in both rings: the same work
        raise RuntimeError("the writer and its baseline wrote different bytes")
    size = 48 + book_body_size(levels_per_side, levels_per_side)
    return WriteCostResult(levels_per_side, size, best["new"] * 1e6, best["base"] * 1e6)


# --- Redis baseline ------------------------------------------------------------------


def _redis_subscriber(url: str, channel: str, expected: int, conn: Connection) -> None:
    import redis

    _pin(_READER_CORE)
    client = redis.Redis.from_url(url)
    pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call, unused-ignore]
    pubsub.subscribe(channel)
    while pubsub.get_message(timeout=1.0) is None and not pubsub.subscribed:
        pass
    conn.send("ready")
    samples = array("q")
    deadline = time.monotonic() + 60
    while len(samples) < expected and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=1.0)
        if message is not None:
            samples.append(time.monotonic_ns() - int.from_bytes(message["data"][:8], "little"))
    conn.send((samples.tobytes(), 0))
    pubsub.close()
    client.close()


def bench_redis_latency(count: int, rate: float) -> LatencyResult:
    import redis

    from market_data.embedded_redis import EmbeddedRedis

    channel = "bench:shm:baseline"
    filler = b"x" * (REDIS_PAYLOAD_SIZE - 8)
    with EmbeddedRedis() as server:
        client = redis.Redis.from_url(server.url)
        try:
            process, conn = _start_child(_redis_subscriber, server.url, channel, count)
            publish = client.publish

            def send(_: int) -> None:
                publish(channel, time.monotonic_ns().to_bytes(8, "little") + filler)

            _send_paced(count, rate, send)
            raw, _ = _finish_child(process, conn)
        finally:
            client.close()
    missed = count - len(raw) // array("q").itemsize  # what the subscriber never got
    return _latency(f"redis pub/sub @ {rate / 1e3:.0f}k/s", count, raw, missed)


# --- entry points --------------------------------------------------------------------


def run_bench(
    *,
    rate: float = 10_000.0,
    latency_records: int = 20_000,
    throughput_records: int = 500_000,
    redis_records: int = 10_000,
    write_records: int = 20_000,
    with_redis: bool = True,
    out: Any = None,
) -> list[Result]:
    """Run every measurement, print one line each as it completes, return them all."""
    stream = out if out is not None else sys.stdout
    name = f"md_bench_{os.getpid()}"
    print(
        f"1 KB records, writer and reader in separate processes, {os.cpu_count()} CPUs, "
        f"Python {sys.version.split()[0]}",
        file=stream,
        flush=True,
    )
    results: list[Result] = []

    def report(result: Result) -> None:
        results.append(result)
        print(result.line(), file=stream, flush=True)

    report(bench_floor_latency(latency_records, rate))
    for mode in ("json", "busy", "raw", "sleep"):
        report(bench_shm_latency(name, latency_records, rate, mode))
    if with_redis:
        report(bench_redis_latency(redis_records, rate))
    for kind in ("json", "book"):
        report(bench_shm_throughput(name, throughput_records, kind))
    for per_side in (20, LEVELS_PER_SIDE):
        report(bench_write_cost(per_side, write_records))
    return results


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``market-data bench shm``."""
    parser.add_argument("--rate", type=float, default=10_000.0, help="paced records/s")
    parser.add_argument("--latency-records", type=int, default=20_000)
    parser.add_argument("--throughput-records", type=int, default=500_000)
    parser.add_argument("--redis-records", type=int, default=10_000)
    parser.add_argument(
        "--write-records", type=int, default=20_000, help="book writes per timed loop"
    )
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis baseline")


def run(args: argparse.Namespace) -> int:
    results = run_bench(
        rate=args.rate,
        latency_records=args.latency_records,
        throughput_records=args.throughput_records,
        redis_records=args.redis_records,
        write_records=args.write_records,
        with_redis=not args.no_redis,
    )
    shm = [r for r in results if isinstance(r, LatencyResult) and "JSON" in r.transport]
    floor = [r for r in results if isinstance(r, LatencyResult) and r.transport.startswith("floor")]
    if shm:
        verdict = "met" if shm[0].p99_us <= 10 else "NOT met"
        print(f"target: shm p99 <= 10 μs one-way for 1 KB records -> {verdict}", end="")
        if floor:
            print(f" (this machine's floor, one shared word: p99 {floor[0].p99_us:.1f} μs)", end="")
        print()
    writes = [r for r in results if isinstance(r, WriteCostResult) and r.levels_per_side == 20]
    if writes:
        verdict = "met" if writes[0].write_us <= 2 else "NOT met"
        print(f"target: a 20-level book record written in <= 2 μs -> {verdict}")
    best = max((r.write_rate for r in results if isinstance(r, ThroughputResult)), default=0.0)
    print(f"target: >= 500k records/s -> {'met' if best >= 500_000 else 'NOT met'}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="market-data bench shm", description=__doc__)
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
