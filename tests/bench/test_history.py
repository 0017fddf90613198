"""``bench history``'s in-process part: the row builder and the Parquet store on load frames."""

from market_data.bench.history import parquet_rows_per_s


def test_the_store_alone_writes_a_row_per_level_change() -> None:
    rows, rate = parquet_rows_per_s(2, 50)
    # 2 symbols x 49 frames x 10 level changes, plus each symbol's snapshot block
    # (200 levels a side) and its book_snapshot_10 rows.
    assert 2 * 49 * 10 + 2 * 400 <= rows <= 2 * 49 * 10 + 2 * 400 + 2 * 50
    assert rate > 0
