"""``market-data bench ui``: what open web pages cost the service.

The end-to-end run of ``bench e2e`` (load generator -> service in its own
process -> Redis -> subscriber, :func:`market_data.bench.e2e.measure`) at one
rate, with 0, 1 and N pages connected to the service's ``/ui/ws`` during the
measured window. A page here is a raw WebSocket client (:class:`RawPage`)
that selects the symbol (so every push carries its ladder, tape and 24h
figures) and takes every frame off its socket, counting it without decoding
it: what the service does per page is the same as for a browser, but the
reader, which on this machine shares the cores with the service and the
latency subscriber, costs them as little as it can. The pages run in a
process of their own (its CPU is shown). Figures per row: the service's
CPU, the publication latency (send -> Redis subscriber, p50/p99 per
update), the frames each page received per second (the push is conflated
to at most 10/s), the service's own account of the pages (``/ui/stats``)
and the reader's CPU.

Targets: N = 20 pages add under 10 points of CPU and under 0.2 ms of p99 over
the run with no page.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import cast

import aiohttp

from market_data.bench.e2e import RunResult, measure
from market_data.embedded_redis import EmbeddedRedis
from market_data.ops.ports import free_port

DEFAULT_PAGES = (0, 1, 20)
DEFAULT_RATE = 10_000
_SYMBOL = "BTCUSDT"  # bench_symbols(1)


@dataclass
class PageCounts:
    """What the pages received while they were open."""

    frames: int = 0
    bytes: int = 0
    opened_s: float = 0.0
    closed_s: float = 0.0
    busy_s: float = 0.0  # the service's event loop time on the pages (its /ui/stats)
    max_hold_us: float = 0.0  # its longest single stretch on them
    hold_p99_us: float = 0.0  # the p99 of those stretches
    reader_cpu_s: float = 0.0  # the page process's own CPU time

    @property
    def reader_cpu_percent(self) -> float:
        elapsed = self.closed_s - self.opened_s
        return 100.0 * self.reader_cpu_s / elapsed if elapsed > 0 else 0.0

    @property
    def push_cpu_percent(self) -> float:
        elapsed = self.closed_s - self.opened_s
        return 100.0 * self.busy_s / elapsed if elapsed > 0 else 0.0

    def per_page_rate(self, pages: int) -> float:
        elapsed = self.closed_s - self.opened_s
        return self.frames / pages / elapsed if pages and elapsed > 0 else 0.0


def pages_main(port: int, pages: int, control: Connection) -> None:
    """Process entry point: ``pages`` clients read /ui/ws until told to stop."""
    import uvloop

    uvloop.run(_read_pages(port, pages, control))


class RawPage(asyncio.Protocol):
    """One page as the least a WebSocket client can do: frames counted, never decoded.

    The HTTP upgrade is written by hand; then the page sends its selection and
    counts each text frame and its bytes, answering pings so the service's
    heartbeat keeps it. Reading costs this process little, so it takes as
    little CPU as it can from the service and the latency subscriber it
    shares the cores with.
    """

    def __init__(self, port: int, selection: bytes) -> None:
        self.port = port
        self.selection = selection
        self.frames = self.bytes = 0
        self.upgraded = asyncio.get_running_loop().create_future()
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        key = base64.b64encode(os.urandom(16))
        self._transport.write(
            b"GET /ui/ws HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n" % (self.port, key)
        )

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self.upgraded.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            status = bytes(buffer[: buffer.find(b"\r\n")])
            del buffer[: end + 4]
            if b" 101 " not in status:
                self.upgraded.set_exception(ConnectionError(status.decode(errors="replace")))
                return
            self._send(0x1, self.selection)
            self.upgraded.set_result(None)
        while len(buffer) >= 2:
            length, start = buffer[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < start + length:
                return
            opcode = buffer[0] & 0x0F
            if opcode == 0x1:
                self.frames += 1
                self.bytes += length
            elif opcode == 0x9:  # ping
                self._send(0xA, bytes(buffer[start : start + length]))
            del buffer[: start + length]

    def _send(self, opcode: int, payload: bytes) -> None:
        """A client frame: masked, with the all-zero key (so the payload reads as is)."""
        assert self._transport is not None and len(payload) < 126
        self._transport.write(bytes((0x80 | opcode, 0x80 | len(payload))) + bytes(4) + payload)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError("the service closed the page"))


async def _read_pages(port: int, pages: int, control: Connection) -> None:
    loop = asyncio.get_running_loop()
    selection = json.dumps({"symbol": _SYMBOL}).encode()
    opened_pages: list[RawPage] = []
    transports: list[asyncio.BaseTransport] = []
    for _ in range(pages):
        transport, page = await loop.create_connection(
            lambda: RawPage(port, selection), "127.0.0.1", port
        )
        await asyncio.wait_for(page.upgraded, 10.0)
        opened_pages.append(page)
        transports.append(transport)
    async with aiohttp.ClientSession() as session:

        async def push_stats() -> dict[str, float]:
            async with session.get(f"http://127.0.0.1:{port}/ui/stats") as response:
                stats: dict[str, float] = await response.json()
                return stats

        before = await push_stats()
        frames_before = sum(page.frames for page in opened_pages)
        bytes_before = sum(page.bytes for page in opened_pages)
        cpu_before = time.process_time()
        control.send("open")
        opened = time.monotonic()
        await asyncio.to_thread(control.recv)  # "stop"
        elapsed = time.monotonic() - opened
        cpu = time.process_time() - cpu_before
        after = await push_stats()
    for connection in transports:
        connection.close()
    busy = after["busy_s"] - before["busy_s"]
    control.send(
        (
            sum(page.frames for page in opened_pages) - frames_before,
            sum(page.bytes for page in opened_pages) - bytes_before,
            elapsed,
            busy,
            after["max_hold_us"],
            after["hold_p99_us"],
            cpu,
        )
    )


def open_pages(
    port: int, pages: int, counts: PageCounts
) -> Callable[[], contextlib.AbstractAsyncContextManager[object]]:
    """``pages`` WebSocket clients on the service's /ui/ws, in a process of their own."""

    @contextlib.asynccontextmanager
    async def opened() -> AsyncIterator[object]:
        if not pages:
            yield None
            return
        context = multiprocessing.get_context("spawn")
        control, child_end = context.Pipe()
        process = context.Process(target=pages_main, args=(port, pages, child_end), daemon=True)
        process.start()
        child_end.close()
        try:
            if not await asyncio.to_thread(control.poll, 30.0):
                raise TimeoutError("the pages did not connect within 30 s")
            control.recv()  # "open"
            yield None
        finally:
            with contextlib.suppress(OSError, EOFError):
                control.send("stop")
                if await asyncio.to_thread(control.poll, 10.0):
                    frames, received, elapsed, busy, hold, hold_p99, cpu = control.recv()
                    counts.frames, counts.bytes, counts.reader_cpu_s = frames, received, cpu
                    counts.busy_s, counts.max_hold_us, counts.hold_p99_us = busy, hold, hold_p99
                    counts.opened_s, counts.closed_s = 0.0, elapsed
            await asyncio.to_thread(process.join, 10.0)
            if process.is_alive():
                process.kill()
            control.close()

    return opened


