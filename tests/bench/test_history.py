"""``bench history``'s in-process part: the row builder and the Parquet store on load frames."""

from types import SimpleNamespace
from typing import Any

from market_data.bench.history import Row, paired, parquet_rows_per_s


def test_the_store_alone_writes_a_row_per_level_change() -> None:
    rows, rate = parquet_rows_per_s(2, 50)
    # 2 symbols x 49 frames x 10 level changes, plus each symbol's snapshot block
    # (200 levels a side) and its book_snapshot_10 rows.
    assert 2 * 49 * 10 + 2 * 400 <= rows <= 2 * 49 * 10 + 2 * 400 + 2 * 50
    assert rate > 0


def test_run_by_run_differences_pair_each_on_run_with_the_off_run_of_its_repeat() -> None:
    def row(*cpus: float) -> Row:
        runs: list[Any] = [SimpleNamespace(cpu_percent=cpu) for cpu in cpus]
        return Row(10, 10_000.0, "off", runs=runs)

    # The medians differ by +9 (20 -> 29); pair by pair: +9, +1, +5, whose median is +5.
    assert paired(row(20, 30, 10), row(29, 31, 15), lambda r: r.cpu_percent) == (
        "+5.00 (+1.00..+9.00)"
    )


def test_bytes_per_hour_count_the_warm_up_the_files_also_hold() -> None:
    runs: list[Any] = [SimpleNamespace(paced=SimpleNamespace(elapsed_s=6.0))]
    row = Row(10, 10_000.0, "recording", 6.0, runs=runs)
    # 1.2 MB written over 6 s of warm-up and 6 s measured, by 10 symbols: 36 MB/h each
    assert row.per_hour_per_symbol([1_200_000]) == 1_200_000 / 12 * 3600 / 10
