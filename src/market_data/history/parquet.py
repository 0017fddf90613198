"""The Parquet history store: one dataset per kind, a folder per date and symbol.

Layout: ``<dir>/<kind>/<YYYY-MM-DD>/<SYMBOL>/<first local µs>-<n>.parquet``
(the date is the local receive date, UTC). Rows arrive as columns
(``RowBuilder.take``'s chunks) and are buffered per kind and symbol as they
come (a part per column and chunk, joined once), then written as one file of one
row group when at least ``row_group_rows`` are buffered or ``flush_s`` has
passed since the first, whichever comes first: small files at quiet times, row
groups of thousands of rows when busy. Each file is written under a temporary
name (``.<name>.parquet.tmp``: hidden, and no ``*.parquet`` glob of DuckDB or
polars matches it) and renamed when complete, so a reader never sees a
half-written file, not even one a crash left behind.

Values become Arrow arrays once per file. ``incremental_book_L2`` arrives
compact (a value per event, two per level: ``rows.BOOK_COLUMNS``); its rows are
spread out by numpy (``repeat`` and a gather), and its
prices and amounts come as numpy arrays (from the history process, for a chunk
of 16 events or more; a quiet symbol's few events come as lists), so a busy
symbol's values are not converted from Python per row.

Columns and units are ``schema/rows.py``'s; timestamps are stored as Parquet
timestamps (µs, UTC). pyarrow is imported only when this store is built (the
``history`` extra).
"""

import os
import time
from collections import defaultdict
from itertools import chain
from pathlib import Path
from typing import Any

from market_data.history.extra import require
from market_data.history.schema import rows as schema

_TS = ("timestamp", "local_timestamp")
#: Ends the name of a file being written (renamed without it once complete).
TEMPORARY_SUFFIX = ".tmp"
#: Files of fewer rows are compressed with the store's ``small_compression``.
SMALL_FILE_ROWS = 200


def _types(pa: Any, kind: str, snapshot_levels: int) -> Any:
    """The pyarrow schema ``kind``'s tables are built with.

    Columns of a few distinct values (exchange, symbol, a book row's side) are
    built as dictionary arrays: the Parquet writer writes their dictionary as it
    is instead of hashing every row's string (a book file's write: 101 -> 75 ns a
    row). Files are written without the Arrow schema (``store_schema=False``),
    so every reader sees them as the plain strings they are in Parquet.
    """
    string, f64, i64 = pa.string(), pa.float64(), pa.int64()
    few = pa.dictionary(pa.int8(), string)
    ts = pa.timestamp("us", tz="UTC")
    head = [("exchange", few), ("symbol", few), ("timestamp", ts), ("local_timestamp", ts)]
    rest: list[tuple[str, Any]]
    if kind == "trades":
        rest = [("id", string), ("side", string), ("price", f64), ("amount", f64)]
    elif kind == "incremental_book_L2":
        rest = [
            ("is_snapshot", pa.bool_()),
            ("side", few),
            ("price", f64),
            ("amount", f64),
            ("update_id", i64),
        ]
    elif kind == "book_state":
        rest = [("state", string), ("last_update_id", i64), ("best_bid", f64), ("best_ask", f64)]
    elif kind == "stats_24h":
        rest = [(name, f64) for name in schema.STATS[4:9]]
        rest += [("trade_count", i64), ("window_complete", pa.bool_())]
    else:
        rest = [(name, f64) for name in schema.snapshot_columns(snapshot_levels)[4:]]
    return pa.schema(head + rest)


