"""The Redis benchmark runs end to end (a smoke test: figures are printed, not asserted)."""

from market_data.bench.redis import bench_publish, format_results
from market_data.embedded_redis import EmbeddedRedis


async def test_bench_publish_reports_every_figure(redis_server: EmbeddedRedis) -> None:
    results = await bench_publish(redis_server.url, n=300, payload_bytes=64)
    assert set(results) == {
        "baseline_cmd_per_s",
        "pipeline_cmd_per_s",
        "sink_cmd_per_s",
        "sink_streamed_trades_per_s",
        "sink_mean_batch",
        "enqueue_ns",
    }
    assert all(value > 0 for value in results.values())
    text = format_results(results, 300, 64)
    assert "baseline" in text and "RedisSink" in text and "XADD stream" in text
