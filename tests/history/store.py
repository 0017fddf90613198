"""A small Parquet store made from synthetic frames, for the query and summary tests."""

import json
from pathlib import Path

from market_data.history.parquet import ParquetStore
from market_data.history.schema.rows import RowBuilder
from market_data.history.stores import RowFeed

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def depth_frame(symbol: str, u: int, pu: int, e_ms: int, bid: float, ask: float) -> bytes:
    data = {
        "e": "depthUpdate", "E": e_ms, "T": e_ms, "s": symbol, "U": pu + 1, "u": u, "pu": pu,
        "b": [[f"{bid:.1f}", "1.000"]], "a": [[f"{ask:.1f}", "2.000"]],
    }  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@depth@100ms", "data": data}).encode()


def trade_frame(symbol: str, trade_id: int, t_ms: int, price: float, qty: float) -> bytes:
    data = {
        "e": "aggTrade", "E": t_ms, "s": symbol, "a": trade_id, "p": f"{price:.1f}",
        "q": f"{qty:.3f}", "f": trade_id, "l": trade_id, "T": t_ms, "m": trade_id % 2 == 0,
    }  # fmt: skip
    return json.dumps({"stream": f"{symbol.lower()}@aggTrade", "data": data}).encode()


def make_store(directory: Path, symbols: tuple[str, ...] = ("BTCUSDT",), minutes: int = 3) -> None:
    """``minutes`` of one depth event and one trade per second per symbol."""
    feed = RowFeed(
        RowBuilder(snapshot_interval_ms=1000), [ParquetStore(directory, row_group_rows=1000)]
    )
    store = feed.builder
    for symbol in symbols:  # the first event asks for the snapshot, which bridges it
        first = depth_frame(symbol, 100, 94, T0_MS, 99.0, 101.0)
        store.on_frame(T0_MS * 1000_000, first, 0)
        snapshot = {"lastUpdateId": 100, "E": T0_MS, "T": T0_MS,
                    "bids": [["99.0", "5.000"]], "asks": [["101.0", "5.000"]]}  # fmt: skip
        store.on_snapshot(T0_MS * 1000_000, symbol, json.dumps(snapshot).encode())
    for second in range(minutes * 60):
        t_ms = T0_MS + second * 1000 + 10
        for symbol in symbols:
            u = 101 + second
            bid, ask = 99.0 + (second % 5) * 0.1, 101.0 - (second % 3) * 0.1
            store.on_frame(t_ms * 1000_000, depth_frame(symbol, u, u - 1, t_ms, bid, ask), 0)
            trade = trade_frame(symbol, 1 + second, t_ms, 100.0 + (second % 7) * 0.1, 0.5)
            store.on_frame(t_ms * 1000_000 + 1, trade, 0)
        feed.flush(0)  # rows to the store; files only at close (a row group per 1000)
    feed.close()
