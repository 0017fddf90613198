"""Smoke run of ``market-data bench ui``: pages open beside the feed receive the push."""

from market_data.bench.ui import format_row, run_all, target_lines
from market_data.embedded_redis import EmbeddedRedis


async def test_smoke_run_with_and_without_pages(redis_server: EmbeddedRedis) -> None:
    rows = await run_all([0, 2], 500, 1.5, 1, redis_server)
    assert [row.pages for row in rows] == [0, 2]
    without, with_pages = rows
    assert without.frames_per_page_s == 0.0
    # Conflated: at most ~10 frames per second per page, and they do arrive.
    assert 1.0 <= with_pages.frames_per_page_s <= 12.0
    assert with_pages.kb_per_frame > 0.1
    assert all(row.clean for row in rows)
    assert all(run.covered == run.paced.sent for row in rows for run in row.runs)
    assert format_row(with_pages).split()[0] == "2"
    assert target_lines(rows)[0].startswith("target 2 pages add")
