"""Replay a recorded capture through the same decoder and sync core as live.

This is how correctness is proven on real data: every applied depth event can
be traced (``--book-trace``) as the top levels after applying it, in the
exchange's own spelling of prices and quantities, and compared with an
independent implementation.

Snapshots are delivered the way the live service would see them: a recorded
snapshot is handed to a symbol's state machine at its recorded time if the
machine has asked for one, or as soon as it asks (a recorder often fetches the
snapshot before the first event arrives). Each recorded snapshot is used once;
after a reset with no snapshot left, the symbol stays unsynchronised, which the
summary shows.

A recording of this service (``market_data.history``) says more, and is
replayed exactly as the service lived it: each snapshot is fed at the point
the service fed it, each frame on its feed line, and a disconnect (or a gap in
the recording) is a gap for the books of that connection, as it was live.
"""

import json
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import IO

import msgspec

from market_data.binance.decode import (
    DecodeError,
    StreamKind,
    UnsupportedStreamError,
    decode_frame,
    decode_snapshot,
)
from market_data.binance.schemas import DepthSnapshot
from market_data.capture import CaptureItem
from market_data.core.book import Level, format_decimal
from market_data.core.partial import PartialDepthBook
from market_data.core.sync import BookLive, BookReset, DepthDiff, DepthSync, SnapshotNeeded

TextLevel = tuple[str, str]


class _DepthText(msgspec.Struct):
    b: list[TextLevel]
    a: list[TextLevel]


class _FrameText(msgspec.Struct):
    data: _DepthText


class _SnapshotText(msgspec.Struct):
    bids: list[TextLevel]
    asks: list[TextLevel]


_frame_text = msgspec.json.Decoder(_FrameText)
_snapshot_text = msgspec.json.Decoder(_SnapshotText)


class Spellings:
    """How the exchange wrote each price and quantity value, for faithful traces."""

    def __init__(self) -> None:
        self.prices: dict[float, str] = {}
        self.quantities: dict[float, str] = {}

    def learn(self, levels: Iterable[TextLevel]) -> None:
        prices = self.prices
        quantities = self.quantities
        for price, qty in levels:
            prices[float(price)] = price
            quantities[float(qty)] = qty

    def render(self, levels: list[Level]) -> list[TextLevel]:
        prices = self.prices
        quantities = self.quantities
        return [
            (prices.get(p) or format_decimal(p), quantities.get(q) or format_decimal(q))
            for p, q in levels
        ]


@dataclass
class SymbolReplay:
    """Everything replay keeps for one symbol."""

    sync: DepthSync
    spellings: Spellings = field(default_factory=Spellings)
    snapshots: list[DepthSnapshot] = field(default_factory=list)
    partial: PartialDepthBook | None = None
    first_live: list[BookLive] = field(default_factory=list)
    resets: Counter[str] = field(default_factory=Counter)
    trades: int = 0


@dataclass
class ReplaySummary:
    frames: int = 0
    depth_events: int = 0
    partial_events: int = 0
    trades: int = 0
    book_tickers: int = 0
    snapshots: int = 0
    unsupported: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    connection_events: Counter[str] = field(default_factory=Counter)


TraceWriter = Callable[[str, int, list[TextLevel], list[TextLevel]], None]


