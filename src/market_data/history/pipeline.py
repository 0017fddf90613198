"""The history pipeline: hot-path hooks on the event loop, all the work on a thread.

The engine calls :meth:`HistoryPipeline.frame` for every frame, ``snapshot``
for every REST snapshot it feeds to a book and ``connection`` for every
connect and disconnect; as an output (a :class:`~market_data.outputs.sinks.Sink`)
it also sees every published book and 24h update. Each hook is one bounded
``deque.append`` of a tuple of what the caller already has, with the local
receive time (``time.time_ns()``). A thread drains the deque: it writes the
recording (gzip, ``recorder.py``) and hands each batch to the row stores
(Parquet, QuestDB), which run in a child process (``worker.py``). Neither
decoding, nor compression, nor a slow or full disk can hold up the loop.

When the queue is full (the disk is too slow) or a write fails (disk full),
history is **suspended**: the hooks drop what they get (counted), the thread
logs why at error level, closes what it can, and tries again every
``RETRY_S``; recording resumes with a ``recording_gap`` event, so a replay
knows the books were not followed across the hole.
"""

import asyncio
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from market_data.history.recorder import OTHER, RecordingWriter
from market_data.outputs.sinks import BookUpdate, MarketDataUpdate, Update

log = logging.getLogger(__name__)

#: Seconds a suspended pipeline waits before it tries the disk again.
RETRY_S = 30.0
#: How long the thread sleeps when the queue is empty.
IDLE_S = 0.02
#: Items the thread takes per batch; a deflate block ends after each batch.
BATCH = 4096

FRAME, SNAPSHOT, CONNECTION, BOOK, MARKET = range(5)


class RowConsumer(Protocol):
    """What the thread feeds besides the recording (the Parquet store, QuestDB)."""

    def on_frame(self, recv_ns: int, frame: bytes, line: int) -> None: ...

    def on_snapshot(self, recv_ns: int, symbol: str, body: bytes) -> None: ...

    def on_connection(self, recv_ns: int, event: dict[str, Any]) -> None: ...

    def on_book(self, recv_ns: int, update: BookUpdate) -> None: ...

    def on_market(self, recv_ns: int, symbol: str, payload: bytes) -> None: ...

    def on_gap(self, recv_ns: int) -> None: ...

    def flush(self, now_ns: int, force: bool = False) -> None: ...

    def close(self) -> None: ...


@dataclass
class HistoryCounters:
    """Plain counters, read by the metrics collector at scrape time."""

    queued: int = 0
    dropped: int = 0
    suspensions: int = 0
    write_errors: int = 0
    suspended: bool = False
    recorded_lines: int = 0
    reason: str = ""
    rows: dict[str, int] = field(default_factory=dict)


def _symbol_of(frame: bytes) -> str:
    """``{"stream":"btcusdt@depth...`` -> ``BTCUSDT`` (``_other`` when it names none)."""
    start = frame.find(b'"stream":"', 0, 40)
    if start < 0:
        return OTHER
    start += 10
    end = frame.find(b"@", start, start + 40)
    name = frame[start:end] if end > 0 else b""
    return name.decode("ascii", "replace").upper() if name.isalnum() else OTHER


