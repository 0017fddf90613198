"""``market-data bench shm`` runs end to end on small counts (figures are not asserted)."""

from __future__ import annotations

import io
import math

from market_data.bench.shm import LatencyResult, ThroughputResult, percentiles, run_bench


def test_percentiles_pick_from_sorted_samples() -> None:
    samples = list(range(1000, 0, -1))  # 1..1000 ns, reversed
    assert percentiles(samples) == (0.501, 0.991, 1.0, 1.0)
    assert all(math.isnan(v) for v in percentiles([]))


def test_bench_reports_every_transport() -> None:
    out = io.StringIO()
    results = run_bench(
        rate=5_000, latency_records=300, throughput_records=2_000, redis_records=100, out=out
    )
    latency = [r for r in results if isinstance(r, LatencyResult)]
    throughput = [r for r in results if isinstance(r, ThroughputResult)]
    assert [r.transport.split()[0] for r in latency] == ["shm", "shm", "shm", "shm", "redis"]
    for result in latency:
        assert result.received + result.missed == result.sent
        assert result.received > 0 and 0 < result.p50_us <= result.p99_us <= result.p999_us
    assert len(throughput) == 2
    for result in throughput:
        assert result.received + result.missed == result.written == 2_000
        assert result.write_rate > 0
    printed = out.getvalue().splitlines()
    assert len(printed) == 1 + len(results) and "p99.9" in printed[1]
