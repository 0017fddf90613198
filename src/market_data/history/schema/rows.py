"""Recorded items in, rows of the history kinds out: pure, no I/O, no clock.

The kinds and their columns follow the tardis.dev CSV schemas, so tooling
written for those files reads these (an extra column is added where noted):

``trades``
    exchange, symbol, timestamp, local_timestamp, id, side, price, amount.
    ``side`` is the aggressor's: ``sell`` when the buyer was the maker.
``incremental_book_L2``
    exchange, symbol, timestamp, local_timestamp, is_snapshot, side, price,
    amount, and ``update_id`` (the exchange's final update id ``u`` of the
    event; not in tardis). ``amount`` 0 deletes the level. Every time a book
    becomes live (at start, after a gap, a reconnect, a re-base) a block of
    ``is_snapshot`` rows carries the whole book: a reader clears its book when a
    snapshot block starts.
``book_snapshot_{N}``
    exchange, symbol, timestamp, local_timestamp, then ``asks[0].price``,
    ``asks[0].amount``, ``bids[0].price``, ``bids[0].amount``, ... for N levels
    (empty levels are null); one row every ``interval_ms`` of exchange time
    while the book is live (0: after every change).
``book_state``
    exchange, symbol, timestamp, local_timestamp, state, last_update_id,
    best_bid, best_ask: one row whenever a published book changes state.
``stats_24h``
    exchange, symbol, timestamp, local_timestamp, last_price, volume, quote_volume,
    high, low, trade_count, window_complete: the published 24h figures, at
    most one row per symbol per second.

``timestamp`` is the exchange's time (event time ``E``, trade time ``T``) and
``local_timestamp`` the local receive time, both **microseconds since the
Unix epoch, UTC** (tardis' unit). The books are rebuilt here by the same sync
core as the service's, from the same frames, snapshots and connection events.
"""

import json
from collections import deque
from dataclasses import dataclass, field
from itertools import chain, cycle, repeat
from typing import Any

from market_data.binance.decode import (
    DecodeError,
    StreamKind,
    UnsupportedStreamError,
    decode_frame,
    decode_snapshot,
)
from market_data.binance.schemas import AggTrade, DepthUpdate
from market_data.core.book import Level
from market_data.core.sync import BookAudit, BookLive, DepthSync

EXCHANGE = "binance-futures"
#: Trade ids remembered per symbol to drop the copies of a second feed line.
SEEN_TRADES = 10_000

Row = tuple[Any, ...]

TRADES = ("exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount")
INCREMENTAL = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "is_snapshot",
    "side",
    "price",
    "amount",
    "update_id",
)
BOOK_STATE = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "state",
    "last_update_id",
    "best_bid",
    "best_ask",
)
STATS = (
    "exchange",
    "symbol",
    "timestamp",
    "local_timestamp",
    "last_price",
    "volume",
    "quote_volume",
    "high",
    "low",
    "trade_count",
    "window_complete",
)


def snapshot_columns(levels: int) -> tuple[str, ...]:
    """``book_snapshot_N``'s columns, in tardis' order."""
    names = ["exchange", "symbol", "timestamp", "local_timestamp"]
    for i in range(levels):
        names += [f"asks[{i}].price", f"asks[{i}].amount", f"bids[{i}].price", f"bids[{i}].amount"]
    return tuple(names)


#: One book event's rows before they are columns: (timestamp µs, local µs, is_snapshot,
#: update id, bid levels, ask levels).
BookEvent = tuple[int, int, bool, int, list[Level], list[Level]]
#: What the builder hands out: (kind, symbol, columns in the kind's column order).
Chunk = tuple[str, str, list[list[Any]]]


@dataclass
class _Symbol:
    sync: DepthSync
    applied: list[Any] = field(default_factory=list)  # the DepthUpdates applied
    next_snapshot_ms: int = 0
    seen_trades: set[int] = field(default_factory=set)
    seen_order: deque[int] = field(default_factory=deque)
    state: str = ""
    stats_second: int = -1
    # Waiting for the next take(): one entry per book event (its levels as the event
    # holds them) and one tuple per row of the other kinds; columns are made at take().
    book: list[BookEvent] = field(default_factory=list)
    rows: dict[str, list[Row]] = field(default_factory=dict)


