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
        "1 while recording and the history store are suspended (disk full or too slow, "
        "or no CPU to spare for the history process)",
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
        "Failed writes of recording files or of the row stores",
        value=counters.write_errors if counters else 0,
    )
    yield CounterMetricFamily(
        "recording_lines",
        "Lines written to the recording",
        value=counters.recorded_lines if counters else 0,
    )
    yield GaugeMetricFamily(
        "history_queue_length",
        "Items waiting to be sent to the history process",
        value=pipeline.queue_length if pipeline is not None else 0,
    )
    yield CounterMetricFamily(
        "history_store_write_errors",
        "Failed writes of the row stores (Parquet, QuestDB buffer), each losing its rows",
        value=counters.store_errors if counters else 0,
    )
    rows = CounterMetricFamily(
        "history_rows_written", "Rows written to the Parquet store", labels=["kind"]
    )
    for kind, count in sorted(counters.rows.items() if counters else ()):
        rows.add_metric([kind], count)
    yield rows
    questdb = counters.questdb if counters else {}
    for name, key, text in (
        ("questdb_rows_sent", "sent", "Rows QuestDB acknowledged"),
        ("questdb_rows_dropped", "dropped", "Rows dropped: the QuestDB buffer was full"),
        ("questdb_rows_rejected", "rejected", "Rows dropped: QuestDB refused them as bad data"),
        ("questdb_send_failures", "failures", "Failed sends to QuestDB (retried with backoff)"),
    ):
        yield CounterMetricFamily(name, text, value=questdb.get(key, 0))
