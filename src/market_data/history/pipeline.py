"""The history pipeline: hot-path hooks on the event loop, all the work in another process.

Recording (``recording_dir``): the engine calls :meth:`HistoryPipeline.frame`
for every frame, ``snapshot`` for every REST snapshot it feeds to a book and
``connection`` for every connect and disconnect. Row stores (``parquet_dir``,
``questdb_url``): each symbol's sync core calls the hook :meth:`book_rows` made
for it after every event it applied to a live book, the engine calls
``trade`` for every trade it takes, and as an output (a
:class:`~market_data.outputs.sinks.Sink`) the pipeline sees every published book
and 24h update. Each hook is a bounded ``deque.append`` of what the caller
already has (decoded values, never a frame to decode again), with the local
time (``time.time_ns()``), encoded as msgpack where it is made (levels waiting
in the queue as lists would be scanned by the garbage collector, which cost
more than the encoding); published books only on a change of state and 24h
figures once a second per symbol. A thread takes the items off the deque and
sends them, a few hundred at a time joined into one msgpack message, to the
history process (``worker.py``), which writes the recording (gzip,
``recorder.py``) and the rows (Parquet, QuestDB). The thread only joins bytes
and copies them into a ring in shared memory (``channel.py``; it holds the GIL
for microseconds, and waits without it while the ring is full): neither
compression, nor row building, nor a slow or full disk can hold up the loop.

A book's rows start with a whole book (a snapshot block) whenever they cannot
follow on from the last ones: the first event of a book that went live, after a
reset, after a re-base swapped the book, and after history dropped items.

When the queue is full (a slow disk, or no CPU to spare) or a write fails in the history
process (disk full), history is **suspended**: the hooks drop what they get
(counted), the thread logs why at error level and tries again every
``RETRY_S``; recording resumes with a ``recording_gap`` event, so a replay
knows the books were not followed across the hole, and each book's rows resume
with a snapshot block. A history process that died (killed, out of memory) is
started again at the next retry.
"""

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from market_data.binance.schemas import AggTrade
from market_data.core.sync import DepthDiff, DepthSync
from market_data.history.worker import (
    APPLIED,
    BLOCK,
    BOOK,
    CONNECTION,
    FRAME,
    ITEMS,
    MARKET,
    RESUME,
    SNAPSHOT,
    SUSPEND,
    TOP,
    TRADE,
    HistoryProcess,
    encode_item,
)
from market_data.ops.config import Config
from market_data.outputs.sinks import BookUpdate, MarketDataUpdate, Update

log = logging.getLogger(__name__)

#: Seconds a suspended pipeline waits before it tries the disk again.
RETRY_S = 30.0
#: How long the thread sleeps after sending a batch smaller than ``BATCH`` (or
#: none): it takes the GIL to send, so waking for every few items would hand the
#: GIL to and fro with the event loop hundreds of times a second.
IDLE_S = 0.01
#: Items the thread sends per batch (bigger batches measured no cheaper).
BATCH = 256
#: Why history is suspended when the queue is full.
_BEHIND = "the queue is full: the history process cannot keep up (a slow disk, or no CPU to spare)"
#: Seconds to wait for the history process's answer to a resume.
RESUME_WAIT_S = 30.0


@dataclass
class HistoryCounters:
    """Plain counters, read by the metrics collector at scrape time.

    ``dropped`` counts what the hooks dropped and what the history process dropped
    while suspended; ``write_errors``, ``recorded_lines``, ``rows`` and ``questdb``
    are the history process's figures, as of its last report.
    """

    queued: int = 0
    dropped: int = 0
    suspensions: int = 0
    write_errors: int = 0
    store_errors: int = 0
    suspended: bool = False
    recorded_lines: int = 0
    reason: str = ""
    rows: dict[str, int] = field(default_factory=dict)
    questdb: dict[str, int] = field(default_factory=dict)


