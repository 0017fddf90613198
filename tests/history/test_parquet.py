"""The Parquet store: layout, columns, the summary command."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from market_data.cli import main
from market_data.history.parquet import SMALL_FILE_ROWS, ParquetStore
from market_data.history.schema.rows import RowBuilder
from tests.history.store import T0_MS, make_store


def test_one_folder_per_kind_date_and_symbol_no_temporary_left(tmp_path: Path) -> None:
    make_store(tmp_path, ("BTCUSDT", "ETHUSDT"), minutes=1)
    kinds = sorted(p.name for p in tmp_path.iterdir())
    assert kinds == ["book_snapshot_10", "incremental_book_L2", "trades"]
    for kind in kinds:
        assert sorted(p.name for p in (tmp_path / kind / "2026-01-01").iterdir()) == [
            "BTCUSDT",
            "ETHUSDT",
        ]
    assert not list(tmp_path.rglob(".tmp-*"))
    (first,) = (tmp_path / "trades" / "2026-01-01" / "BTCUSDT").iterdir()
    table = pq.read_table(first)
    assert table.column_names == [
        "exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount",
    ]  # fmt: skip
    row = table.to_pylist()[0]
    assert row["exchange"] == "binance-futures" and row["side"] in ("buy", "sell")
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert table.num_rows == 60


def test_history_command_prints_rows_and_bytes_per_kind_and_symbol(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(tmp_path, ("BTCUSDT",), minutes=1)
    assert main(["history", "--parquet-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("trades"))
    assert "BTCUSDT" in line and "2026-01-01" in line and " 60 " in line
    assert "parquet total" in out


def test_one_buffer_that_cannot_be_written_does_not_lose_the_others(tmp_path: Path) -> None:
    store = ParquetStore(tmp_path)
    rows = RowBuilder()
    for symbol in ("BTCUSDT", "ETHUSDT"):
        rows.on_applied(T0_MS * 10**6, symbol, T0_MS, 101, [(99.0, 1.0)], [(101.0, 2.0)])
    rows.on_block(T0_MS * 10**6, "XRPUSDT", T0_MS, 7, [], [])  # a book with no level
    for chunk in rows.take():
        store.add(chunk)
    (tmp_path / "incremental_book_L2" / "2026-01-01").mkdir(parents=True)
    (tmp_path / "incremental_book_L2" / "2026-01-01" / "BTCUSDT").write_text("not a folder")
    with pytest.raises(OSError):
        store.flush(0, force=True)
    written = list((tmp_path / "incremental_book_L2").rglob("*.parquet"))
    assert [p.parent.name for p in written] == ["ETHUSDT"]  # XRPUSDT: no rows, no file
    assert store.rows_written["incremental_book_L2"] == 2 and not store._columns


def test_files_are_zstd_but_small_ones_snappy(tmp_path: Path) -> None:
    assert SMALL_FILE_ROWS == 200
    store = ParquetStore(tmp_path, row_group_rows=10_000)
    rows = RowBuilder()
    for i in range(150):  # 300 rows, written on time: zstd
        rows.on_applied(T0_MS * 10**6, "BTCUSDT", T0_MS + i, 101 + i, [(99.0, 1.0)], [(101.0, 2.0)])
    rows.on_applied(T0_MS * 10**6, "ETHUSDT", T0_MS, 7, [(9.0, 1.0)], [])  # 1 row: snappy
    for chunk in rows.take():
        store.add(chunk)
    store.flush(T0_MS * 10**6 + 10**10)  # 10 s later: past flush_s
    codecs = {}
    for file in (tmp_path / "incremental_book_L2").rglob("*.parquet"):
        meta = pq.ParquetFile(file).metadata
        codecs[file.parent.name] = (meta.num_rows, meta.row_group(0).column(6).compression)
    assert codecs == {"BTCUSDT": (300, "ZSTD"), "ETHUSDT": (1, "SNAPPY")}


def test_files_keep_statistics_of_their_timestamps_only(tmp_path: Path) -> None:
    """Readers skip files by time: min and max of both timestamps are kept, no others."""
    make_store(tmp_path, ("BTCUSDT",), minutes=1)
    (first,) = (tmp_path / "trades" / "2026-01-01" / "BTCUSDT").iterdir()
    group = pq.ParquetFile(first).metadata.row_group(0)
    columns = {group.column(i).path_in_schema: group.column(i) for i in range(group.num_columns)}
    kept = sorted(name for name, column in columns.items() if column.is_stats_set)
    assert kept == ["local_timestamp", "timestamp"]
    table = pq.read_table(first)
    assert columns["timestamp"].statistics.min == table.column("timestamp")[0].as_py()