@dataclass(frozen=True)
class UiRow:
    pages: int
    runs: list[RunResult]
    counts: list[PageCounts]

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu_percent for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.update_percentile_ms(0.5) for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.update_percentile_ms(0.99) for r in self.runs)

    @property
    def book_p99_ms(self) -> float:
        return statistics.median(r.book_percentile_ms(0.99) for r in self.runs)

    @property
    def frames_per_page_s(self) -> float:
        return statistics.median(c.per_page_rate(self.pages) for c in self.counts)

    @property
    def push_cpu_percent(self) -> float:
        return statistics.median(c.push_cpu_percent for c in self.counts)

    @property
    def reader_cpu_percent(self) -> float:
        return statistics.median(c.reader_cpu_percent for c in self.counts)

    @property
    def max_hold_us(self) -> float:
        return max(c.max_hold_us for c in self.counts)

    @property
    def hold_p99_us(self) -> float:
        return statistics.median(c.hold_p99_us for c in self.counts)

    @property
    def kb_per_frame(self) -> float:
        frames = sum(c.frames for c in self.counts)
        return sum(c.bytes for c in self.counts) / frames / 1024 if frames else 0.0

    @property
    def clean(self) -> bool:
        return all(r.gaps == 0 and r.resets == 0 and r.behind == 0 for r in self.runs)