class HistoryPipeline:
    """Bounded queue in, batches to the history process out, on one thread."""

    fenced = False  # as an output: this instance's own history, a standby's too

    def __init__(
        self,
        config: Config,
        *,
        queue_max: int | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
        retry_s: float = RETRY_S,
    ) -> None:
        self.config = config
        self.queue_max = config.history_queue_max if queue_max is None else queue_max
        self.clock_ns = clock_ns
        self.retry_s = retry_s
        #: Frames, snapshots and connection events matter only to the recording.
        self.recording = bool(config.recording_dir)
        #: Applied events, trades, published books and 24h figures only to the row stores.
        self.rows = bool(config.parquet_dir or config.questdb_url)
        self.top_levels = config.parquet_book_snapshot_levels
        self.top_interval_ms = config.parquet_book_snapshot_interval_ms
        self.block_levels = config.max_levels_per_side
        #: Grows when queued items were dropped: every book's rows start again with a block.
        self._rows_lost = 0
        self.counters = HistoryCounters()
        #: Items encoded where they are made: no list waits here for the garbage collector
        #: to scan, and the thread only joins them (it holds the GIL for microseconds).
        self._queue: deque[bytes] = deque()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: HistoryProcess | None = None
        self._retry_at = 0.0
        self._book_states: dict[str, object] = {}
        self._market_seconds: dict[str, int] = {}
        #: Every symbol a connection or a snapshot named: a new history process marks
        #: the gap in each of them.
        self._symbols: set[str] = set()
        self._suspension_seen = 0
        self._child_dropped = 0
        self._child_rows_lost = 0  # rows the history process's stores lost, as last reported
        self._attempt = 0
        self._answer: tuple[int, str] = (0, "")  # the last resume attempt answered, its error
        self._closed = False

    # ------------------------------------------------------------ event loop side

    def frame(self, raw: str | bytes, line: int = 0) -> None:
        """A frame as received, for the recording (the hot path: one append)."""
        queue = self._queue
        if len(queue) >= self.queue_max or self.counters.suspended:
            self._drop(_BEHIND)
            return
        queue.append(encode_item((FRAME, self.clock_ns(), raw, line)))

    def snapshot(self, symbol: str, body: bytes) -> None:
        """A REST snapshot, at the moment the engine feeds it to the book (recording)."""
        if not self.recording:
            return
        self._symbols.add(symbol)
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
        if not self.recording:
            return
        self._symbols.update(symbols)
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

    def book_rows(self, symbol: str, sync: DepthSync) -> Callable[[DepthDiff], None] | None:
        """The hook ``sync`` calls after each event it applies to a live book (row stores).

        Each event becomes an ``APPLIED`` item holding its levels, or a ``BLOCK``
        (the whole book after it) when the rows cannot follow on from the last
        ones: the first event after the book went live or was re-based, or after
        history dropped items. Those cases are told apart by counters that only
        grow (the sync's resets and re-bases, the pipeline's losses), so the hot
        path compares one sum. Every ``top_interval_ms`` of exchange time a ``TOP``
        item carries the top levels for ``book_snapshot_N``.
        """
        if not self.rows:
            return None
        queue, counters, clock_ns = self._queue, self.counters, self.clock_ns
        queue_max, interval = self.queue_max, self.top_interval_ms
        top_levels, block_levels = self.top_levels, self.block_levels
        key = -1  # what the last item followed on from
        next_top_ms = 0

        def applied(ev: DepthDiff) -> None:
            nonlocal key, next_top_ms
            if len(queue) >= queue_max or counters.suspended:
                self._drop(_BEHIND)
                return
            try:  # called from inside the sync core: a failure here must cost history only
                now = clock_ns()
                event_ms = ev.E
                follows = sync.resets + sync.refreshes + self._rows_lost
                if follows == key:
                    queue.append(encode_item((APPLIED, now, symbol, event_ms, ev.u, ev.b, ev.a)))
                else:
                    bids, asks = sync.book.top(block_levels)
                    queue.append(encode_item((BLOCK, now, symbol, event_ms, ev.u, bids, asks)))
                    key = follows
                if event_ms >= next_top_ms:
                    if interval:
                        next_top_ms = (event_ms // interval + 1) * interval
                    bids, asks = sync.book.top(top_levels)
                    queue.append(encode_item((TOP, now, symbol, event_ms, bids, asks)))
            except Exception as exc:  # the rows lost: a suspension, and a block after it
                self._drop(f"{symbol}: a book event could not be queued ({exc!r})")

        return applied

    def trade(self, symbol: str, trade: AggTrade) -> None:
        """A trade the engine took (once, whichever feed line brought it): a row."""
        item = (TRADE, self.clock_ns(), symbol, trade.a, trade.p, trade.q, trade.T, trade.m)
        self._put(item)

    def publish(self, update: Update) -> None:
        """As an output: book states and 24h figures over time, for the row stores."""
        if not self.rows:
            return
        if type(update) is BookUpdate:
            symbol, state = update.symbol, update.state
            if state is self._book_states.get(symbol):
                return  # only a change of state makes a book_state row
            bids, asks = update.bids, update.asks
            now = self.clock_ns()
            # The row's timestamp is the exchange's (the book's last event, E) while the
            # book follows the exchange; a book that does not (syncing, stale, after a
            # break) changed state at a local moment, maybe long after its last event.
            followed = state.trusted and update.event_time_ms
            event_ns = update.event_time_ms * 1_000_000 if followed else now
            item = (
                BOOK,
                now,
                symbol,
                state.label,
                event_ns,
                update.last_update_id,
                bids[0][0] if bids else None,
                asks[0][0] if asks else None,
            )
            if self._put(item):
                self._book_states[symbol] = state
        elif type(update) is MarketDataUpdate:
            now = self.clock_ns()
            second = now // 1_000_000_000
            if self._market_seconds.get(update.symbol) == second:
                return  # stats_24h keeps one row per symbol per second
            if self._put((MARKET, now, update.symbol, update.payload)):
                self._market_seconds[update.symbol] = second

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)  # the writer may take seconds: not on the loop

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    def _put(self, item: tuple[Any, ...]) -> bool:
        if len(self._queue) >= self.queue_max or self.counters.suspended:
            self._drop(_BEHIND)
            return False
        self._queue.append(encode_item(item))
        return True

    def _drop(self, reason: str) -> None:
        counters = self.counters
        counters.dropped += 1
        if not counters.suspended:
            counters.suspended = True
            counters.suspensions += 1
            counters.reason = reason
            # The thread sees the suspension, clears the queue and logs it: clearing
            # 200,000 items here would stall the event loop for tens of ms.

    # ------------------------------------------------------------------- thread

    def start(self) -> None:
        """Start the history process and the thread that feeds it."""
        self._process = HistoryProcess(self.config)
        self._thread = threading.Thread(target=self._run, name="history-feeder", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 30.0) -> None:
        """Send what is queued, close every file; returns when the history process ended."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def _run(self) -> None:
        logged_suspension = False
        while True:
            self._read_status()
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
            sent = self._send_once()
            if not sent and self._stop.is_set():
                break
            if sent < BATCH and not self._stop.is_set():
                self._stop.wait(IDLE_S)
        self._finish()

    def _send_once(self) -> int:
        """Send up to ``BATCH`` items; how many (0: there were none)."""
        queue = self._queue
        count = min(len(queue), BATCH)  # only this thread takes items: count stays there
        if not count:
            return 0
        popleft = queue.popleft
        items = [popleft() for _ in range(count)]
        self.counters.queued += count
        self._send((ITEMS, items))
        return count

    def _send(self, message: tuple[Any, ...] | None) -> bool:
        assert self._process is not None
        try:
            self._process.send(message)
        except OSError as exc:
            self._drop(f"the history process is gone ({exc})")
            return False
        return True

    def _read_status(self, timeout_s: float = 0.0) -> bool:
        """Take in every report the history process sent (waiting ``timeout_s`` for one).

        False when none came.
        """
        assert self._process is not None
        came = False
        try:
            while (status := self._process.status(timeout_s)) is not None:
                self._take(status)
                came = True
                timeout_s = 0.0
        except (OSError, EOFError):
            self._closed = True  # a dead process: nothing more will come
        return came

    def _take(self, status: dict[str, Any]) -> None:
        counters = self.counters
        counters.recorded_lines = status["recorded_lines"]
        counters.store_errors = status.get("store_errors", 0)
        counters.write_errors = status["write_errors"] + counters.store_errors
        counters.rows = status.get("rows", {})
        counters.questdb = status.get("questdb", {})
        counters.dropped += status["dropped"] - self._child_dropped
        self._child_dropped = status["dropped"]
        lost = status.get("rows_lost", 0)
        if lost > self._child_rows_lost:  # a store lost rows: every book's next ones
            self._rows_lost += 1  # start again with a block
        self._child_rows_lost = lost
        if "resume" in status:
            self._answer = (status["resume"], status.get("error", ""))
        self._closed = self._closed or bool(status.get("closed"))
        if status["suspension"] > self._suspension_seen:  # a write failed over there
            self._suspension_seen = status["suspension"]
            if not counters.suspended:
                counters.suspended = True
                counters.suspensions += 1
                counters.reason = status["suspended"]

    def _suspend(self, reason: str) -> None:
        log.error(
            "history suspended: %s; the service keeps serving, recording and the history "
            "store are off until the disk takes writes again (retrying every %.0fs)",
            reason,
            self.retry_s,
            extra={"reason": reason},
        )
        self.counters.dropped += len(self._queue)  # what was queued is dropped, and counted
        self._queue.clear()  # here, on the thread, not on the event loop
        self._forget_rows()
        self._send((SUSPEND, reason))
        self._retry_at = time.monotonic() + self.retry_s

    def _resume(self) -> bool:
        """Try the disk again; True when history runs again (after a ``recording_gap``)."""
        self._queue.clear()
        self._attempt += 1
        self._retry_at = time.monotonic() + self.retry_s
        reason = self.counters.reason
        if not self._restart_if_gone():
            return False
        symbols = sorted(self._symbols)
        if not self._send((RESUME, self.clock_ns(), reason, self._attempt, symbols)):
            log.warning("history still suspended: the history process is gone")
            return False
        deadline = time.monotonic() + RESUME_WAIT_S
        while self._answer[0] != self._attempt and not self._closed:
            left = deadline - time.monotonic()
            if left <= 0 or not self._read_status(left):
                log.warning("history still suspended: the history process did not answer")
                return False
        error = self._answer[1] if self._answer[0] == self._attempt else "it is gone"
        if error:
            log.warning("history still suspended: %s", error)
            return False
        self._forget_rows()  # before the hooks take items again
        self.counters.suspended = False
        self.counters.reason = ""
        log.warning("history resumed (a recording_gap marks the hole)")
        return True

    def _restart_if_gone(self) -> bool:
        """Start a new history process if the last one died; False if that failed."""
        process = self._process
        assert process is not None
        if process.alive:
            return True
        log.error(
            "the history process ended (exit code %s): starting a new one",
            process.process.returncode,
        )
        process.close()
        try:
            self._process = HistoryProcess(self.config)
        except OSError as exc:
            self._process = process  # still the dead one: the next retry tries again
            log.warning("history still suspended: no new history process (%s)", exc)
            return False
        self._child_dropped = self._suspension_seen = self._child_rows_lost = 0  # from 0
        self._answer = (0, "")
        self._closed = False
        return True

    def _forget_rows(self) -> None:
        """Forget what the rows followed on from: dropped items never reach a store, so
        after a resume each book starts again with a block and the same state or 24h
        second makes a row again."""
        self._rows_lost += 1
        self._book_states.clear()
        self._market_seconds.clear()

    def _finish(self) -> None:
        assert self._process is not None
        if not self.counters.suspended:
            while self._send_once():
                pass
        if self._send(None):
            deadline = time.monotonic() + RESUME_WAIT_S
            while not self._closed and self._read_status(max(0.0, deadline - time.monotonic())):
                pass
        self._process.close()