class RowBuilder:
    """Feeds per-symbol sync machines like the engine's; :meth:`take` hands out the rows.

    Rows come out as columns (:data:`Chunk`), built once for every store: a book
    event costs one append here, its levels become columns in C at :meth:`take`.
    """

    def __init__(
        self,
        *,
        snapshot_levels: int = 10,
        snapshot_interval_ms: int = 100,
        max_levels: int = 1000,
        max_buffer: int = 1000,
        lines: int = 1,
    ) -> None:
        self.snapshot_levels = snapshot_levels
        self.snapshot_kind = f"book_snapshot_{snapshot_levels}"
        self.snapshot_interval_ms = snapshot_interval_ms
        self.max_levels = max_levels
        self.max_buffer = max_buffer
        self.lines = lines
        self.symbols: dict[str, _Symbol] = {}
        self.malformed = 0

    def _symbol(self, symbol: str) -> _Symbol:
        state = self.symbols.get(symbol)
        if state is None:
            sync = DepthSync(
                symbol, max_levels=self.max_levels, max_buffer=self.max_buffer, lines=self.lines
            )
            state = self.symbols[symbol] = _Symbol(sync)
            sync.on_applied = state.applied.append
        return state

    @staticmethod
    def _emit(state: _Symbol, kind: str, row: Row) -> None:
        rows = state.rows.get(kind)
        if rows is None:
            rows = state.rows[kind] = []
        rows.append(row)

    # --------------------------------------------------------------------- input

    def on_frame(self, recv_ns: int, frame: bytes | str, line: int = 0) -> None:
        try:
            kind, event = decode_frame(frame)
        except UnsupportedStreamError:
            return
        except DecodeError:
            self.malformed += 1
            return
        if kind is StreamKind.DIFF_DEPTH:
            assert isinstance(event, DepthUpdate)
            state = self._symbol(event.s)
            was_live = state.sync.is_live
            state.sync.on_depth(event, line)
            self._after(state, recv_ns, was_live, event.E)
        elif kind is StreamKind.AGG_TRADE:
            assert isinstance(event, AggTrade)
            state = self._symbol(event.s)
            trade_id = event.a
            if self.lines > 1:
                if trade_id in state.seen_trades:
                    return
                state.seen_trades.add(trade_id)
                state.seen_order.append(trade_id)
                if len(state.seen_order) > SEEN_TRADES:
                    state.seen_trades.discard(state.seen_order.popleft())
            self._emit(
                state,
                "trades",
                (
                    EXCHANGE,
                    event.s,
                    event.T * 1000,
                    recv_ns // 1000,
                    str(trade_id),
                    "sell" if event.m else "buy",
                    event.p,
                    event.q,
                ),
            )

    def on_snapshot(self, recv_ns: int, symbol: str, body: bytes) -> None:
        try:
            snapshot = decode_snapshot(body)
        except DecodeError:
            self.malformed += 1
            return
        state = self._symbol(symbol)
        was_live = state.sync.is_live
        state.sync.on_snapshot(snapshot)
        self._after(state, recv_ns, was_live, snapshot.E)

    def on_connection(self, recv_ns: int, event: dict[str, Any]) -> None:
        if not event.get("depth", True):
            return
        kind = event.get("connection")
        line = int(event.get("line", 0))
        for symbol in event.get("symbols", ()):
            state = self._symbol(str(symbol))
            if kind == "disconnected":
                state.sync.on_disconnect(line if self.lines > 1 else None)
            elif kind == "connected" and self.lines > 1:
                state.sync.on_line_up(line)
            self._after(state, recv_ns, state.sync.is_live, 0)

    def on_gap(self, recv_ns: int) -> None:
        """History missed items: every book is untrusted until it resyncs."""
        for state in self.symbols.values():
            state.sync.on_disconnect()
            self._after(state, recv_ns, False, 0)

    def on_book(
        self,
        recv_ns: int,
        symbol: str,
        label: str,
        local_ts_ns: int,
        last_update_id: int,
        best_bid: float | None,
        best_ask: float | None,
    ) -> None:
        """A published book (its state's ``label``): a row when the state changed."""
        state = self._symbol(symbol)
        if label == state.state:
            return
        state.state = label
        row = (EXCHANGE, symbol, local_ts_ns // 1000, recv_ns // 1000, label)
        self._emit(state, "book_state", (*row, last_update_id, best_bid, best_ask))

    def on_market(self, recv_ns: int, symbol: str, payload: bytes) -> None:
        state = self._symbol(symbol)
        second = recv_ns // 1_000_000_000
        if second == state.stats_second:
            return
        try:
            body = json.loads(payload)
            row = (
                EXCHANGE,
                symbol,
                int(body["updated_at"]) * 1000,
                recv_ns // 1000,
                _float(body.get("last_price")),
                _float(body.get("volume_24h")),
                _float(body.get("quote_volume_24h")),
                _float(body.get("high_24h")),
                _float(body.get("low_24h")),
                int(body.get("trade_count_24h") or 0),
                bool(body.get("window_complete")),
            )
        except (ValueError, TypeError, KeyError):
            self.malformed += 1
            return
        state.stats_second = second
        self._emit(state, "stats_24h", row)

    # -------------------------------------------------------------------- output

    def take(self) -> list[Chunk]:
        """Every row built since the last call, as columns per kind and symbol."""
        chunks: list[Chunk] = []
        for symbol, state in self.symbols.items():
            if state.book:
                chunks.append(("incremental_book_L2", symbol, _book_columns(symbol, state.book)))
                state.book = []
            if state.rows:
                for kind, rows in state.rows.items():
                    chunks.append(
                        (kind, symbol, [list(column) for column in zip(*rows, strict=True)])
                    )
                state.rows = {}
        return chunks

    def _after(self, state: _Symbol, recv_ns: int, was_live: bool, event_ms: int) -> None:
        """Rows for what the last input did to the book."""
        sync = state.sync
        rebased = False
        for output in sync.drain():
            if isinstance(output, BookLive):
                was_live = False  # a new snapshot block follows
            elif isinstance(output, BookAudit):
                rebased = True
        applied = state.applied
        if not sync.is_live:
            applied.clear()
            return
        local_us = recv_ns // 1000
        last = applied[-1] if applied else None
        if last is not None:
            event_ms = last.E
        if not was_live or rebased:
            bids, asks = sync.book.top(self.max_levels)
            state.book.append(
                (event_ms * 1000, local_us, True, sync.book.last_update_id, bids, asks)
            )
        else:
            book = state.book
            for ev in applied:
                book.append((ev.E * 1000, local_us, False, ev.u, ev.b, ev.a))
        changed = bool(applied) or not was_live or rebased
        applied.clear()
        if changed:
            self._book_snapshot(state, recv_ns, event_ms)

    def _book_snapshot(self, state: _Symbol, recv_ns: int, event_ms: int) -> None:
        interval = self.snapshot_interval_ms
        if interval:
            if event_ms < state.next_snapshot_ms:
                return
            state.next_snapshot_ms = (event_ms // interval + 1) * interval
        n = self.snapshot_levels
        bids, asks = state.sync.book.top(n)
        row: list[Any] = [EXCHANGE, state.sync.symbol, event_ms * 1000, recv_ns // 1000]
        for i in range(n):
            ask = asks[i] if i < len(asks) else (None, None)
            bid = bids[i] if i < len(bids) else (None, None)
            row += [ask[0], ask[1], bid[0], bid[1]]
        self._emit(state, self.snapshot_kind, tuple(row))


def _book_columns(symbol: str, events: list[BookEvent]) -> list[list[Any]]:
    """``incremental_book_L2``'s columns: a row per level, bids before asks per event.

    Everything per row runs in C (``repeat``, ``chain``, ``zip``): only the events
    are visited in Python.
    """
    ts, local, snapshot, update, bids, asks = zip(*events, strict=True)
    sides = list(chain.from_iterable(zip(map(len, bids), map(len, asks), strict=True)))
    per_event = list(map(int.__add__, sides[0::2], sides[1::2]))
    levels = list(chain.from_iterable(chain.from_iterable(zip(bids, asks, strict=True))))
    n = len(levels)
    prices, amounts = (list(c) for c in zip(*levels, strict=True)) if n else ([], [])

    def spread(values: tuple[Any, ...]) -> list[Any]:
        return list(chain.from_iterable(map(repeat, values, per_event)))

    return [
        [EXCHANGE] * n,
        [symbol] * n,
        spread(ts),
        spread(local),
        spread(snapshot),
        list(chain.from_iterable(map(repeat, cycle(("bid", "ask")), sides))),
        prices,
        amounts,
        spread(update),
    ]


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