_HEADER = (
    f"{'pages':>5} {'offered/s':>9} {'CPU%':>5} {'upd p50 ms':>10} {'upd p99 ms':>10} "
    f"{'book p99 ms':>11} {'frames/s/page':>13} {'KB/frame':>8} {'push CPU%':>9} "
    f"{'hold p99/max us':>15} {'reader CPU%':>11} {'gaps/resets':>11}"
)


def format_row(row: UiRow) -> str:
    offered = statistics.median(r.offered_rate for r in row.runs)
    gaps = sum(r.gaps or 0 for r in row.runs)
    resets = sum(r.resets or 0 for r in row.runs)
    return (
        f"{row.pages:>5} {offered:>9.0f} {row.cpu:>5.1f} {row.p50_ms:>10.3f} "
        f"{row.p99_ms:>10.3f} {row.book_p99_ms:>11.3f} {row.frames_per_page_s:>13.1f} "
        f"{row.kb_per_frame:>8.1f} {row.push_cpu_percent:>9.2f} "
        f"{f'{row.hold_p99_us:.0f}/{row.max_hold_us:.0f}':>15} "
        f"{row.reader_cpu_percent:>11.2f} "
        f"{f'{gaps}/{resets}':>11}"
    )


def target_lines(rows: list[UiRow]) -> list[str]:
    base = next((r for r in rows if r.pages == 0), None)
    most = max(rows, key=lambda r: r.pages)
    if base is None or most.pages == 0:
        return []
    cpu_added = most.cpu - base.cpu
    p99_added = most.p99_ms - base.p99_ms
    verdict = "met" if cpu_added < 10.0 and p99_added < 0.2 else "NOT met"
    return [
        f"target {most.pages} pages add < 10% CPU and < 0.2 ms p99: {verdict} "
        f"(CPU {base.cpu:.1f}% -> {most.cpu:.1f}%, {cpu_added:+.1f}; "
        f"update p99 {base.p99_ms:.3f} -> {most.p99_ms:.3f} ms, {p99_added:+.3f})",
        f"the service's own account of {most.pages} pages: {most.push_cpu_percent:.2f}% of a "
        f"core building and sending views (wall time, so preemption included); one build or "
        f"send held the event loop {most.hold_p99_us:.0f} us at p99, {most.max_hold_us:.0f} us "
        f"at most",
    ]


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=8.0, help="seconds per run (8)")
    parser.add_argument(
        "--rate", type=float, default=DEFAULT_RATE, help="diff frames/s, 1 symbol (10000)"
    )
    parser.add_argument(
        "--pages",
        default=",".join(map(str, DEFAULT_PAGES)),
        help="open pages per row, comma separated (0,1,20)",
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="runs per row, interleaved; medians shown (3)"
    )


async def run_all(
    pages: list[int], rate: float, seconds: float, repeat: int, redis: EmbeddedRedis
) -> list[UiRow]:
    runs: dict[int, list[RunResult]] = {n: [] for n in pages}
    counts: dict[int, list[PageCounts]] = {n: [] for n in pages}
    for _ in range(repeat):  # interleaved, so a noisy minute hits every row alike
        for n in pages:
            port = free_port()
            page_counts = PageCounts()
            result = await measure(
                "service",
                1,
                rate,
                seconds,
                redis,
                health_port=port,
                during=open_pages(port, n, page_counts),
            )
            runs[n].append(result)
            counts[n].append(page_counts)
    return [UiRow(n, runs[n], counts[n]) for n in pages]


def run(args: argparse.Namespace) -> int:
    pages = [int(p) for p in str(args.pages).split(",") if p.strip()]
    with EmbeddedRedis() as redis:
        print(
            f"bench ui: 1 symbol at {args.rate:.0f} diff frames/s, {args.seconds:g} s per run, "
            f"{args.repeat} runs per row (medians); pages read /ui/ws with the symbol selected",
            flush=True,
        )
        rows = asyncio.run(run_all(pages, args.rate, args.seconds, args.repeat, redis))
    print(_HEADER)
    for row in rows:
        print(format_row(row))
    for line in target_lines(rows):
        print(line)
    if not all(row.clean for row in rows):
        print("note: a run had gaps, resets or undelivered updates")
    return 0
