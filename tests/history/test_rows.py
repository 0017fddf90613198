"""Rows from what the engine's books did: they rebuild every book the sync core held.

The hook the pipeline gives each symbol's sync (``HistoryPipeline.book_rows``)
turns applied events into ``APPLIED`` items, and into a whole-book ``BLOCK``
whenever the rows cannot follow on; the row builder makes ``incremental_book_L2``
and ``book_snapshot_N`` from them. A model exchange with drops, reconnects,
re-bases and history losses drives the sync; the rows must rebuild, at every
update id the sync applied, exactly its book.
"""

import json
from typing import Any
from unittest.mock import patch

import msgspec
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from market_data.binance.decode import decode_snapshot
from market_data.core.sync import DepthSync
from market_data.history.parquet import ParquetStore
from market_data.history.pipeline import HistoryPipeline
from market_data.history.schema import rows as rows_module
from market_data.history.schema.rows import INCREMENTAL, RowBuilder, _level_columns, book_rows
from market_data.history.stores import RowFeed
from market_data.history.worker import (
    APPLIED,
    BLOCK,
    FRAME,
    TOP,
    TRADE,
    decode_items,
    encode_items,
    feed_rows,
)
from market_data.ops.config import Config
from market_data.service.engine import MarketDataService
from tests.core.test_sync import ModelExchange, event_changes, id_steps_60
from tests.history.books import replay_rows

Side = tuple[tuple[float, float], ...]

actions = st.sampled_from(
    ["deliver"] * 6 + ["drop", "duplicate", "reconnect", "snapshot", "refresh", "lose"]
)


def queued(history: HistoryPipeline) -> list[Any]:
    """The pipeline's queue as the history process gets it (book items come encoded)."""
    return [msgspec.msgpack.decode(item) for item in history._queue]


def pipeline(**overrides: Any) -> HistoryPipeline:
    """A pipeline that is never started: its queue is read directly."""
    config = Config(symbols=("BTCUSDT",)).with_overrides(parquet_dir="unused", **overrides)
    return HistoryPipeline(config, queue_max=10**6)


def live(exchange: ModelExchange, **overrides: Any) -> tuple[HistoryPipeline, DepthSync, Any]:
    """A sync with the pipeline's book hook, live on the exchange's first event; the
    exchange's other events, to deliver."""
    history = pipeline(**overrides)
    sync = DepthSync("X")
    sync.on_applied = history.book_rows("X", sync)
    events = iter(exchange.events)
    go_live(sync, exchange, events)
    return history, sync, events


def go_live(sync: DepthSync, exchange: ModelExchange, events: Any) -> None:
    """The next event, then the snapshot at it: the book goes live on that event."""
    ev = next(events)
    sync.on_depth(ev)
    sync.on_snapshot(exchange.snapshot_at(ev.u))


def kinds(history: HistoryPipeline) -> list[int]:
    """The book item kinds queued so far (top levels aside); the queue is emptied."""
    out = [item[0] for item in queued(history) if item[0] != TOP]
    history._queue.clear()
    return out


def build(history: HistoryPipeline) -> RowBuilder:
    """Rows from the pipeline's queue, read as the history process reads a batch."""
    feed = RowFeed(RowBuilder(), [])
    items, unreadable = decode_items(encode_items(list(history._queue)))
    assert unreadable == 0
    feed_rows(feed, items)
    assert feed.errors == 0
    return feed.builder


def rebuilt(columns: list[list[Any]]) -> dict[int, tuple[Side, Side]]:
    """Book after each update id, replaying ``incremental_book_L2`` rows as a reader would."""
    rows = [dict(zip(INCREMENTAL, r, strict=True)) for r in zip(*columns, strict=True)]
    return dict(replay_rows(rows, None))


