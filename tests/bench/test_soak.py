"""The soak benchmark runs end to end; a short soak already must not grow tasks or resync."""

from market_data.bench.soak import bench_soak, format_results


async def test_a_short_soak_keeps_tasks_flat_and_books_live() -> None:
    soaked, control = await bench_soak(disconnects=12, every=4)
    assert [s.disconnects for s in soaked] == [0, 4, 8, 12]
    assert all(s.live for s in soaked) and soaked[-1].resyncs == soaked[0].resyncs
    assert soaked[-1].tasks <= soaked[0].tasks + 1  # a reconnecting line leaves no task
    assert soaked[-1].fds <= soaked[0].fds + 2
    assert len(control) == len(soaked)
    assert "control" in format_results(soaked, control)
