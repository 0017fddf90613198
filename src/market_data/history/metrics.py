"""Metric families of the history pipeline, built at scrape time from its plain counters.

Always exported (zero when history is off), so the alert rules always resolve.
"""

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from market_data.history.pipeline import HistoryPipeline


def history_metrics(pipeline: HistoryPipeline | None) -> Iterator[Metric]:
    counters = pipeline.counters if pipeline is not None else None
    yield GaugeMetricFamily(
        "history_suspended",
        "1 while recording and the history store are suspended (disk full or too slow)",
        value=1 if counters is not None and counters.suspended else 0,
    )
    yield CounterMetricFamily(
        "history_suspensions",
        "Times history was suspended",
        value=counters.suspensions if counters else 0,
    )
    yield CounterMetricFamily(
        "history_dropped",
        "Items (frames, snapshots, events) not recorded while suspended",
        value=counters.dropped if counters else 0,
    )
    yield CounterMetricFamily(
        "history_write_errors",
        "Failed writes of recording files or Parquet files",
        value=counters.write_errors if counters else 0,
    )
    yield CounterMetricFamily(
        "recording_lines",
        "Lines written to the recording",
        value=counters.recorded_lines if counters else 0,
    )
    yield GaugeMetricFamily(
        "history_queue_length",
        "Items waiting for the history thread",
        value=pipeline.queue_length if pipeline is not None else 0,
    )
    rows = CounterMetricFamily(
        "history_rows_written", "Rows written to the Parquet store", labels=["kind"]
    )
    for consumer in pipeline.consumers if pipeline is not None else ():
        for kind, count in sorted(getattr(consumer, "rows_written", {}).items()):
            rows.add_metric([kind], count)
    yield rows