@settings(max_examples=200, deadline=None)
@given(event_changes, id_steps_60, st.lists(actions, min_size=60, max_size=60))
def test_rows_rebuild_every_book_the_sync_held(
    draw_levels: list[list[tuple[int, int, int]]], id_steps: list[int], plan: list[str]
) -> None:
    exchange = ModelExchange(draw_levels, id_steps)
    for ev in exchange.events:
        ev.E = ev.u  # event time: the id, to find TOP rows
    for bids, asks in exchange.history.values():  # a level no event touches: a book with
        bids[50.0], asks[150.0] = 1.0, 1.0  # no level at all makes no block rows
    history = pipeline(parquet_book_snapshot_interval_ms=0)  # a TOP row after every event
    sync = DepthSync("X", max_buffer=8)
    hook = history.book_rows("X", sync)
    assert hook is not None
    held: dict[int, tuple[Side, Side]] = {}

    def applied(ev: Any) -> None:
        hook(ev)
        bids, asks = sync.book.top(1000)
        held[ev.u] = (tuple(bids), tuple(asks))

    sync.on_applied = applied
    for ev, action in zip(exchange.events, plan, strict=False):
        if action == "drop":
            continue
        if action == "reconnect":
            sync.on_disconnect()
        elif action == "refresh":
            sync.request_refresh()
        elif action == "lose":  # a suspension dropped what was queued, then history resumed
            history._queue.clear()
            held.clear()
            history._forget_rows()
        sync.on_depth(ev)
        if action == "duplicate":
            sync.on_depth(ev)
        sync.drain()
        if sync.snapshot_pending and action in ("snapshot", "deliver", "refresh"):
            sync.on_snapshot(exchange.snapshot_at(ev.u))
        sync.drain()

    items = queued(history)
    chunks = {kind: columns for kind, _, columns in build(history).take()}
    if not held:
        assert "incremental_book_L2" not in chunks
        return
    with patch.object(rows_module, "_ARRAY_EVENTS", 1):  # levels read as arrays, however few
        (arrays,) = [c for k, _, c in build(history).take() if k == "incremental_book_L2"]
    assert type(arrays[5]) is not list  # the prices were read from the bytes
    for columns in (chunks["incremental_book_L2"], arrays):
        books = rebuilt(book_rows("X", columns))
        for u, book in held.items():
            assert books[u] == book, u
    tops = [item for item in items if item[0] == TOP]
    assert len(tops) == len([i for i in items if i[0] in (APPLIED, BLOCK)])
    for _, _, _, event_ms, bids, asks in tops:
        if event_ms in held:
            top = (tuple(map(tuple, bids)), tuple(map(tuple, asks)))
            assert top == tuple(side[:10] for side in held[event_ms])


def test_a_book_starts_with_a_block_again_after_a_reset_a_rebase_and_a_loss() -> None:
    exchange = ModelExchange([[(0, 1, 1)], [(1, 2, 2)]] * 10, [2] * 20)
    history, sync, events = live(exchange)
    sync.on_depth(next(events))
    assert kinds(history) == [BLOCK, APPLIED]
    sync.on_disconnect()  # a reset: the next live book starts with a block
    go_live(sync, exchange, events)
    sync.on_depth(next(events))
    assert kinds(history) == [BLOCK, APPLIED]
    assert sync.request_refresh()  # a re-base swaps the book: a block after it
    sync.on_snapshot(exchange.snapshot_at(sync.book.last_update_id))
    sync.on_depth(next(events))
    sync.on_depth(next(events))
    assert sync.refreshes == 1
    assert kinds(history) == [BLOCK, APPLIED]
    history._forget_rows()  # history dropped items: the rows start again
    sync.on_depth(next(events))
    sync.on_depth(next(events))
    assert kinds(history) == [BLOCK, APPLIED]


def test_top_rows_come_once_per_interval_of_exchange_time() -> None:
    exchange = ModelExchange([[(0, 1, 1)]] * 12, [1] * 12)
    for index, ev in enumerate(exchange.events):
        ev.E = 1_000_000 + 40 * index  # an event every 40 ms
    history, sync, events = live(exchange, parquet_book_snapshot_interval_ms=100)
    for ev in events:
        sync.on_depth(ev)
    times = [item[3] for item in queued(history) if item[0] == TOP]
    assert times == [1_000_000, 1_000_120, 1_000_200, 1_000_320, 1_000_400]


def depth(u: int, pu: int, price: str) -> bytes:
    data = {
        "e": "depthUpdate", "E": 1_700_000_000_000 + u, "T": 1, "s": "BTCUSDT",
        "U": pu + 1, "u": u, "pu": pu, "b": [[price, "1.0"]], "a": [["200.0", "1.0"]],
    }  # fmt: skip
    return json.dumps({"stream": "btcusdt@depth@100ms", "data": data}).encode()


def trade(trade_id: int) -> bytes:
    data = {
        "e": "aggTrade", "E": 1, "s": "BTCUSDT", "a": trade_id, "p": "100.5", "q": "0.5",
        "f": trade_id, "l": trade_id, "T": 1_700_000_000_000 + trade_id, "m": True,
    }  # fmt: skip
    return json.dumps({"stream": "btcusdt@aggTrade", "data": data}).encode()


