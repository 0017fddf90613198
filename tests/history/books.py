"""Books to compare: as published, as replayed from a recording, as rebuilt from Parquet."""

import bisect
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from market_data.capture import read_capture
from market_data.replay import Replayer

TextTop = tuple[str, str]
Top = tuple[tuple[tuple[float, float], ...], tuple[tuple[float, float], ...]]


def published_tops(books: list[dict[str, Any]]) -> list[tuple[int, Top]]:
    """(last_update_id, top) of every live book a subscriber received."""
    out = []
    for book in books:
        if not book["initialized"]:
            continue
        bids = tuple((float(p), float(q)) for p, q in book["bids"].items())
        asks = tuple((float(p), float(q)) for p, q in book["asks"].items())
        out.append((int(book["last_update_id"]), (bids, asks)))
    return out


def replayed_tops(recording: Path, depth: int, **replay: Any) -> dict[str, dict[int, Top]]:
    """The top ``depth`` levels after every event a replay of ``recording`` applied."""
    tops: dict[str, dict[int, Top]] = defaultdict(dict)

    def trace(symbol: str, u: int, bids: list[TextTop], asks: list[TextTop]) -> None:
        tops[symbol][u] = (
            tuple((float(p), float(q)) for p, q in bids),
            tuple((float(p), float(q)) for p, q in asks),
        )

    Replayer(depth=depth, trace=trace, **replay).feed_all(read_capture(recording, events=True))
    return tops


def parquet_tops(store: Path, depth: int) -> dict[str, list[tuple[int, Top]]]:
    """Books rebuilt from ``incremental_book_L2``: (update id, top) after each event."""
    files = sorted(
        (store / "incremental_book_L2").rglob("*.parquet"),
        key=lambda f: tuple(int(x) for x in f.stem.split("-")),
    )
    by_symbol: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for file in files:
        for row in pq.read_table(file).to_pylist():
            by_symbol[row["symbol"]].append(row)
    return {symbol: replay_rows(rows, depth) for symbol, rows in by_symbol.items()}


def replay_rows(rows: list[dict[str, Any]], depth: int | None) -> list[tuple[int, Top]]:
    """One symbol's ``incremental_book_L2`` rows replayed as the README tells a reader to:
    (update id, top ``depth`` levels, all with None) after each event."""
    bids: dict[float, float] = {}
    asks: dict[float, float] = {}
    checkpoints: list[tuple[int, Top]] = []
    block = None  # the update id of the snapshot block being read
    for i, row in enumerate(rows):
        if row["is_snapshot"] and row["update_id"] != block:
            bids.clear()
            asks.clear()
        block = row["update_id"] if row["is_snapshot"] else None
        side = bids if row["side"] == "bid" else asks
        if row["amount"] == 0:
            side.pop(row["price"], None)
        else:
            side[row["price"]] = row["amount"]
        last = i + 1 == len(rows)
        if last or rows[i + 1]["update_id"] != row["update_id"]:
            top_b = tuple(sorted(bids.items(), reverse=True)[:depth])
            top_a = tuple(sorted(asks.items())[:depth])
            checkpoints.append((row["update_id"], (top_b, top_a)))
    return checkpoints


def at_or_before(checkpoints: list[tuple[int, Top]], u: int) -> Top | None:
    """The last checkpoint at or before update id ``u``."""
    ids = [c[0] for c in checkpoints]
    i = bisect.bisect_right(ids, u)
    return checkpoints[i - 1][1] if i else None
