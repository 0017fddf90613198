"""The Parquet store: layout, columns, the summary command."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from market_data.cli import main
from tests.history.store import make_store


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
