"""The Parquet history store: one dataset per kind, a folder per date and symbol.

Layout: ``<dir>/<kind>/<YYYY-MM-DD>/<SYMBOL>/<first local µs>-<n>.parquet``
(the date is the local receive date, UTC). Rows are buffered per kind and
symbol and written as one file of one row group when ``row_group_rows`` are
buffered or ``flush_s`` has passed since the first, whichever comes first:
small files at quiet times, row groups of thousands of rows when busy. Each
file is written under a temporary name (``.tmp-...``) and renamed when
complete, so a reader never sees a half-written file.

Columns and units are ``schema/rows.py``'s; timestamps are stored as Parquet
timestamps (µs, UTC). pyarrow is imported only when this store is built (the
``history`` extra).
"""

import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from market_data.history.extra import require
from market_data.history.schema import rows as schema
from market_data.outputs.sinks import BookUpdate

_TS = ("timestamp", "local_timestamp")


def _types(pa: Any, kind: str, snapshot_levels: int) -> Any:
    """The pyarrow schema of ``kind``."""
    string, f64, i64 = pa.string(), pa.float64(), pa.int64()
    ts = pa.timestamp("us", tz="UTC")
    head = [("exchange", string), ("symbol", string), ("timestamp", ts), ("local_timestamp", ts)]
    rest: list[tuple[str, Any]]
    if kind == "trades":
        rest = [("id", string), ("side", string), ("price", f64), ("amount", f64)]
    elif kind == "incremental_book_L2":
        rest = [
            ("is_snapshot", pa.bool_()),
            ("side", string),
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
    """A :class:`~market_data.history.pipeline.RowConsumer` writing Parquet files."""

    def __init__(
        self,
        directory: str | Path,
        *,
        row_group_rows: int = 10_000,
        flush_s: float = 5.0,
        snapshot_levels: int = 10,
        snapshot_interval_ms: int = 100,
        max_levels: int = 1000,
        max_buffer: int = 1000,
        lines: int = 1,
        compression: str = "zstd",
    ) -> None:
        self.pa = require("pyarrow", "parquet_dir")
        self.pq = require("pyarrow.parquet", "parquet_dir")
        self.directory = Path(directory)
        self.row_group_rows = row_group_rows
        self.flush_ns = int(flush_s * 1e9)
        self.snapshot_levels = snapshot_levels
        self.compression = compression
        self.builder = schema.RowBuilder(
            self._add,
            snapshot_levels=snapshot_levels,
            snapshot_interval_ms=snapshot_interval_ms,
            max_levels=max_levels,
            max_buffer=max_buffer,
            lines=lines,
        )
        self._rows: dict[tuple[str, str], list[schema.Row]] = defaultdict(list)
        self._since: dict[tuple[str, str], int] = {}
        self._schemas: dict[str, Any] = {}
        self._seq = 0
        #: Rows written per kind, for the metrics and the benchmark.
        self.rows_written: dict[str, int] = defaultdict(int)
        self.files_written = 0
        self._now_ns = 0

    # ------------------------------------------------------------- RowConsumer

    def on_frame(self, recv_ns: int, frame: bytes, line: int) -> None:
        self._now_ns = recv_ns
        self.builder.on_frame(recv_ns, frame, line)

    def on_snapshot(self, recv_ns: int, symbol: str, body: bytes) -> None:
        self._now_ns = recv_ns
        self.builder.on_snapshot(recv_ns, symbol, body)

    def on_connection(self, recv_ns: int, event: dict[str, Any]) -> None:
        self._now_ns = recv_ns
        self.builder.on_connection(recv_ns, event)

    def on_book(self, recv_ns: int, update: BookUpdate) -> None:
        self._now_ns = recv_ns
        self.builder.on_book(recv_ns, update)

    def on_market(self, recv_ns: int, symbol: str, payload: bytes) -> None:
        self._now_ns = recv_ns
        self.builder.on_market(recv_ns, symbol, payload)

    def on_gap(self, recv_ns: int) -> None:
        self.builder.on_gap(recv_ns)

    def _add(self, kind: str, row: schema.Row) -> None:
        key = (kind, row[1])
        rows = self._rows[key]
        if not rows:
            self._since[key] = self._now_ns
        rows.append(row)
        if len(rows) >= self.row_group_rows:
            self._write(key)

    def flush(self, now_ns: int, force: bool = False) -> None:
        """Write every buffer that is full, older than ``flush_s``, or all with ``force``."""
        limit = now_ns - self.flush_ns
        for key in [k for k, rows in self._rows.items() if rows]:
            if force or self._since.get(key, now_ns) <= limit:
                self._write(key)

    def close(self) -> None:
        self.flush(0, force=True)

    # -------------------------------------------------------------------- files

    def _write(self, key: tuple[str, str]) -> None:
        rows = self._rows.pop(key, [])
        self._since.pop(key, None)
        if not rows:
            return
        kind, symbol = key
        day = time.strftime("%Y-%m-%d", time.gmtime(rows[0][3] // 1_000_000))
        folder = self.directory / kind / day / symbol
        folder.mkdir(parents=True, exist_ok=True)
        self._seq += 1
        name = f"{rows[0][3]}-{os.getpid()}-{self._seq}.parquet"
        temporary = folder / f".tmp-{name}"
        table = self._table(kind, rows)
        try:
            self.pq.write_table(
                table, temporary, row_group_size=len(rows), compression=self.compression
            )
            os.replace(temporary, folder / name)
        except OSError:
            temporary.unlink(missing_ok=True)
            raise
        self.rows_written[kind] += len(rows)
        self.files_written += 1

    def _table(self, kind: str, rows: list[schema.Row]) -> Any:
        types = self._schemas.get(kind)
        if types is None:
            types = self._schemas[kind] = _types(self.pa, kind, self.snapshot_levels)
        columns = list(zip(*rows, strict=True))
        arrays = [
            self.pa.array(column, type=types.field(i).type) for i, column in enumerate(columns)
        ]
        return self.pa.Table.from_arrays(arrays, schema=types)
