"""bench lines: with two lines a killed line costs nothing; with one, every kill resyncs."""

import asyncio

from market_data.bench.lines import measure


def test_two_lines_absorb_kills_that_cost_one_line_a_resync_each() -> None:
    one = asyncio.run(measure(1, jitter_ms=5, seconds=0.5, kills=5))
    two = asyncio.run(measure(2, jitter_ms=5, seconds=0.5, kills=5))
    assert one.resets >= 5 and one.non_live_publications > 0
    assert (two.resets, two.non_live_publications) == (0, 0)
    assert two.latencies_ms and one.latencies_ms