def test_two_lines_make_one_row_per_event_and_per_trade_and_no_frame_is_queued() -> None:
    config = Config(symbols=("BTCUSDT",), health_port=0, feed_lines=2, parquet_dir="unused")
    svc = MarketDataService(config, [], wall_clock=lambda: 1_700_000_000.0)
    history = HistoryPipeline(config, queue_max=10**6)
    svc.attach_history(history)
    for line in (0, 1):
        svc.on_connected(next(p for p in svc._plans() if p.line == line and p.carries_depth))
    state = svc.symbols["BTCUSDT"]
    svc.on_frame(depth(10, 9, "100.0"), line=0)
    body = b'{"lastUpdateId":10,"E":1,"T":1,"bids":[["100.0","1.0"]],"asks":[["200.0","1.0"]]}'
    state.sync.on_snapshot(decode_snapshot(body))
    svc._handle_outputs(state)
    for u in range(11, 16):
        for line in (1, 0):  # line b first, then its copy on line a
            svc.on_frame(depth(u, u - 1, f"{100 - u}.0"), line=line)
    for trade_id in (1, 2, 3):
        for line in (0, 1):
            svc.on_frame(trade(trade_id), line=line)
    items = queued(history)
    kinds = [item[0] for item in items]
    assert FRAME not in kinds  # nothing is recorded: frames are not queued at all
    book_items = [(item[0], item[4]) for item in items if item[0] in (APPLIED, BLOCK)]
    assert book_items == [(BLOCK, 10)] + [(APPLIED, u) for u in range(11, 16)]
    trades = [item[3] for item in items if item[0] == TRADE]
    assert trades == [1, 2, 3]
    rows = build(history)
    (book,) = [c for k, _, c in rows.take() if k == "incremental_book_L2"]
    final = rebuilt(book_rows("BTCUSDT", book))[15]
    bids, asks = state.sync.book.top(1000)
    assert final == (tuple(bids), tuple(asks))


def test_the_parquet_table_spreads_a_compact_book_chunk_like_book_rows(tmp_path: Any) -> None:
    rows = RowBuilder()
    rows.on_block(5_000_000, "X", 5, 100, [(10.0, 1.0), (9.0, 2.0)], [(11.0, 3.0)])
    rows.on_applied(6_000_000, "X", 6, 101, [], [(11.0, 0.0), (12.0, 4.0)])
    rows.on_applied(7_000_000, "X", 7, 103, [(10.5, 1.5)], [])
    ((kind, symbol, columns),) = rows.take()
    table = ParquetStore(tmp_path)._table(kind, symbol, columns)
    expected = book_rows(symbol, columns)
    assert table.num_rows == 6
    got = table.to_pydict()
    for name, values in zip(INCREMENTAL, expected, strict=True):
        if name in ("timestamp", "local_timestamp"):
            got_us = pa.array(got[name]).cast(pa.int64()).to_pylist()
            assert got_us == values, name
        else:
            assert got[name] == values, name
    assert got["side"] == ["bid", "bid", "ask", "ask", "ask", "bid"]
    assert got["is_snapshot"] == [True, True, True, False, False, False]
    assert got["update_id"] == [100, 100, 100, 101, 101, 103]


def test_a_book_item_that_cannot_be_queued_costs_history_not_the_book() -> None:
    exchange = ModelExchange([[(0, 1, 1)], [(1, 2, 2)], [(0, 3, 1)]], [2, 2, 2])
    history, sync, events = live(exchange)
    second, third = events
    second.E = object()  # type: ignore[assignment]  # nothing msgpack can encode
    assert sync.on_depth(second)  # the book took it
    assert sync.is_live and sync.book.last_update_id == second.u
    assert history.counters.suspended and history.counters.dropped == 1
    assert "could not be queued" in history.counters.reason
    sync.on_depth(third)  # suspended: dropped and counted, the book goes on
    assert sync.book.last_update_id == third.u and history.counters.dropped == 2


