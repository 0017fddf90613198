"""Smoke runs of ``market-data bench e2e`` on small numbers, and its bookkeeping."""

import argparse
import math

import msgspec
import pytest

from market_data.bench import e2e as bench_e2e
from market_data.bench.e2e import BookTracker, bench_symbols, measure
from market_data.embedded_redis import EmbeddedRedis
from market_data.sim.loadgen import LoadGenerator, build_frames, update_id
from tests.bench.runs import made_up_run


def _book(symbol: str, index: int, live: bool = True) -> bytes:
    return msgspec.json.encode(
        {
            "symbol": symbol,
            "bids": {},
            "asks": {},
            "last_update_id": update_id(index) if live else 0,
            "initialized": live,
        }
    )


def test_tracker_counts_conflated_updates_and_their_latencies() -> None:
    generator = LoadGenerator(build_frames(["BTCUSDT"], 10))
    feed = generator.feeds["BTCUSDT"]
    for k in range(6):
        feed.send_ns[k] = 1_000 * (k + 1)
    feed.next_index = 6
    tracker = BookTracker(generator, bench_e2e._decode_service)
    tracker.on_message(_book("BTCUSDT", 0), 5_000)  # priming: not measured
    assert tracker.primed() and tracker.publishes == 0
    tracker.measuring = True
    tracker.on_message(_book("BTCUSDT", 3), 10_000)  # one publish covers frames 1..3
    tracker.on_message(_book("BTCUSDT", 3), 11_000)  # a repeat covers nothing
    tracker.on_message(_book("BTCUSDT", 0, live=False), 12_000)
    assert tracker.publishes == 1 and tracker.covered == 3
    assert tracker.repeats == 1 and tracker.not_live == 1
    assert list(tracker.book_latency_ns) == [10_000 - 4_000]
    assert list(tracker.update_latency_ns) == [10_000 - 2_000, 10_000 - 3_000, 10_000 - 4_000]
    assert tracker.behind() == 2  # frames 4 and 5 sent, not yet delivered


def test_bench_symbols_are_distinct_and_valid() -> None:
    names = bench_symbols(100)
    assert len(set(names)) == 100
    assert names[0] == "BTCUSDT"
    assert all(name.isalnum() and name.isupper() for name in names)


@pytest.mark.parametrize("pipeline", ["service", "baseline"])
async def test_smoke_run_delivers_every_update_without_gaps(
    pipeline: str, redis_server: EmbeddedRedis
) -> None:
    result = await measure(pipeline, 3, 600, 1.0, redis_server)
    assert 300 <= result.paced.sent <= 700
    assert result.publishes > 0 and result.delivered_rate > 0
    assert result.covered == result.paced.sent and result.behind == 0
    assert result.publishes <= result.covered
    assert len(result.update_latency_ns) == result.covered
    assert min(result.update_latency_ns) > 0 and min(result.book_latency_ns) > 0
    p50, p99 = result.update_percentile_ms(0.5), result.update_percentile_ms(0.99)
    assert 0 < p50 <= p99 < 1_000
    assert result.rss_bytes > 10 * 2**20 and result.cpu_percent > 0
    if pipeline == "service":
        assert result.report is not None
        assert result.report["missing_reports"] == 0
        assert result.gaps == 0 and result.resets == 0
        assert result.report["depth_frames"] >= result.paced.sent
    else:
        assert result.report is None and result.gaps is None


async def test_a_warm_up_is_sent_but_not_measured(redis_server: EmbeddedRedis) -> None:
    result = await measure("service", 2, 400, 0.5, redis_server, warm_s=0.5)
    assert result.covered == result.paced.sent  # the window's frames only
    assert result.report is not None and result.gaps == 0
    assert result.report["depth_frames"] >= 2 * result.paced.sent  # the warm-up's came first


def test_command_prints_rows_and_targets(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    bench_e2e.configure_parser(parser)
    args = parser.parse_args(["--seconds", "0.5", "--symbols", "2", "--rates", "400"])
    assert bench_e2e.run(args) == 0
    out = capsys.readouterr().out
    rows = [line.split() for line in out.splitlines() if line.startswith("      2      400")]
    assert [row[2] for row in rows] == ["service", "baseline"]
    service = rows[0]
    offered, books, updates = (float(v) for v in service[3:6])
    assert offered > 0 and 0 < books <= updates
    assert service[7:10] == ["0", "0", "0"]  # behind, gaps, resets
    assert all(not math.isnan(float(v)) and float(v) > 0 for v in service[10:16])
    assert "redis-server" in out and "conflation" in out


def _result(
    cpu_percent: float, p99_ms: float, symbols: int = 100, drain_s: float = 0.0
) -> bench_e2e.RunResult:
    """20,000 frames in 2 s (10,000/s), at ``cpu_percent`` of a core."""
    return made_up_run(
        symbols=symbols,
        frames=20_000,
        elapsed_s=2.0,
        drain_s=drain_s,
        cpu_percent=cpu_percent,
        latency_ms=p99_ms,
    )


def test_cost_per_message_is_cpu_time_over_frames_sent() -> None:
    # 50% of a core over 10,000 frames/s: 50 μs of CPU per frame.
    assert _result(50.0, 0.5).cpu_us_per_frame == pytest.approx(50.0)
    # The CPU share is over the drain too: 50% of 2 s sending + 2 s draining, 20,000 frames.
    assert _result(50.0, 0.5, drain_s=2.0).cpu_us_per_frame == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("cpu_percent", "p99_ms", "verdict"),
    [(15.0, 0.8, "met"), (50.0, 0.8, "NOT met"), (15.0, 1.5, "NOT met")],
)
def test_cost_target_needs_both_cpu_and_latency(
    cpu_percent: float, p99_ms: float, verdict: str
) -> None:
    lines = bench_e2e.target_lines([_result(cpu_percent, p99_ms)])
    cost = [line for line in lines if line.startswith("target cost per message")]
    assert len(cost) == 1
    assert cost[0].split(": ")[2].startswith(f"{verdict} (")
    assert f"{cpu_percent:.1f} μs per frame" in cost[0]


def test_cost_target_is_judged_at_100_symbols_only() -> None:
    lines = bench_e2e.target_lines([_result(15.0, 0.5, symbols=10)])
    assert not any(line.startswith("target cost per message") for line in lines)