class Replayer:
    """Feeds capture items to per-symbol state machines, in order."""

    def __init__(
        self,
        *,
        symbol: str | None = None,
        depth: int = 20,
        trace: TraceWriter | None = None,
        max_levels: int = 5000,
        max_buffer: int = 1000,
        lines: int = 1,
    ) -> None:
        self.only_symbol = symbol.upper() if symbol else None
        self.depth = depth
        self.trace = trace
        self.max_levels = max_levels
        self.max_buffer = max_buffer
        self.lines = lines
        self.symbols: dict[str, SymbolReplay] = {}
        self.summary = ReplaySummary()

    def feed(self, item: CaptureItem) -> None:
        if item.event is not None:
            self._on_connection(item.event, item.body)
        elif item.snapshot_symbol is not None:
            self._on_snapshot(item.snapshot_symbol, item.body, item.used)
        else:
            self._on_frame(item.body, item.line)

    def feed_all(self, items: Iterable[CaptureItem]) -> "Replayer":
        for item in items:
            self.feed(item)
        return self

    def _symbol(self, symbol: str) -> SymbolReplay:
        state = self.symbols.get(symbol)
        if state is None:
            sync = DepthSync(
                symbol, max_levels=self.max_levels, max_buffer=self.max_buffer, lines=self.lines
            )
            state = SymbolReplay(sync)
            if self.trace is not None:
                sync.on_applied = self._tracer(state)
            self.symbols[symbol] = state
        return state

    def _tracer(self, state: SymbolReplay) -> Callable[[DepthDiff], None]:
        trace = self.trace
        assert trace is not None
        book = state.sync.book
        spellings = state.spellings
        depth = self.depth

        def write(ev: DepthDiff) -> None:
            bids, asks = book.top(depth)
            trace(book.symbol, ev.u, spellings.render(bids), spellings.render(asks))

        return write

    def _on_connection(self, event: str, body: bytes) -> None:
        """A recorded connection event: what the service did with its books, done again."""
        try:
            fields = json.loads(body)
            listed = fields.get("symbols", [])
            if not isinstance(listed, list):  # a string would read as one symbol a letter
                raise TypeError("symbols is not a list")
            symbols = [str(s) for s in listed]
            line = int(fields.get("line", 0))
            depth = bool(fields.get("depth", True))
        except (ValueError, TypeError, AttributeError):
            self.summary.malformed += 1
            return
        self.summary.connection_events[event] += 1
        for symbol in symbols:
            if (self.only_symbol and symbol != self.only_symbol) or not depth:
                continue
            state = self._symbol(symbol)
            if event == "disconnected":
                state.sync.on_disconnect(line if self.lines > 1 else None)
            elif event == "recording_gap":
                state.sync.on_disconnect()
            elif event == "connected" and self.lines > 1:
                state.sync.on_line_up(line)
            self._handle_outputs(state)

    def _on_snapshot(self, symbol: str, body: bytes, used: bool = False) -> None:
        if self.only_symbol and symbol != self.only_symbol:
            return
        try:  # the service's own reading: what it could not read, it could not have used
            snapshot = decode_snapshot(body)
        except DecodeError:
            self.summary.malformed += 1
            return
        try:  # the trace's spelling of prices, if they are strings as the exchange sends
            text = _snapshot_text.decode(body) if self.trace is not None else None
        except msgspec.DecodeError:
            text = None  # the trace spells those prices as numbers read back
        self.summary.snapshots += 1
        state = self._symbol(symbol)
        if text is not None:
            state.spellings.learn(text.bids)
            state.spellings.learn(text.asks)
        if used:  # the service fed it here: so does the replay, pending or not
            state.sync.on_snapshot(snapshot)
            self._handle_outputs(state)
            return
        state.snapshots.append(snapshot)
        if state.sync.snapshot_pending:
            self._deliver_snapshot(state)

    def _on_frame(self, body: bytes, line: int = 0) -> None:
        summary = self.summary
        summary.frames += 1
        try:
            frame = decode_frame(body)
        except UnsupportedStreamError as exc:
            summary.unsupported[str(exc)] += 1
            return
        except DecodeError:
            summary.malformed += 1
            return
        symbol = frame[1].s
        if self.only_symbol and symbol != self.only_symbol:
            return
        if frame[0] is StreamKind.DIFF_DEPTH:
            summary.depth_events += 1
            state = self._symbol(symbol)
            if self.trace is not None:
                text = _frame_text.decode(body).data
                state.spellings.learn(text.b)
                state.spellings.learn(text.a)
            state.sync.on_depth(frame[1], line)
            self._handle_outputs(state)
        elif frame[0] is StreamKind.PARTIAL_DEPTH:
            summary.partial_events += 1
            update = frame[1]
            state = self._symbol(symbol)
            if state.partial is None:
                state.partial = PartialDepthBook(symbol, levels=max(len(update.b), len(update.a)))
            state.partial.on_partial(update)
        elif frame[0] is StreamKind.AGG_TRADE:
            summary.trades += 1
            self._symbol(symbol).trades += 1
        else:
            summary.book_tickers += 1

    def _handle_outputs(self, state: SymbolReplay) -> None:
        for output in state.sync.drain():
            if isinstance(output, SnapshotNeeded):
                if state.snapshots:
                    self._deliver_snapshot(state)
            elif isinstance(output, BookLive):
                state.first_live.append(output)
            elif isinstance(output, BookReset):
                state.resets[output.reason] += 1

    def _deliver_snapshot(self, state: SymbolReplay) -> None:
        state.sync.on_snapshot(state.snapshots.pop(0))
        self._handle_outputs(state)

    def report(self) -> str:
        """A human-readable summary."""
        s = self.summary
        lines = [
            f"frames: {s.frames}  depth events: {s.depth_events}  partial depth: "
            f"{s.partial_events}  trades: {s.trades}  book tickers: {s.book_tickers}  "
            f"snapshots: {s.snapshots}  malformed: {s.malformed}  "
            f"unsupported: {sum(s.unsupported.values())}",
        ]
        for name, st in sorted(self.symbols.items()):
            c = st.sync.counters()
            first = st.first_live[0] if st.first_live else None
            bridge = (
                f"first applied U={first.first_U} u={first.first_u} pu={first.first_pu} "
                f"on snapshot {first.snapshot_id}"
                if first
                else "never synchronised"
            )
            lines.append(
                f"{name}: state={st.sync.state.label} events={c['events']} "
                f"applied={c['applied']} dropped_before_sync={c['dropped_before_sync']} "
                f"stale={c['stale']} gaps={c['gaps']} resets={c['resets']} "
                f"levels={len(st.sync.book.bids)}/{len(st.sync.book.asks)}; {bridge}"
            )
        return "\n".join(lines)


def jsonl_trace(out: IO[bytes]) -> TraceWriter:
    """A trace writer producing one JSON line per applied event."""
    encode = msgspec.json.Encoder().encode

    def write(symbol: str, u: int, bids: list[TextLevel], asks: list[TextLevel]) -> None:
        out.write(encode({"symbol": symbol, "u": u, "bids": bids, "asks": asks}))
        out.write(b"\n")

    return write


#: Items between two looks at the clock: a few milliseconds of replay.
_PROGRESS_STRIDE = 4096


def with_progress(
    items: Iterable[CaptureItem],
    write: Callable[[str], None],
    every_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[CaptureItem]:
    """``items`` unchanged, calling ``write`` with a status line every ``every_s`` seconds:
    how many items so far, how fast, and the recorded time reached (a day's recording
    takes minutes to replay, and would otherwise say nothing until its summary).

    Items pass in chunks of ``_PROGRESS_STRIDE`` (``yield from`` a list): no counting
    per item on the replay's path, half the cost of the plain loop it replaced.
    """
    started = last = clock()
    count = 0
    source = iter(items)
    while chunk := list(islice(source, _PROGRESS_STRIDE)):
        yield from chunk
        count += len(chunk)
        now = clock()
        if now - last >= every_s:
            last = now
            recorded = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(chunk[-1].recv_ns / 1e9))
            rate = count / (now - started) if now > started else 0.0
            write(f"replayed {count:,} items ({rate:,.0f}/s), recorded time {recorded} UTC")
