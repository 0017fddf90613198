"""The failover benchmark runs end to end with real processes (figures printed)."""

from market_data.bench.failover import bench_failover, format_results


async def test_bench_failover_measures_both_setups() -> None:
    results = await bench_failover(kills=1, restarts=1, lease_ms=1000)
    standby, restart = results["standby"], results["restart"]
    assert len(standby["waits"]) == 1 and len(restart["waits"]) == 1
    assert 0 < standby["waits"][0] < 5  # the lease (1 s) plus a renewal period, roughly
    assert standby["lost"] == 0 and standby["twice"] == 0  # what the standby is for
    assert standby["books"] > 0 and standby["wrong"] == 0
    assert restart["books"] > 0 and restart["wrong"] == 0
    text = format_results(results, 1000)
    assert "active/standby" in text and "restart" in text