class HistoryPipeline:
    """Bounded queue in, recording files and row stores out, on one thread."""

    def __init__(
        self,
        *,
        writer: RecordingWriter | None,
        consumers: list[RowConsumer],
        queue_max: int = 200_000,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.writer = writer
        self.consumers = consumers
        self.queue_max = queue_max
        self.clock_ns = clock_ns
        self.counters = HistoryCounters()
        self._queue: deque[tuple[Any, ...]] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._symbols: set[str] = set()
        self._retry_at = 0.0

    # ------------------------------------------------------------ event loop side

    def frame(self, raw: str | bytes, line: int = 0) -> None:
        """A frame as received (the hot path: one append)."""
        queue = self._queue
        if len(queue) >= self.queue_max or self.counters.suspended:
            self._drop("the queue is full: the disk is too slow")
            return
        queue.append((FRAME, self.clock_ns(), raw, line))

    def snapshot(self, symbol: str, body: bytes) -> None:
        """A REST snapshot, at the moment the engine feeds it to the book."""
        self._put((SNAPSHOT, self.clock_ns(), symbol, body))

    def connection(
        self,
        event: str,
        name: str,
        line: int,
        symbols: tuple[str, ...] | list[str],
        *,
        depth: bool,
        trades: bool,
        reason: str = "",
    ) -> None:
        """A feed connection came up (``connected``) or went down (``disconnected``)."""
        fields = {
            "connection": event,
            "name": name,
            "line": line,
            "symbols": list(symbols),
            "depth": depth,
            "trades": trades,
            "reason": reason,
        }
        self._put((CONNECTION, self.clock_ns(), fields))

    def publish(self, update: Update) -> None:
        """As an output: published books and 24h figures, for the state-over-time kinds."""
        if type(update) is BookUpdate:
            self._put((BOOK, self.clock_ns(), update))
        elif type(update) is MarketDataUpdate:
            self._put((MARKET, self.clock_ns(), update.symbol, update.payload))

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)  # the writer may take seconds: not on the loop

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def _put(self, item: tuple[Any, ...]) -> None:
        if len(self._queue) >= self.queue_max or self.counters.suspended:
            self._drop("the queue is full: the disk is too slow")
            return
        self._queue.append(item)

    def _drop(self, reason: str) -> None:
        counters = self.counters
        counters.dropped += 1
        if not counters.suspended:
            counters.suspended = True
            counters.suspensions += 1
            counters.reason = reason
            # The writer thread sees the suspension, clears the queue and logs it: clearing
            # 200,000 items here would stall the event loop for tens of ms.

    # ------------------------------------------------------------------- thread

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="history-writer", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what is queued, close every file; returns when the thread ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None
        else:
            self._drain_all()
            self._finish()

    def _run(self) -> None:
        logged_suspension = False
        while True:
            if self.counters.suspended:
                if not logged_suspension:
                    self._suspend(self.counters.reason)
                    logged_suspension = True
                if self._stop.is_set():
                    break
                if time.monotonic() >= self._retry_at:
                    logged_suspension = not self._resume()
                self._stop.wait(0.2)
                continue
            if not self._drain_once():
                if self._stop.is_set():
                    break
                self._stop.wait(IDLE_S)
                self._flush_consumers(force=False)
        self._finish()

    def _drain_all(self) -> None:
        while self._drain_once():
            pass

    def _drain_once(self) -> bool:
        queue = self._queue
        if not queue:
            return False
        popleft = queue.popleft
        taken = 0
        try:
            while queue and taken < BATCH:
                self._handle(popleft())
                taken += 1
            if self.writer is not None:
                self.writer.flush()
            self._flush_consumers(force=False)
        except OSError as exc:
            self.counters.write_errors += 1
            self._drop(f"a write failed: {exc}")
        self.counters.queued += taken
        return True

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        writer = self.writer
        if kind == FRAME:
            _, recv_ns, raw, line = item
            frame = raw.encode() if type(raw) is str else bytes(raw)
            if writer is not None:
                symbol = _symbol_of(frame)
                self._symbols.add(symbol)
                writer.write_frame(symbol, recv_ns, line, frame)
                self.counters.recorded_lines += 1
            for consumer in self.consumers:
                consumer.on_frame(recv_ns, frame, line)
        elif kind == SNAPSHOT:
            _, recv_ns, symbol, body = item
            if writer is not None:
                self._symbols.add(symbol)
                writer.write_snapshot(symbol, recv_ns, body)
                self.counters.recorded_lines += 1
            for consumer in self.consumers:
                consumer.on_snapshot(recv_ns, symbol, body)
        elif kind == CONNECTION:
            _, recv_ns, fields = item
            if writer is not None:
                for symbol in fields["symbols"]:  # each symbol's file is whole on its own
                    self._symbols.add(symbol)
                    one = dict(fields, symbols=[symbol])
                    writer.write_event(symbol, recv_ns, _json(one))
                    self.counters.recorded_lines += 1
            for consumer in self.consumers:
                consumer.on_connection(recv_ns, fields)
        elif kind == BOOK:
            for consumer in self.consumers:
                consumer.on_book(item[1], item[2])
        elif kind == MARKET:
            for consumer in self.consumers:
                consumer.on_market(item[1], item[2], item[3])

    def _flush_consumers(self, force: bool) -> None:
        now = self.clock_ns()
        for consumer in self.consumers:
            try:
                consumer.flush(now, force)
            except OSError as exc:
                self.counters.write_errors += 1
                self._drop(f"a history store write failed: {exc}")

    def _suspend(self, reason: str) -> None:
        log.error(
            "history suspended: %s; the service keeps serving, recording and the history "
            "store are off until the disk takes writes again (retrying every %.0fs)",
            reason,
            RETRY_S,
            extra={"reason": reason},
        )
        self.counters.dropped += len(self._queue)  # what was queued is dropped, and counted
        self._queue.clear()  # here, on the thread, not on the event loop
        if self.writer is not None:
            self.writer.abandon()
        self._retry_at = time.monotonic() + RETRY_S

    def _resume(self) -> bool:
        """Try the disk again; True when history runs again (after a ``recording_gap``)."""
        self._queue.clear()
        now = self.clock_ns()
        try:
            if self.writer is not None:
                gap = {"connection": "recording_gap", "reason": self.counters.reason}
                for symbol in sorted(self._symbols - {OTHER}):
                    event = dict(gap, symbols=[symbol], depth=True, line=0)
                    self.writer.write_event(symbol, now, _json(event))
                self.writer.flush()
            for consumer in self.consumers:
                consumer.on_gap(now)
        except OSError as exc:
            self.counters.write_errors += 1
            if self.writer is not None:
                self.writer.abandon()
            self._retry_at = time.monotonic() + RETRY_S
            log.warning("history still suspended: %s", exc)
            return False
        self.counters.suspended = False
        self.counters.reason = ""
        log.warning("history resumed (a recording_gap marks the hole)")
        return True

    def _finish(self) -> None:
        if not self.counters.suspended:
            self._drain_all()
        self._flush_consumers(force=True)
        if self.writer is not None and not self.counters.suspended:
            try:
                self.writer.flush(force=True)
            except OSError as exc:
                log.error("recording: flushing failed: %s", exc)
        for consumer in self.consumers:
            try:
                consumer.close()
            except OSError as exc:
                log.error("history store: closing failed: %s", exc)
        if self.writer is not None:
            try:
                self.writer.close()
            except OSError as exc:
                log.error("recording: closing failed: %s", exc)
                self.writer.abandon()


def _json(fields: dict[str, Any]) -> bytes:
    """Compact JSON, as the reader expects (``{"connection":...``)."""
    return json.dumps(fields, separators=(",", ":")).encode()
