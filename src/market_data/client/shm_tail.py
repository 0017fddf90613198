"""``market-data shm-tail``: watch the shared-memory ring from a terminal.

Two views: a rich live table (per symbol: state, best bid/ask, last trade;
footer: rate, missed, generation, re-attaches), or ``--plain`` lines, one per
record plus a stats line every second, for pipes and logs.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from market_data import arg_types
from market_data.client.shm import ShmRingReader
from market_data.core.state import BookState
from market_data.wire.ring import BookRecord, JsonRecord, Record, ShmRingError, TradeRecord

DEFAULT_SHM_NAME = "market_data"
_IDLE_SLEEP_S = 0.001


@dataclass
class TailStats:
    """Counters behind the footer line; ``rate`` is records/s over the last interval."""

    started: float
    window_start: float
    window_count: int = 0
    rate: float = 0.0
    last_trade: dict[str, TradeRecord] = field(default_factory=dict)
    #: Show only this symbol's records (``--symbol``: a ring may carry others too).
    only: str | None = None
    shown: int = 0  # records shown, for --count

    def count(self, n: int, now: float) -> bool:
        """Add ``n`` records; True when a new rate figure is ready (once a second)."""
        self.window_count += n
        if now - self.window_start >= 1.0:
            self.rate = self.window_count / (now - self.window_start)
            self.window_start, self.window_count = now, 0
            return True
        return False


def _state_label(state: int) -> str:
    try:
        return BookState(state).label
    except ValueError:
        return str(state)


def format_record(record: Record) -> str:
    """One plain line per record."""
    if isinstance(record, BookRecord):
        bid = f"{record.bids[0][0]:g}@{record.bids[0][1]:g}" if record.bids else "-"
        ask = f"{record.asks[0][0]:g}@{record.asks[0][1]:g}" if record.asks else "-"
        return (
            f"book  #{record.seq} {record.symbol} {_state_label(record.state)} "
            f"u={record.last_update_id} bid={bid} ask={ask} levels={len(record.bids)}/"
            f"{len(record.asks)}"
        )
    if isinstance(record, TradeRecord):
        side = "sell" if record.is_buyer_maker else "buy"
        return (
            f"trade #{record.seq} {record.symbol} {side} {record.qty:g}@{record.price:g} "
            f"id={record.trade_id}"
        )
    assert isinstance(record, JsonRecord)
    return f"json  #{record.seq} {record.symbol} {record.payload[:200].decode(errors='replace')}"


def format_stats(reader: ShmRingReader, stats: TailStats, note_sep: str = "  ") -> str:
    """The figures, then (after ``note_sep``) why the books may not be current, if so."""
    line = (
        f"rate {stats.rate:,.0f} rec/s  read {reader.records_read:,}  missed {reader.missed:,}  "
        f"generation {reader.generation}  reattaches {reader.reattaches}"
    )
    if reader.writer_closed:
        return f"{line}{note_sep}[writer closed]"
    if not reader.writer_alive:
        return f"{line}{note_sep}[writer silent for {reader.writer_silent_s:.0f} s: dead or hung]"
    return line


def build_table(reader: ShmRingReader, symbols: list[str], stats: TailStats) -> Table:
    table = Table(title=f"shm ring {reader.path}", caption=Text(format_stats(reader, stats, "\n")))
    for column in ("symbol", "state", "bid", "ask", "update id", "last trade"):
        table.add_column(column)
    current = reader.writer_alive  # else a "live" book is only what a dead writer last said
    for symbol in sorted(symbols):
        book = reader.latest_book(symbol)
        trade = stats.last_trade.get(symbol)
        state = _state_label(book.state) if book else "-"
        table.add_row(
            symbol,
            state if current or not book else "writer gone",
            f"{book.bids[0][0]:g} x {book.bids[0][1]:g}" if book and book.bids else "-",
            f"{book.asks[0][0]:g} x {book.asks[0][1]:g}" if book and book.asks else "-",
            str(book.last_update_id) if book else "-",
            f"{trade.qty:g} @ {trade.price:g}" if trade else "-",
        )
    return table


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Options of ``market-data shm-tail``."""
    parser.add_argument("--name", default=DEFAULT_SHM_NAME, help="segment name under /dev/shm")
    parser.add_argument(
        "--symbol",
        type=arg_types.symbol,
        help="only this symbol's records, from the ring that carries it (found through the "
        "index with --workers N)",
    )
    parser.add_argument("--plain", action="store_true", help="plain lines instead of a table")
    parser.add_argument("--from-oldest", action="store_true", help="start at the oldest record")
    parser.add_argument(
        "--count",
        type=arg_types.non_negative_int,
        default=0,
        help="exit after N records (0: never)",
    )
    parser.add_argument(
        "--duration",
        type=arg_types.non_negative_float,
        default=0.0,
        help="exit after S seconds (0: never)",
    )


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    """Watch the ring until interrupted (or --count / --duration); 1 if it cannot attach."""
    stream = out if out is not None else sys.stdout
    try:
        if args.symbol:
            reader = ShmRingReader.attach_symbol(
                args.name, args.symbol, from_oldest=args.from_oldest
            )
        else:
            reader = ShmRingReader.attach(args.name, from_oldest=args.from_oldest)
    except ShmRingError as exc:
        print(f"shm-tail: {exc}", file=sys.stderr)
        return 1
    now = time.monotonic()
    stats = TailStats(started=now, window_start=now, only=args.symbol)
    deadline = now + args.duration if args.duration else None
    try:
        if args.plain:
            _tail_plain(reader, stats, args.count, deadline, stream)
        else:
            _tail_live(reader, stats, args.count, deadline, stream)
    except KeyboardInterrupt:
        pass
    finally:
        reader.close()
    return 0


def _records(
    reader: ShmRingReader, stats: TailStats, count: int, deadline: float | None
) -> tuple[list[Record], bool]:
    """Next batch and whether to stop; sleeps briefly when the ring is idle."""
    records = reader.poll()
    if stats.only is not None:
        records = [record for record in records if record.symbol == stats.only]
    if count:
        records = records[: max(count - stats.shown, 0)]
    stats.shown += len(records)
    now = time.monotonic()
    done = bool(count and stats.shown >= count) or (deadline is not None and now >= deadline)
    if not records and not done:
        time.sleep(_IDLE_SLEEP_S)
    for record in records:
        if isinstance(record, TradeRecord):
            stats.last_trade[record.symbol] = record
    return records, done


def _tail_plain(
    reader: ShmRingReader, stats: TailStats, count: int, deadline: float | None, out: TextIO
) -> None:
    while True:
        records, done = _records(reader, stats, count, deadline)
        for record in records:
            print(format_record(record), file=out)
        if stats.count(len(records), time.monotonic()) or done:
            print(format_stats(reader, stats), file=out, flush=True)
        if done:
            return


def _tail_live(
    reader: ShmRingReader, stats: TailStats, count: int, deadline: float | None, out: TextIO
) -> None:
    symbols: set[str] = set()
    console = Console(file=out)
    with Live(build_table(reader, [], stats), console=console, refresh_per_second=4) as live:
        while True:
            records, done = _records(reader, stats, count, deadline)
            symbols.update(record.symbol for record in records)
            if stats.count(len(records), time.monotonic()) or done:
                live.update(build_table(reader, list(symbols), stats))
            if done:
                return
