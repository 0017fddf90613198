"""The fan-out benchmark runs end to end on a real server and cluster (figures printed)."""

import argparse

from market_data.bench.cluster import bench_cluster, format_results


def test_bench_cluster_reports_both_setups() -> None:
    args = argparse.Namespace(n=600, symbols=12, subscribers=2, shards=3, payload_bytes=32)
    results = bench_cluster(args)
    assert set(results) == {"1 node", "3 shards"}
    for figures in results.values():
        assert figures["published_per_s"] > 0
        # Every subscriber got every message (the run waits for that), so delivery
        # is counted over subscribers x messages.
        assert figures["delivered_per_s"] > 0
    text = format_results(results, args)
    assert "1 node" in text and "3 shards" in text and "1.00x" in text