def test_a_book_reset_by_its_re_base_audit_starts_again_with_a_block() -> None:
    exchange = ModelExchange([[(0, 1, 1)], [(1, 2, 2)], [(0, 3, 1)], [(1, 4, 3)]] * 3, [2] * 12)
    history, sync, events = live(exchange)
    assert sync.request_refresh()
    second = next(events)
    wrong = exchange.snapshot_at(second.u)  # ahead of the book: the next event bridges it
    wrong.bids = [(99.5, 7.0)] + wrong.bids  # with a best bid the exchange never had
    sync.on_snapshot(wrong)
    history._queue.clear()
    sync.on_depth(second)  # applied, then completes the re-base: the audit resets the book
    assert not sync.is_live and sync.audit_top_of_book == 1
    assert queued(history) == []  # nothing for a book that is gone
    go_live(sync, exchange, events)
    sync.on_depth(next(events))
    assert kinds(history) == [BLOCK, APPLIED]


def test_rows_a_store_lost_make_every_book_start_again_with_a_block() -> None:
    exchange = ModelExchange([[(0, 1, 1)], [(1, 2, 2)]] * 4, [2] * 8)
    history, sync, events = live(exchange)
    status = {"recorded_lines": 0, "write_errors": 0, "dropped": 0, "suspension": 0}
    history._take(dict(status, rows_lost=0))
    sync.on_depth(next(events))
    history._take(dict(status, rows_lost=3))  # the history process: a Parquet write failed
    sync.on_depth(next(events))
    history._take(dict(status, rows_lost=3))  # nothing new lost
    sync.on_depth(next(events))
    assert kinds(history) == [BLOCK, APPLIED, BLOCK, APPLIED]


def raw_levels(levels: list[Any]) -> msgspec.Raw:
    """Levels as the history process holds them: their msgpack array, undecoded."""
    return msgspec.msgpack.Decoder(msgspec.Raw).decode(msgspec.msgpack.encode(levels))


finite = st.floats(allow_nan=False, allow_infinity=False)
sides = st.lists(st.lists(st.tuples(finite, finite), max_size=40), min_size=2, max_size=8)


@given(sides)
def test_levels_read_from_their_bytes_equal_the_levels_decoded(blobs: list[Any]) -> None:
    counts, prices, amounts = _level_columns([raw_levels(side) for side in blobs])
    assert counts.tolist() == [len(side) for side in blobs]  # 16 and more: a wider header
    assert prices.tolist() == [price for side in blobs for price, _ in side]
    assert amounts.tolist() == [amount for side in blobs for _, amount in side]


def test_levels_not_all_floats_are_read_the_long_way_with_the_same_rows() -> None:
    fast, slow = RowBuilder(), RowBuilder()
    events = [(5, 100, [(10.0, 1.0), (9.0, 2.0)], [(11.0, 3.0)])] * 20  # enough for arrays
    events.append((6, 101, [(10, 2)], [(11.0, 0.0)]))  # integers: not the float layout
    assert _level_columns([raw_levels(side) for side in events[-1][2:]]) is None
    for event_ms, u, bids, asks in events:
        fast.on_applied(event_ms * 10**6, "X", event_ms, u, raw_levels(bids), raw_levels(asks))
        slow.on_applied(event_ms * 10**6, "X", event_ms, u, bids, asks)
    ((_, _, got),) = fast.take()
    ((_, _, expected),) = slow.take()
    assert book_rows("X", got) == book_rows("X", expected)
    assert book_rows("X", got)[6][-5:] == [10.0, 9.0, 11.0, 10.0, 11.0]


def test_a_side_of_hundreds_of_levels_is_read_through_its_wider_header() -> None:
    side = [(1000.0 + i, float(i)) for i in range(300)]  # array16: a count of 0x012c
    counts, prices, amounts = _level_columns([raw_levels(side), raw_levels([])])
    assert counts.tolist() == [300, 0]
    assert prices.tolist() == [price for price, _ in side]
    assert amounts.tolist() == [amount for _, amount in side]


def test_book_events_whose_levels_cannot_be_read_cost_their_rows_not_the_rest() -> None:
    rows = RowBuilder()
    for u in range(20):  # enough events for the array path, which falls back to decoding
        rows.on_applied(10**9, "BAD", 1, u, raw_levels([("1.0", "2.0")]), raw_levels([]))
    rows.on_applied(10**9, "GOOD", 1, 7, [(9.0, 1.0)], [])
    feed = RowFeed(rows, [])
    chunks = rows.take()  # never raises
    assert [symbol for _, symbol, _ in chunks] == ["GOOD"]
    assert rows.lost_events == 20
    assert feed.status()["rows_lost"] == 20  # the service starts every book with a block