class ParquetStore:
    """Writes :class:`~market_data.history.schema.rows.RowBuilder`'s chunks as Parquet files."""

    def __init__(
        self,
        directory: str | Path,
        *,
        row_group_rows: int = 100_000,
        flush_s: float = 5.0,
        snapshot_levels: int = 10,
        compression: str = "zstd",
        small_compression: str = "snappy",
    ) -> None:
        self.pa = require("pyarrow", "parquet_dir")
        self.pq = require("pyarrow.parquet", "parquet_dir")
        self.np = require("numpy", "parquet_dir")
        self.directory = Path(directory)
        self.row_group_rows = row_group_rows
        self.flush_ns = int(flush_s * 1e9)
        self.snapshot_levels = snapshot_levels
        #: Files are compressed with ``compression``, except those of fewer than
        #: ``SMALL_FILE_ROWS`` rows (a quiet kind written because ``flush_s`` passed),
        #: with ``small_compression``: there the codec's set-up per column dominates
        #: (a 50-row ``book_snapshot_10`` file: 1.5 ms with zstd, 1.0 ms with snappy, 5%
        #: more bytes), while a 2,500-row ``incremental_book_L2`` file is 10% faster
        #: with snappy but 58% larger.
        self.compression = compression
        self.small_compression = small_compression
        #: Columns waiting per (kind, symbol), as the chunks' parts (joined when written),
        #: their rows, and the local time (ns) of their first row.
        self._columns: dict[tuple[str, str], list[list[Any]]] = {}
        self._held_rows: dict[tuple[str, str], int] = {}
        self._since: dict[tuple[str, str], int] = {}
        self._schemas: dict[str, Any] = {}
        #: The folder each (kind, symbol) was last written to, known to exist.
        self._folders: dict[tuple[str, str], Path] = {}
        self._seq = 0
        #: Rows written per kind, for the metrics and the benchmark.
        self.rows_written: dict[str, int] = defaultdict(int)
        self.files_written = 0

    def add(self, chunk: schema.Chunk) -> None:
        """Buffer a chunk's rows; a row group is written as soon as one is full."""
        kind, symbol, columns = chunk
        if not columns or not len(columns[0]):
            return
        rows = _rows(kind, columns)
        key = (kind, symbol)
        held = self._columns.get(key)
        if held is None:
            held = self._columns[key] = [[column] for column in columns]
            self._since[key] = columns[_local_column(kind)][0] * 1000  # local µs -> ns
            self._held_rows[key] = rows
        else:
            for parts, more in zip(held, columns, strict=True):
                parts.append(more)
            self._held_rows[key] += rows
        if self._held_rows[key] >= self.row_group_rows:
            self._write(key)

    def flush(self, now_ns: int, force: bool = False) -> None:
        """Write every buffer older than ``flush_s``, or all with ``force``.

        One buffer's failed write (its rows are lost) does not keep the others from
        being written; the first failure is raised once all were tried.
        """
        limit = now_ns - self.flush_ns
        failed: Exception | None = None
        for key in [k for k, since in self._since.items() if force or since <= limit]:
            try:
                self._write(key)
            except Exception as exc:  # noqa: BLE001 - raised below, after the others
                failed = failed or exc
        if failed is not None:
            raise failed

    def close(self) -> None:
        self.flush(0, force=True)

    # -------------------------------------------------------------------- files

    def _write(self, key: tuple[str, str]) -> None:
        """Write every buffered row of ``key`` as one file of one row group."""
        columns = [_joined(parts) for parts in self._columns.pop(key)]
        self._since.pop(key)
        self._held_rows.pop(key)
        kind, symbol = key
        if not _rows(kind, columns):  # book events with no level at all: nothing to write
            return
        first_local = columns[_local_column(kind)][0]
        day = time.strftime("%Y-%m-%d", time.gmtime(first_local // 1_000_000))
        folder = self.directory / kind / day / symbol
        if self._folders.get(key) != folder:  # made once a day per kind and symbol
            folder.mkdir(parents=True, exist_ok=True)
            self._folders[key] = folder
        self._seq += 1
        name = f"{first_local}-{os.getpid()}-{self._seq}.parquet"
        temporary = folder / f".{name}{TEMPORARY_SUFFIX}"
        table = self._table(kind, symbol, columns)
        rows = table.num_rows
        try:
            self.pq.write_table(
                table,
                temporary,
                row_group_size=rows,
                compression=(
                    self.compression if rows >= SMALL_FILE_ROWS else self.small_compression
                ),
                use_dictionary=self._dictionary(table),
                # What readers filter files by; statistics of every other column were a
                # fifth of the write's time (90 against 113 ns a book row).
                write_statistics=list(_TS),
                store_schema=False,  # the dictionary columns read back as plain strings
            )
            os.replace(temporary, folder / name)
        except OSError:
            temporary.unlink(missing_ok=True)
            self._folders.pop(key, None)  # made again next time, had someone removed it
            raise
        self.rows_written[kind] += rows
        self.files_written += 1

    def _dictionary(self, table: Any) -> list[str]:
        """Dictionary-encode the string columns only (those built as dictionaries, and
        the others): floats and ints gain little from it, and it was a third of the
        write's time."""
        pa = self.pa
        return [
            field.name
            for field in table.schema
            if field.type == pa.string() or pa.types.is_dictionary(field.type)
        ]

    def _schema(self, kind: str) -> Any:
        types = self._schemas.get(kind)
        if types is None:
            types = self._schemas[kind] = _types(self.pa, kind, self.snapshot_levels)
        return types

    def _table(self, kind: str, symbol: str, columns: list[Any]) -> Any:
        if kind == "incremental_book_L2":
            return self._book_table(symbol, columns)
        pa, np = self.pa, self.np
        types = self._schema(kind)
        rows = len(columns[0])
        arrays = [
            _constant(pa, np, columns[0][0], rows),  # exchange and symbol are one value
            _constant(pa, np, columns[1][0], rows),  # per file: no per-row conversion
        ]
        for i, column in enumerate(columns[2:], start=2):
            kind_of = types.field(i).type
            if pa.types.is_timestamp(kind_of):  # ints convert twice as fast as timestamps
                arrays.append(pa.array(column, type=pa.int64()).view(kind_of))
            else:
                arrays.append(pa.array(column, type=kind_of))
        return pa.Table.from_arrays(arrays, schema=types)

    def _book_table(self, symbol: str, columns: list[Any]) -> Any:
        """``incremental_book_L2`` from its compact columns: each level row finds its event
        and side through its side group (bids of event k: group 2k, asks: 2k + 1).

        numpy spreads the per-event values, not Arrow's compute functions: those cost
        50-100 μs a call whatever the size (a 1-row file took 0.55 ms to build, most
        of a quiet symbol's file).
        """
        pa, np = self.pa, self.np
        types = self._schema("incremental_book_L2")
        ts, local, snapshot, update, sides, prices, amounts = columns
        group = np.repeat(np.arange(len(sides)), sides)
        event = group >> 1
        rows = len(group)
        timestamp = types.field("timestamp").type
        int64 = np.int64
        return pa.Table.from_arrays(
            [
                _constant(pa, np, schema.EXCHANGE, rows),
                _constant(pa, np, symbol, rows),
                pa.array(np.asarray(ts, dtype=int64)[event]).view(timestamp),
                pa.array(np.asarray(local, dtype=int64)[event]).view(timestamp),
                pa.array(np.asarray(snapshot, dtype=np.bool_)[event]),
                _sides(pa, np, group & 1),
                pa.array(np.asarray(prices, dtype=np.float64)),
                pa.array(np.asarray(amounts, dtype=np.float64)),
                pa.array(np.asarray(update, dtype=int64)[event]),
            ],
            schema=types,
        )


def _constant(pa: Any, np: Any, value: str, rows: int) -> Any:
    """A column of one string value, as a dictionary array (one entry, every index 0):
    no per-row conversion, and no per-row hashing when it is written."""
    indices = pa.array(np.zeros(rows, dtype=np.int8))
    return pa.DictionaryArray.from_arrays(indices, pa.array([value], type=pa.string()))


#: A book row's side, by its code (0: bid, 1: ask).
_SIDES = ("bid", "ask")


def _sides(pa: Any, np: Any, codes: Any) -> Any:
    """The ``side`` column from per-row codes (0: bid, 1: ask), as a dictionary array."""
    indices = pa.array(codes.astype(np.int8))
    return pa.DictionaryArray.from_arrays(indices, pa.array(_SIDES, type=pa.string()))


def _local_column(kind: str) -> int:
    """Where a chunk of ``kind`` keeps its local timestamps (µs)."""
    return 1 if kind == "incremental_book_L2" else 3


def _joined(parts: list[Any]) -> Any:
    """One column from the parts buffered: lists joined as a list, numpy arrays as one."""
    if len(parts) == 1:
        return parts[0]
    if all(type(part) is list for part in parts):
        return list(chain.from_iterable(parts))
    import numpy as np  # a part is a numpy array: numpy is there

    return np.concatenate(parts)


def _rows(kind: str, columns: list[Any]) -> int:
    """Rows in buffered ``columns`` (a compact book chunk: its level rows)."""
    return len(columns[5] if kind == "incremental_book_L2" else columns[0])
