"""The Parquet store: layout, columns, the summary command."""

import fnmatch
import shutil
from pathlib import Path
from typing import Any

import msgspec
import pyarrow.parquet as pq
import pytest

from market_data.cli import main
from market_data.history.parquet import SMALL_FILE_ROWS, ParquetStore, _constant
from market_data.history.schema.rows import INCREMENTAL, RowBuilder, book_rows
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
    assert not list(tmp_path.rglob("*.tmp"))
    (first,) = (tmp_path / "trades" / "2026-01-01" / "BTCUSDT").iterdir()
    table = pq.read_table(first)
    assert table.column_names == [
        "exchange", "symbol", "timestamp", "local_timestamp", "id", "side", "price", "amount",
    ]  # fmt: skip
    row = table.to_pylist()[0]
    assert row["exchange"] == "binance-futures" and row["side"] in ("buy", "sell")
    assert str(table.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    assert table.schema.field("symbol").type == "string"  # built as dictionaries, read as text
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


def test_a_file_being_written_matches_no_reader_glob(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DuckDB and polars read ``*.parquet`` including hidden names: a half-written file
    (or one a crash left) named so would fail every query."""
    written: list[str] = []
    real = pq.write_table

    def write_table(table: Any, where: Path, **options: Any) -> None:
        written.append(where.name)
        real(table, where, **options)

    monkeypatch.setattr(pq, "write_table", write_table)
    make_store(tmp_path, ("BTCUSDT",), minutes=1)
    assert written and all(name.startswith(".") for name in written)
    assert not [name for name in written if fnmatch.fnmatch(name, "*.parquet")]
    assert len(list(tmp_path.rglob("*.parquet"))) == len(written)  # each renamed once whole


def test_history_command_leaves_out_temporary_and_unreadable_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    make_store(tmp_path, ("BTCUSDT",), minutes=1)
    folder = tmp_path / "trades" / "2026-01-01" / "BTCUSDT"
    (folder / ".1-2-3.parquet.tmp").write_bytes(b"PAR1")  # a write a crash cut short
    (folder / ".tmp-1-2-3.parquet").write_bytes(b"")  # the earlier naming: a reader's trap
    (folder / "broken.parquet").write_bytes(b"not parquet")
    assert main(["history", "--parquet-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("trades"))
    assert " 60 " in line and "      1 " in line  # one file, its 60 rows
    assert f"note: not readable, left out: {folder / 'broken.parquet'}" in out
    assert "note: 1 temporary file(s) (*.tmp)" in out
    assert "note: 1 unfinished file(s) named .tmp-*.parquet" in out


def test_history_command_refuses_a_folder_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A mistyped folder is an error, not an empty summary."""
    monkeypatch.chdir(tmp_path)  # no config.yaml here: the defaults, which store nothing
    for key in ("PARQUET_DIR", "RECORDING_DIR"):
        monkeypatch.delenv(f"MARKET_DATA_{key}", raising=False)
    missing = tmp_path / "typo"
    assert main(["history", "--parquet-dir", str(missing)]) == 2
    err = capsys.readouterr().err
    assert f"parquet_dir: no folder {missing}" in err
    assert main(["history", "--recording-dir", str(missing)]) == 2
    assert "recording_dir: no folder" in capsys.readouterr().err
    assert main(["history", "--parquet-dir", str(tmp_path)]) == 0  # empty, but there
    assert "nothing stored" in capsys.readouterr().out
    assert main(["history"]) == 2  # the default config stores nothing
    assert "give --parquet-dir DIR and/or --recording-dir DIR" in capsys.readouterr().err


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


@pytest.mark.parametrize("events", [1, 40])  # levels as lists; as numpy arrays (16 or more)
def test_book_files_hold_the_rows_of_the_plain_spreading(tmp_path: Path, events: int) -> None:
    """Each level row gets its own event's values and side, whatever the sides' sizes
    (an empty side included), exactly as ``rows.book_rows`` spreads them."""
    builder = RowBuilder()
    encode = msgspec.msgpack.encode
    for i in range(events):
        bids = [(100.0 - j, 1.0 + i + j) for j in range(i % 3)]  # 0, 1 or 2 levels
        asks = [(101.0 + j, 0.0 if j else 2.0) for j in range((i + 1) % 4)]  # i = 3: none
        on = builder.on_block if i == 0 else builder.on_applied
        on((T0_MS + i) * 10**6 + 5, "BTCUSDT", T0_MS + i, 7 + i, *_raw(encode, bids, asks))
    ((kind, symbol, columns),) = builder.take()
    store = ParquetStore(tmp_path)
    store.add((kind, symbol, columns))
    store.close()
    (file,) = (tmp_path / kind).rglob("*.parquet")
    table = pq.read_table(file)
    for name in ("exchange", "symbol", "side"):  # built as dictionaries, read back as text
        assert table.schema.field(name).type == "string"
    expected = book_rows(symbol, columns)
    for name, column in zip(INCREMENTAL, expected, strict=True):
        column_read = table.column(name)
        if name.endswith("timestamp"):  # µs since the epoch, as the chunk holds them
            column_read = column_read.cast("int64")
        values = column_read.to_pylist()
        assert values == list(column), name


def _raw(encode: Any, bids: Any, asks: Any) -> tuple[msgspec.Raw, msgspec.Raw]:
    """Levels as the history process has them: their msgpack, unread."""
    return msgspec.Raw(encode(bids)), msgspec.Raw(encode(asks))


@pytest.mark.parametrize("value", ["", "binance-futures", "é✓"])
@pytest.mark.parametrize("rows", [0, 1, 5])
def test_a_constant_column_holds_its_value_in_every_row(value: str, rows: int) -> None:
    import numpy as np
    import pyarrow as pa

    column = _constant(pa, np, value, rows)
    column.validate(full=True)
    assert column.to_pylist() == [value] * rows


def test_a_folder_removed_under_the_store_is_made_again(tmp_path: Path) -> None:
    """Folders are made once, then trusted; one removed by hand costs the one write that
    found it gone (an error, counted by the caller), and the next write makes it again."""
    store = ParquetStore(tmp_path)

    def write(u: int) -> None:
        rows = RowBuilder()
        rows.on_applied(T0_MS * 10**6, "BTCUSDT", T0_MS, u, [(99.0, 1.0)], [])
        for chunk in rows.take():
            store.add(chunk)
        store.flush(0, force=True)

    write(1)
    folder = tmp_path / "incremental_book_L2" / "2026-01-01" / "BTCUSDT"
    shutil.rmtree(folder)
    with pytest.raises(OSError):
        write(2)
    write(3)
    (file,) = folder.iterdir()
    assert pq.read_table(file).column("update_id").to_pylist() == [3]
