"""A small Parquet store made from synthetic frames, for the query and summary tests."""

from pathlib import Path

from market_data.history.parquet import ParquetStore
from market_data.history.schema.rows import RowBuilder
from market_data.history.stores import RowFeed

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def make_store(directory: Path, symbols: tuple[str, ...] = ("BTCUSDT",), minutes: int = 3) -> None:
    """``minutes`` of one depth event and one trade per second per symbol."""
    feed = RowFeed(RowBuilder(), [ParquetStore(directory, row_group_rows=1000)])
    rows = feed.builder
    for symbol in symbols:  # the book as it went live: a snapshot block
        rows.on_block(T0_MS * 1000_000, symbol, T0_MS, 100, [(99.0, 5.0)], [(101.0, 5.0)])
    for second in range(minutes * 60):
        t_ms = T0_MS + second * 1000 + 10
        for symbol in symbols:
            u = 101 + second
            bid, ask = 99.0 + (second % 5) * 0.1, 101.0 - (second % 3) * 0.1
            rows.on_applied(t_ms * 1000_000, symbol, t_ms, u, [(bid, 1.0)], [(ask, 2.0)])
            rows.on_top(t_ms * 1000_000, symbol, t_ms, [(bid, 1.0)], [(ask, 2.0)])
            price = 100.0 + (second % 7) * 0.1
            rows.on_trade(
                t_ms * 1000_000 + 1, symbol, 1 + second, price, 0.5, t_ms, second % 2 == 0
            )
        feed.flush(0)  # rows to the store; files only at close (a row group per 1000)
    feed.close()
