"""What the service's books and trades did in, rows of the history kinds out: pure, no I/O.

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
Unix epoch, UTC** (tardis' unit).

The service's engine says what its books did (``history/pipeline.py``'s
hooks): every event it applied to a live book, a whole book whenever the rows
must start again (a book that went live, a re-based book, the first event
after history missed items), the top N levels every ``interval_ms``, and every
trade it took (de-duplicated across feed lines). The rows are made from that
alone: nothing is decoded or synchronised twice, and ``incremental_book_L2``
rebuilds exactly the books the service held, for a reader that bounds each side
to ``max_levels_per_side`` as the service does (no row deletes a level the
bound drops).
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from itertools import chain, cycle, repeat
from typing import Any

import msgspec

from market_data.core.book import Level

EXCHANGE = "binance-futures"
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


#: A side's levels as the engine sends them: (price, amount) pairs, best first for a
#: whole book, in the event's order for a diff; after the trip between processes, the
#: msgpack array they were sent as (``msgspec.Raw``: see :func:`_level_columns`).
LevelList = list[Level] | list[list[float]]
Levels = LevelList | msgspec.Raw
#: One book event's rows before they are columns: (timestamp µs, local µs, is_snapshot,
#: update id, bid levels, ask levels).
BookEvent = tuple[int, int, bool, int, Levels, Levels]
#: What the builder hands out: (kind, symbol, columns in the kind's column order, as
#: lists), except for ``incremental_book_L2``, whose columns are :data:`BOOK_COLUMNS`
#: (its three level columns numpy arrays when read from the levels' bytes).
Chunk = tuple[str, str, list[Any]]
#: ``incremental_book_L2``'s chunk columns: four per event, two per event (the number of
#: bid levels, then of ask levels), two per level row (bids before asks per event).
#: Spreading the event's values over its rows is the store's job, done where it is
#: cheapest (with numpy for Parquet), or by :func:`book_rows`.
BOOK_COLUMNS = (
    "timestamp",
    "local_timestamp",
    "is_snapshot",
    "update_id",
    "side_counts",
    "price",
    "amount",
)


@dataclass
class _Symbol:
    state: str = ""
    stats_second: int = -1
    # Waiting for the next take(): one entry per book event (its levels as the event
    # holds them) and one tuple per row of the other kinds; columns are made at take().
    book: list[BookEvent] = field(default_factory=list)
    rows: dict[str, list[Row]] = field(default_factory=dict)


class RowBuilder:
    """Rows from what the engine's books did; :meth:`take` hands them out as columns.

    Rows come out as columns (:data:`Chunk`), built once for every store: a book
    event costs one append here, its levels become columns in C at :meth:`take`.
    """

    def __init__(self, *, snapshot_levels: int = 10) -> None:
        self.snapshot_levels = snapshot_levels
        self.snapshot_kind = f"book_snapshot_{snapshot_levels}"
        self.symbols: dict[str, _Symbol] = {}
        self.malformed = 0
        #: Book events whose rows could not be made (levels of the wrong type: a bug).
        self.lost_events = 0

    def _symbol(self, symbol: str) -> _Symbol:
        state = self.symbols.get(symbol)
        if state is None:
            state = self.symbols[symbol] = _Symbol()
        return state

    def _emit(self, symbol: str, kind: str, row: Row) -> None:
        rows = self._symbol(symbol).rows
        kind_rows = rows.get(kind)
        if kind_rows is None:
            kind_rows = rows[kind] = []
        kind_rows.append(row)

    # --------------------------------------------------------------------- input

    def on_applied(
        self, recv_ns: int, symbol: str, event_ms: int, u: int, bids: Levels, asks: Levels
    ) -> None:
        """A diff event the service applied to a live book: its levels, as it held them."""
        self._symbol(symbol).book.append((event_ms * 1000, recv_ns // 1000, False, u, bids, asks))

    def on_block(
        self, recv_ns: int, symbol: str, event_ms: int, u: int, bids: Levels, asks: Levels
    ) -> None:
        """The whole book at update id ``u``: a snapshot block (a reader starts again)."""
        self._symbol(symbol).book.append((event_ms * 1000, recv_ns // 1000, True, u, bids, asks))

    def on_top(
        self, recv_ns: int, symbol: str, event_ms: int, bids: LevelList, asks: LevelList
    ) -> None:
        """The top levels of a live book: one ``book_snapshot_N`` row."""
        n = self.snapshot_levels
        row: list[Any] = [EXCHANGE, symbol, event_ms * 1000, recv_ns // 1000]
        for i in range(n):
            ask = asks[i] if i < len(asks) else (None, None)
            bid = bids[i] if i < len(bids) else (None, None)
            row += [ask[0], ask[1], bid[0], bid[1]]
        self._emit(symbol, self.snapshot_kind, tuple(row))

    def on_trade(
        self,
        recv_ns: int,
        symbol: str,
        trade_id: int,
        price: float,
        quantity: float,
        time_ms: int,
        buyer_maker: bool,
    ) -> None:
        """A trade the service took (each once, whichever line brought it)."""
        side = "sell" if buyer_maker else "buy"
        row = (EXCHANGE, symbol, time_ms * 1000, recv_ns // 1000, str(trade_id), side)
        self._emit(symbol, "trades", (*row, price, quantity))

    def on_book(
        self,
        recv_ns: int,
        symbol: str,
        label: str,
        event_ns: int,
        last_update_id: int,
        best_bid: float | None,
        best_ask: float | None,
    ) -> None:
        """A published book (its state's ``label``): a row when the state changed."""
        state = self._symbol(symbol)
        if label == state.state:
            return
        state.state = label
        row = (EXCHANGE, symbol, event_ns // 1000, recv_ns // 1000, label)
        self._emit(symbol, "book_state", (*row, last_update_id, best_bid, best_ask))

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
        self._emit(symbol, "stats_24h", row)

    # -------------------------------------------------------------------- output

    def take(self) -> list[Chunk]:
        """Every row built since the last call, as columns per kind and symbol."""
        chunks: list[Chunk] = []
        for symbol, state in self.symbols.items():
            if state.book:
                events, state.book = state.book, []
                try:
                    chunks.append(("incremental_book_L2", symbol, _book_columns(events)))
                except (msgspec.ValidationError, TypeError, ValueError):
                    self.lost_events += len(events)  # costs these rows, not the process
            if state.rows:
                for kind, rows in state.rows.items():
                    chunks.append(
                        (kind, symbol, [list(column) for column in zip(*rows, strict=True)])
                    )
                state.rows = {}
        return chunks


def _book_columns(events: list[BookEvent]) -> list[Any]:
    """``incremental_book_L2`` in its compact chunk form (:data:`BOOK_COLUMNS`).

    Only the events are visited in Python. Levels still in their msgpack form
    (the history process's) become numpy columns in one pass over their bytes
    (:func:`_level_columns`); levels as lists are flattened in C (``chain``,
    ``zip``). Spreading the per-event values over the level rows is left to the
    store: Parquet does it with numpy, :func:`book_rows` in plain lists.
    """
    ts, local, snapshot, update, bids, asks = zip(*events, strict=True)
    blobs: list[Any] = list(chain.from_iterable(zip(bids, asks, strict=True)))
    head = [list(ts), list(local), list(snapshot), list(update)]
    if len(events) >= _ARRAY_EVENTS and set(map(type, blobs)) == _RAW_ONLY:  # checked in C
        columns = _level_columns(blobs)
        if columns is not None:
            return head + list(columns)
        blobs = [_decode_levels(blob) for blob in blobs]  # not all floats: the long way
    else:
        blobs = [_decode_levels(b) if type(b) is msgspec.Raw else b for b in blobs]
    sides = list(map(len, blobs))
    levels = list(chain.from_iterable(blobs))
    prices, amounts = (list(c) for c in zip(*levels, strict=True)) if levels else ([], [])
    return head + [sides, prices, amounts]


_decode_levels = msgspec.msgpack.Decoder(list[tuple[float, float]]).decode
_RAW_ONLY = {msgspec.Raw}
#: One level as msgspec encodes a (float, float) pair: fixarray(2), float64, float64.
_LEVEL_SIZE = 19
#: Below this many events a chunk's levels are decoded (numpy's set-up, ~25 μs, costs
#: more than decoding them: 1 event 4 against 24 μs, 20 events 32 against 31 μs).
_ARRAY_EVENTS = 16


def _level_columns(blobs: Sequence[msgspec.Raw]) -> tuple[Any, Any, Any] | None:
    """Level counts, prices and amounts (numpy arrays) of msgpack level arrays, or None.

    Decoding the levels into Python objects (a list and two floats a level) and
    flattening them again was most of the history process's cost for a book
    event. A pair of floats is always the same 19 bytes (``0x92``, ``0xcb`` and a
    big-endian float64, twice): with the arrays' headers cut out, the joined
    bytes are an array of such records. Anything else (an integer, more than
    65,535 levels) is not that layout: None, and the caller decodes the long way.
    """
    try:
        import numpy as np
    except ImportError:  # numpy comes with the history extra; without it, the long way
        return None
    i64 = np.int64
    lengths = np.fromiter(map(len, blobs), dtype=i64, count=len(blobs))
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    starts = np.cumsum(lengths) - lengths
    tag = data[starts]
    short = (tag >= 0x90) & (tag <= 0x9F)  # fixarray: the count in the tag
    wide = tag == 0xDC  # array16: the count in the next two bytes
    if not bool((short | wide).all()):
        return None
    counts = tag.astype(i64) - 0x90
    header = np.ones(len(blobs), dtype=i64)
    keep = np.ones(len(data), dtype=bool)
    keep[starts] = False
    if wide.any():
        at = starts[wide]
        counts[wide] = data[at + 1].astype(i64) * 256 + data[at + 2]
        header[wide] = 3
        keep[at + 1] = keep[at + 2] = False
    if not bool((lengths == header + _LEVEL_SIZE * counts).all()):
        return None
    levels = data[keep].view(_level_record())
    if not bool(
        (levels["pair"] == 0x92).all()
        and (levels["price_tag"] == 0xCB).all()
        and (levels["amount_tag"] == 0xCB).all()
    ):
        return None
    return counts, levels["price"].astype(np.float64), levels["amount"].astype(np.float64)


@cache
def _level_record() -> Any:
    """The numpy record of one encoded level (see :func:`_level_columns`)."""
    import numpy as np

    fields = [("pair", "u1"), ("price_tag", "u1"), ("price", ">f8")]
    return np.dtype([*fields, ("amount_tag", "u1"), ("amount", ">f8")])


def book_rows(symbol: str, columns: list[Any]) -> list[list[Any]]:
    """A compact ``incremental_book_L2`` chunk as the kind's row columns (:data:`INCREMENTAL`):
    a row per level, bids before asks per event."""
    ts, local, snapshot, update, sides, prices, amounts = (_list(c) for c in columns)
    per_event = list(map(int.__add__, sides[0::2], sides[1::2]))

    def spread(values: list[Any]) -> list[Any]:
        return list(chain.from_iterable(map(repeat, values, per_event)))

    n = len(prices)
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


def _list(column: Any) -> list[Any]:
    """A chunk column as a list (the level columns may be numpy arrays)."""
    return column if type(column) is list else column.tolist()


def _float(value: object) -> float | None:
    return None if value is None else float(value)  # type: ignore[arg-type]
