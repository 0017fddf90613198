"""Made-up :class:`~market_data.bench.e2e.RunResult` figures, for the benchmarks' own
arithmetic (CPU per frame, targets, slopes) without running a load."""

from array import array

from market_data.bench.e2e import RunResult
from market_data.sim.loadgen import PacedRun


def made_up_run(
    *,
    symbols: int = 100,
    frames: int = 10_000,
    elapsed_s: float = 1.0,
    drain_s: float = 0.0,
    cpu_percent: float = 50.0,
    publishes: int | None = None,
    latency_ms: float = 0.000001,
) -> RunResult:
    """A clean service run of ``frames`` sent in ``elapsed_s`` (every update delivered,
    no gap), every latency ``latency_ms``."""
    latencies = array("q", [max(1, int(latency_ms * 1e6))] * 10)
    return RunResult(
        pipeline="service",
        symbols=symbols,
        target_rate=frames / elapsed_s,
        paced=PacedRun(frames, 0, 0, elapsed_s),
        publishes=frames if publishes is None else publishes,
        covered=frames,
        behind=0,
        not_live=0,
        drain_s=drain_s,
        book_latency_ns=latencies,
        update_latency_ns=latencies,
        cpu_percent=cpu_percent,
        rss_bytes=100 << 20,
        children_cpu_percent=0.0,
        driver_cpu_percent=0.0,
        redis_cpu_percent=0.0,
        report={"gaps": 0, "resets": 0},
    )
