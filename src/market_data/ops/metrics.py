"""Prometheus metrics, read from the service's plain counters at scrape time.

The hot path never calls prometheus-client: it bumps plain integers (and a
bisect-based latency histogram) that cost nanoseconds. :class:`ServiceCollector`
turns them into metric families only when Prometheus scrapes ``/metrics``.
Each :class:`~market_data.service.app.App` has its own registry, so several apps in one
process (the tests) never collide.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from market_data import __version__
from market_data.core.state import BookState
from market_data.history.metrics import history_metrics
from market_data.service.feed import FeedConnection

if TYPE_CHECKING:
    from market_data.service.app import App


class ServiceCollector(Collector):
    """Builds every metric family of the service from its counters, on demand."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.ready: bool | None = None  # set by the /metrics handler before each scrape
        # Disconnects of connections the service has since replaced (partial-depth
        # fallback), so that websocket_disconnects_total never goes backwards.
        self._seen: dict[int, tuple[FeedConnection, int]] = {}
        self._retired_disconnects = 0

    def describe(self) -> Iterable[Metric]:
        return []  # names are dynamic (labels per symbol): no pre-registration check

    def collect(self) -> Iterator[Metric]:
        yield from self._service_metrics()
        yield from self._feed_metrics()
        yield from self._book_metrics()
        yield from self._redis_metrics()
        yield from self._shm_metrics()
        yield from history_metrics(getattr(self.app, "history", None))

    # ------------------------------------------------------------------ service

    def _service_metrics(self) -> Iterator[Metric]:
        service = self.app.service
        counters = service.counters

        info = GaugeMetricFamily(
            "market_data_info", "Version of the running service", labels=["version"]
        )
        info.add_metric([__version__], 1)
        yield info
        try:  # scraped from the service's own loop; none when called from elsewhere
            tasks = len(asyncio.all_tasks())
        except RuntimeError:
            tasks = 0
        yield GaugeMetricFamily(
            "asyncio_tasks",
            "Tasks alive in the service's event loop (a leak shows here)",
            value=tasks,
        )

        if self.ready is not None:
            yield GaugeMetricFamily(
                "service_ready", "1 when /ready would answer 200", value=int(self.ready)
            )

        processed = CounterMetricFamily(
            "messages_processed", "Frames decoded, by stream type", labels=["type"]
        )
        for kind in ("depth", "trade", "partial_depth", "book_ticker"):
            processed.add_metric([kind], counters.by_type.get(kind, 0))
        yield processed

        errors = CounterMetricFamily(
            "messages_error",
            "Frames skipped: malformed, unsupported stream or unknown symbol",
            labels=["reason"],
        )
        errors.add_metric(["malformed"], counters.malformed)
        errors.add_metric(["unsupported"], counters.unsupported)
        errors.add_metric(["unknown_symbol"], counters.unknown_symbol)
        yield errors

        latency = counters.latency
        histogram = HistogramMetricFamily(
            "processing_latency_microseconds",
            "Time to decode a frame and apply it to its book, in microseconds",
        )
        buckets = [(_bound(bound), float(count)) for bound, count in latency.cumulative()]
        histogram.add_metric([], buckets, sum_value=latency.total)
        yield histogram

        resyncs = CounterMetricFamily(
            "orderbook_resyncs", "Book resets that required a new snapshot", labels=["reason"]
        )
        for reason, count in sorted(counters.resets.items()):
            resyncs.add_metric([reason], count)
        yield resyncs

        yield CounterMetricFamily(
            "snapshot_requests",
            "REST depth snapshots asked for (each one fetch attempt)",
            value=sum(state.sync.snapshots_requested for state in service.symbols.values()),
        )
        failures = CounterMetricFamily(
            "snapshot_failures", "REST depth snapshots that failed", labels=["reason"]
        )
        for reason in sorted({"error", "rate_limited", "geo_blocked", *counters.snapshot_failures}):
            failures.add_metric([reason], counters.snapshot_failures[reason])
        yield failures
        restarts = CounterMetricFamily(
            "task_restarts",
            "Background tasks (feeds, refresh) that died and were started again",
            labels=["task"],
        )
        for task, count in sorted(counters.task_restarts.items()):
            restarts.add_metric([task], count)
        yield restarts
        silent = GaugeMetricFamily(
            "trades_silent",
            "1 while the exchange's ticker counts trades that no aggTrade brought "
            "(for trades_silent_after_s): the trade stream is silent",
            labels=["symbol"],
        )
        for symbol, state in service.symbols.items():
            silent.add_metric([symbol], int(state.trade_watch.silent))
        yield silent

        weights = service.weights
        yield GaugeMetricFamily(
            "rest_weight_used",
            "REST request weight used in the current minute (exchange's count when higher)",
            value=weights.used,
        )
        yield GaugeMetricFamily(
            "rest_weight_budget", "REST request weight allowed per minute", value=weights.per_minute
        )
        yield CounterMetricFamily(
            "rest_weight", "REST request weight spent since start", value=weights.total
        )
        yield GaugeMetricFamily(
            "partial_depth_mode",
            "1 when REST snapshots are unavailable and books come from partial depth",
            value=int(service.partial_mode),
        )
        yield CounterMetricFamily(
            "book_publishes",
            "Book publications to the outputs",
            value=service.publisher.book_publishes,
        )

    # -------------------------------------------------------------------- feeds

    def _feed_metrics(self) -> Iterator[Metric]:
        service = self.app.service
        connections = list(service.connections)
        now = service.clock()

        current = {id(c) for c in connections}
        for key, (connection, _) in list(self._seen.items()):
            if key not in current:
                self._retired_disconnects += connection.disconnects
                del self._seen[key]
        for connection in connections:
            self._seen[id(connection)] = (connection, connection.disconnects)

        up = GaugeMetricFamily(
            "websocket_connection_up", "1 while the connection is open", labels=["connection"]
        )
        age = GaugeMetricFamily(
            "websocket_last_message_age_seconds",
            "Seconds since the connection last received a message (NaN before the first)",
            labels=["connection"],
        )
        connects = CounterMetricFamily(
            "websocket_connects", "Successful connections opened", labels=["connection"]
        )
        handovers = CounterMetricFamily(
            "websocket_rotations",
            "Planned rotations handed over to a replacement connection (make-before-break)",
            labels=["connection"],
        )
        unconfirmed = CounterMetricFamily(
            "websocket_rotations_unconfirmed",
            "Rotations handed over before the new connection had every stream (a missed event "
            "then shows as a resync or a trade gap)",
            labels=["connection"],
        )
        for connection in connections:
            name = connection.plan.name
            up.add_metric([name], int(connection.connected))
            last = connection.last_message_at
            age.add_metric([name], now - last if last else math.nan)
            connects.add_metric([name], connection.connects)
            handovers.add_metric([name], connection.handovers)
            unconfirmed.add_metric([name], connection.handover_timeouts)
        yield up
        yield age
        yield connects
        yield handovers
        yield unconfirmed

        per_symbol = GaugeMetricFamily(
            "websocket_connected",
            "1 when every connection carrying the symbol is open",
            labels=["symbol"],
        )
        for symbol in service.symbols:
            carriers = [c for c in connections if symbol in c.plan.symbols]
            all_up = bool(carriers) and all(c.connected for c in carriers)
            per_symbol.add_metric([symbol], int(all_up))
        yield per_symbol

        yield CounterMetricFamily(
            "websocket_disconnects",
            "Exchange connections lost (every one is a gap for its books)",
            value=self._retired_disconnects + sum(c.disconnects for c in connections),
        )

    # -------------------------------------------------------------------- books

    def _audit_metrics(self) -> Iterator[Metric]:
        """Re-bases on fresh snapshots and what their comparison with the live book found."""
        audits = CounterMetricFamily(
            "book_audits", "Live books re-based on a fresh snapshot and audited", labels=["symbol"]
        )
        abandoned = CounterMetricFamily(
            "book_audits_abandoned",
            "Re-base snapshots that could not be bridged to the live book (tried again later)",
            labels=["symbol"],
        )
        differences = CounterMetricFamily(
            "book_audit_differences",
            "Levels that differed between the live book and a fresh one at the same update "
            "id: scope=top within the published depth, scope=window in the whole book",
            labels=["symbol", "scope"],
        )
        wrong_top = CounterMetricFamily(
            "book_audit_top_of_book_errors",
            "Audits that found the live book's best bid or ask wrong (the book was resynced)",
            labels=["symbol"],
        )
        for symbol, state in self.app.service.symbols.items():
            sync = state.sync
            audits.add_metric([symbol], sync.refreshes)
            abandoned.add_metric([symbol], sync.refreshes_abandoned)
            differences.add_metric([symbol, "top"], sync.audit_top_differences)
            differences.add_metric([symbol, "window"], sync.audit_window_differences)
            wrong_top.add_metric([symbol], sync.audit_top_of_book)
        yield from (audits, abandoned, differences, wrong_top)
        yield from self._line_metrics()
        backfill = self.app.service.backfill
        yield CounterMetricFamily(
            "stats_backfill_requests",
            "1-minute kline requests made to fill 24h windows",
            value=backfill.requests,
        )
        yield CounterMetricFamily(
            "stats_backfill_failures", "Kline requests that failed", value=backfill.failures
        )
        lease = self.app.service.lease
        if lease is not None:
            yield GaugeMetricFamily(
                "ha_active",
                "1 while this instance holds the lease and publishes",
                value=lease.active,
            )
            yield GaugeMetricFamily(
                "ha_epoch", "Fencing epoch of the last lease taken", value=lease.epoch
            )

    def _line_metrics(self) -> Iterator[Metric]:
        """A/B lines: which line delivered each applied event first, and the copies dropped."""
        service = self.app.service
        lines = service.config.feed_lines
        if lines == 1:
            return
        wins = CounterMetricFamily(
            "feed_line_first_arrivals",
            "Depth events applied from this line because it delivered them first",
            labels=["line"],
        )
        copies = CounterMetricFamily(
            "feed_line_duplicates",
            "Depth events this line delivered after another line already had",
            labels=["line"],
        )
        for line in range(lines):
            name = chr(ord("a") + line)
            wins.add_metric(
                [name], sum(s.sync.first_arrivals[line] for s in service.symbols.values())
            )
            copies.add_metric(
                [name], sum(s.sync.line_duplicates[line] for s in service.symbols.values())
            )
        delays = service.counters.line_delay_ms
        known = [delay for delay in delays if delay == delay]
        fastest = min(known) if known else math.nan
        lag = GaugeMetricFamily(
            "feed_line_lag_seconds",
            "How far this line's depth events arrive behind the fastest line's (moving "
            "average of receive time minus event time, relative to the fastest)",
            labels=["line"],
        )
        for line in range(lines):
            lag.add_metric([chr(ord("a") + line)], (delays[line] - fastest) / 1000.0)
        yield from (wins, copies, lag)

    def _book_metrics(self) -> Iterator[Metric]:
        service = self.app.service
        states = GaugeMetricFamily(
            "orderbook_state", "1 for the state each book is in", labels=["symbol", "state"]
        )
        updates = CounterMetricFamily(
            "orderbook_updates",
            "Exchange updates applied to a correct book (diffs or partial-depth messages)",
            labels=["symbol"],
        )
        gaps = CounterMetricFamily(
            "sequence_errors", "Sequence gaps detected in the depth stream", labels=["symbol"]
        )
        trades = CounterMetricFamily("trades_processed", "Trades received", labels=["symbol"])
        trade_gaps = CounterMetricFamily(
            "trades_missed",
            "Aggregate trade ids skipped by the stream (e.g. while disconnected)",
            labels=["symbol"],
        )
        trade_dups = CounterMetricFamily(
            "trades_duplicate", "Re-delivered trades dropped", labels=["symbol"]
        )
        trade_rejected = CounterMetricFamily(
            "trades_rejected",
            "Trades that fit no sequence (hostile id, time or count) and no run confirmed",
            labels=["symbol"],
        )
        trade_restarts = CounterMetricFamily(
            "trade_sequence_restarts",
            "Runs of consistent trades that moved the trade-id sequence (exchange restart)",
            labels=["symbol"],
        )
        age = GaugeMetricFamily(
            "orderbook_age_seconds",
            "Seconds since the book last changed (NaN before it ever did)",
            labels=["symbol"],
        )
        last_id = GaugeMetricFamily(
            "orderbook_last_update_id", "Update id of the book's last event", labels=["symbol"]
        )
        buffered = CounterMetricFamily(
            "sync_events_dropped",
            "Depth events not applied: stale, before sync, or lost to a buffer overflow",
            labels=["symbol", "reason"],
        )
        for symbol, state in service.symbols.items():
            current = state.state
            for book_state in BookState:
                states.add_metric([symbol, book_state.label], int(book_state is current))
            sync = state.sync
            updates.add_metric([symbol], state.book_updates)
            gaps.add_metric([symbol], sync.gaps)
            trades.add_metric([symbol], state.trades)
            trade_gaps.add_metric([symbol], state.trade_gaps)
            trade_dups.add_metric([symbol], state.duplicate_trades)
            trade_rejected.add_metric([symbol], state.trade_ids.rejected)
            trade_restarts.add_metric([symbol], state.trade_ids.restarts)
            book_age = service.book_age_s(state)
            age.add_metric([symbol], math.nan if book_age is None else book_age)
            last_id.add_metric([symbol], state.last_update_id)
            sync_counts = sync.counters()
            buffered.add_metric([symbol, "stale"], sync_counts["stale"])
            buffered.add_metric([symbol, "before_sync"], sync_counts["dropped_before_sync"])
            buffered.add_metric([symbol, "buffer_overflow"], sync_counts["buffer_overflows"])
        yield from (states, updates, gaps, trades, trade_gaps, trade_dups, trade_rejected)
        yield from (trade_restarts, age, last_id, buffered)
        yield from self._audit_metrics()
        sink_errors = CounterMetricFamily(
            "sink_errors", "Updates an output failed to take, by output", labels=["sink"]
        )
        for name, count in service.counters.sink_errors.items():
            sink_errors.add_metric([name], count)
        yield sink_errors

    # -------------------------------------------------------------------- Redis

    def _redis_metrics(self) -> Iterator[Metric]:
        sink = self.app.redis
        stats = sink.stats
        yield _by_kind(
            "redis_publishes",
            "Payloads Redis acknowledged, by kind",
            (stats.published_books, stats.published_market_data, stats.published_trades),
        )
        yield CounterMetricFamily(
            "redis_errors", "Redis connection failures and refused commands", value=stats.errors
        )
        yield _by_kind(
            "redis_refused",
            "Payloads Redis refused (OOM, READONLY...), so not published, by kind",
            (stats.refused_books, stats.refused_market_data, stats.refused_trades),
        )
        yield GaugeMetricFamily(
            "redis_refusing", "1 while Redis refuses writes", value=int(stats.refusing is not None)
        )
        yield CounterMetricFamily("redis_outages", "Redis outages begun", value=stats.outages)
        yield CounterMetricFamily(
            "redis_cluster_redirects",
            "Redis Cluster: commands refused for routing (MOVED, ASK, TRYAGAIN, CLUSTERDOWN) "
            "and sent again",
            value=stats.redirects,
        )
        yield GaugeMetricFamily(
            "redis_connected", "1 while the publisher holds a connection", value=int(sink.connected)
        )
        yield GaugeMetricFamily(
            "redis_publish_queue_depth",
            "Payloads waiting to be sent (books + market data + trades)",
            value=sink.queue_depth,
        )
        conflated = CounterMetricFamily(
            "redis_conflated",
            "Unsent payloads replaced by a newer one of the same symbol",
            labels=["kind"],
        )
        conflated.add_metric(["book"], stats.conflated_books)
        conflated.add_metric(["market_data"], stats.conflated_market_data)
        yield conflated
        yield CounterMetricFamily(
            "redis_dropped_trades",
            "Trades dropped because the pending queue was full",
            value=stats.dropped_trades,
        )
        yield CounterMetricFamily(
            "redis_discarded_trades",
            "Trades queued under an active/standby lease that lapsed before they were sent "
            "(the instance that takes over publishes them)",
            value=stats.discarded_trades,
        )
        unheard = CounterMetricFamily(
            "redis_publishes_unheard",
            "PUBLISHes Redis acknowledged with 0 receivers: no subscriber got them (trades "
            "stay in the trades:{SYMBOL} stream)",
            labels=["kind"],
        )
        unheard.add_metric(["book"], stats.unheard_books)
        unheard.add_metric(["market_data"], stats.unheard_market_data)
        unheard.add_metric(["trade"], stats.unheard_trades)
        yield unheard
        yield CounterMetricFamily(
            "redis_trades_streamed",
            "Trades appended to their Redis stream (XADD trades:{SYMBOL})",
            value=stats.streamed_trades,
        )
        yield CounterMetricFamily("redis_batches", "Pipelined batches sent", value=stats.batches)
        latency = stats.last_batch_latency_s
        yield GaugeMetricFamily(
            "redis_last_batch_latency_seconds",
            "Round trip of the last batch (NaN before the first)",
            value=math.nan if latency is None else latency,
        )
        yield GaugeMetricFamily(
            "redis_last_batch_commands",
            "Commands in the last batch",
            value=stats.last_batch_commands,
        )

    # ----------------------------------------------------------- shared memory

    def _shm_metrics(self) -> Iterator[Metric]:
        writer = self.app.shm
        if writer is None:
            return
        yield CounterMetricFamily(
            "shm_records_written",
            "Records written to the shared-memory ring",
            value=writer.records_written,
        )


def _by_kind(name: str, documentation: str, counts: tuple[int, int, int]) -> Metric:
    """A counter of books, market data and trades (``kind``), in that order."""
    family = CounterMetricFamily(name, documentation, labels=["kind"])
    for kind, count in zip(("book", "market_data", "trade"), counts, strict=True):
        family.add_metric([kind], count)
    return family


def _bound(value: float) -> str:
    if math.isinf(value):
        return "+Inf"
    return repr(float(value))


def build_registry(app: App) -> tuple[CollectorRegistry, ServiceCollector]:
    """A registry of the app's own metrics plus the process and platform ones."""
    registry = CollectorRegistry(auto_describe=False)
    collector = ServiceCollector(app)
    registry.register(collector)
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry, collector
