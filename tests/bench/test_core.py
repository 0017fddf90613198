"""Smoke test of the core benchmark (figures are printed by `market-data bench core`)."""

from market_data.bench.core import book_memory, measure, project_runner, synthetic


def test_synthetic_workload_stays_live_and_measures() -> None:
    work = synthetic(3, 400, levels=200)
    result = measure(project_runner, work, top_n=20)
    assert result.rate > 0 and 0 < result.p50 <= result.p99 <= result.p999
    # A fresh runner brings each symbol live on its first frame (frames 0-2, round
    # robin); every later frame must then apply: the synthetic stream has no gaps.
    step = project_runner(work, 0)
    assert all(step(raw) for raw in work.frames[3:])


def test_memory_figure_counts_book_and_buffer() -> None:
    book, buffer = book_memory(levels=100, buffer_events=50)
    assert 0 < book < buffer * 10 and buffer > 0
