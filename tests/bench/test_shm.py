"""``market-data bench shm`` runs end to end on small counts (figures are not asserted)."""

from __future__ import annotations

import io
import math

from market_data.bench.shm import (
    LatencyResult,
    ThroughputResult,
    WriteCostResult,
    bench_write_cost,
    percentiles,
    run_bench,
)


def test_percentiles_pick_from_sorted_samples() -> None:
    samples = list(range(1000, 0, -1))  # 1..1000 ns, reversed
    assert percentiles(samples) == (0.501, 0.991, 1.0, 1.0)
    assert all(math.isnan(v) for v in percentiles([]))


def test_bench_reports_every_transport() -> None:
    out = io.StringIO()
    results = run_bench(
        rate=5_000,
        latency_records=300,
        throughput_records=2_000,
        redis_records=100,
        write_records=200,
        out=out,
    )
    latency = [r for r in results if isinstance(r, LatencyResult)]
    throughput = [r for r in results if isinstance(r, ThroughputResult)]
    assert [r.transport.split()[0] for r in latency] == [
        "floor",
        "shm",
        "shm",
        "shm",
        "shm",
        "redis",
    ]
    for result in latency:
        assert result.received + result.missed == result.sent
        assert result.received > 0 and 0 < result.p50_us <= result.p99_us <= result.p999_us
    assert len(throughput) == 2
    for result in throughput:
        assert result.received + result.missed == result.written == 2_000
        assert result.write_rate > 0
    writes = [r for r in results if isinstance(r, WriteCostResult)]
    assert [(r.levels_per_side, r.record_bytes) for r in writes] == [(20, 712), (30, 1032)]
    assert all(0 < r.write_us and 0 < r.baseline_us for r in writes)
    printed = out.getvalue().splitlines()
    assert len(printed) == 1 + len(results) and "p99.9" in printed[1]


def test_write_cost_compares_two_encoders_of_the_same_bytes() -> None:
    """The baseline writes byte for byte what the writer does (it raises otherwise)."""
    result = bench_write_cost(5, 50, repeats=1)
    assert result.record_bytes == 48 + 24 + 10 * 16
    assert "baseline" in result.line() and result.write_us > 0
