"""The engine: exchange frames in, books per symbol, publications out.

One :class:`MarketDataService` owns a :class:`~market_data.service.symbols.SymbolState`
per symbol. The feed loops call :meth:`~MarketDataService.on_frame` for every
message; it decodes the frame, feeds the symbol's book and marks the symbol for
the :class:`~market_data.service.publisher.Publisher`, which publishes changed
symbols once per event-loop pass. Snapshot requests go to the
:class:`~market_data.service.snapshots.SnapshotFetcher`, which runs them beside
the readers. If REST answers 451, the depth connections switch to partial-depth
streams and those books are published with state ``partial``.

Background tasks (feeds, the market-data refresh) are supervised: one that dies
is logged, counted in ``task_restarts`` and started again.
"""

import asyncio
import json
import logging
import math
import ssl
import time
from collections import Counter, deque
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import aiohttp
from redis.exceptions import RedisClusterException, RedisError

from market_data.binance.decode import (
    DecodeError,
    StreamKind,
    UnsupportedStreamError,
    decode_frame,
)
from market_data.binance.instruments import (
    Instrument,
)
from market_data.binance.rest import RestError, fetch_snapshot
from market_data.binance.schemas import AggTrade
from market_data.binance.streams import StreamPlan, plan_connections, with_lines
from market_data.core.latency import LatencyHistogram
from market_data.core.state import BookState
from market_data.core.sync import (
    BookAudit,
    BookLive,
    BookReset,
    DepthDiff,
    DepthSync,
    SnapshotNeeded,
)
from market_data.core.trade_lines import TradeLines
from market_data.core.trade_watch import TradeWatch
from market_data.core.weights import WeightBudget, snapshot_weight
from market_data.ops.config import Config
from market_data.outputs.redis import RedisSink
from market_data.outputs.redis_client import Client
from market_data.outputs.sinks import HeartbeatUpdate, RedisOutput, Sink, TradeUpdate
from market_data.service.backfill import StatsBackfill
from market_data.service.feed import FeedConnection
from market_data.service.lease import Lease
from market_data.service.listing import ListingMixin
from market_data.service.publisher import MARKET_DATA_REFRESH_MS, Publisher
from market_data.service.snapshots import SnapshotFetcher
from market_data.service.symbols import SymbolBook, SymbolState
from market_data.wire.payloads import trade_payload

log = logging.getLogger(__name__)

#: A supervised task that died is started again after this many seconds.
TASK_RESTART_DELAY_S = 1.0
#: Levels of the snapshot that probes REST while on partial depth (the lightest: weight 2).
PROBE_LIMIT = 5
#: Seconds between liveness beats (``market_data:heartbeat``).
HEARTBEAT_S = 1.0
#: Trades a standby keeps per symbol for a takeover to resume from.
HELD_TRADES = 10_000
#: Weight of each new depth event in a line's moving delay (about the last 20 events).
LINE_DELAY_WEIGHT = 0.05
#: Seconds market_data waits for a symbol's first 24h backfill before it is published
#: marked incomplete.
STATS_WAIT_S = 10.0


class HistoryHooks(Protocol):
    """What the engine tells the history pipeline (``market_data.history.pipeline``)."""

    #: Whether frames, snapshots and connection events are recorded.
    recording: bool
    #: Whether applied events and trades make rows (Parquet, QuestDB).
    rows: bool

    def frame(self, raw: str | bytes, line: int = 0) -> None: ...

    def book_rows(self, symbol: str, sync: DepthSync) -> Callable[[DepthDiff], None] | None: ...

    def trade(self, symbol: str, trade: AggTrade) -> None: ...

    def connection(
        self,
        event: str,
        name: str,
        line: int,
        symbols: tuple[str, ...] | list[str],
        *,
        depth: bool,
        trades: bool,
        reason: str = "",
    ) -> None: ...


@dataclass
class ServiceCounters:
    """Plain counters, read by the metrics collector at scrape time."""

    frames: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    unsupported: int = 0
    unknown_symbol: int = 0
    resets: Counter[str] = field(default_factory=Counter)
    snapshot_failures: Counter[str] = field(default_factory=Counter)
    sink_errors: Counter[str] = field(default_factory=Counter)
    task_restarts: Counter[str] = field(default_factory=Counter)
    #: Per symbol: times its trade stream was found silent while its ticker counted trades.
    trade_silences: Counter[str] = field(default_factory=Counter)
    audits: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    #: A/B lines: per line, a moving average of local receive time minus the exchange's
    #: event time (ms). The clocks' offset is the same for every line, so the
    #: differences between lines are how far each one lags the fastest.
    line_delay_ms: list[float] = field(default_factory=list)


class MarketDataService(ListingMixin):
    """Books for the configured symbols, fed by the exchange, published to sinks.

    ``wall_clock`` (epoch seconds) stamps what is published; ``clock_ns``
    (monotonic) measures every age and period. Both are injectable for tests.
    """

    def __init__(
        self,
        config: Config,
        sinks: Sequence[Sink],
        *,
        wall_clock: Callable[[], float] = time.time,
        clock_ns: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        self.config = config
        #: The history pipeline (``market_data.history``), when recording or a store is on
        #: (:meth:`attach_history`).
        self.history: HistoryHooks | None = None
        #: Its frame hook, while frames are recorded (None: not a call per frame).
        self._record_frame: Callable[[str | bytes, int], None] | None = None
        self.wall_clock = wall_clock
        self.clock_ns = clock_ns
        #: The served symbols (with ``symbols: all``, filled from exchangeInfo at start).
        self.symbols: dict[str, SymbolState] = {
            s: self._new_state(s) for s in ([] if config.all_symbols else config.symbols)
        }
        #: Configured symbols not served, with why (``unknown_symbols: skip``).
        self.skipped: dict[str, str] = {}
        #: The exchange's listing (empty until exchangeInfo answered).
        self.instruments: dict[str, Instrument] = {}
        self.counters = ServiceCounters(line_delay_ms=[math.nan] * config.feed_lines)
        self._several_lines = config.feed_lines > 1
        self.publisher = Publisher(
            sinks,
            depth=config.order_book_depth,
            wall_clock=wall_clock,
            clock_ns=clock_ns,
            sink_errors=self.counters.sink_errors,
        )
        self.snapshots = SnapshotFetcher(
            config,
            wall_clock=wall_clock,
            failures=self.counters.snapshot_failures,
            on_outputs=self._handle_outputs,
            on_geo_blocked=self._enter_partial_mode,
        )
        self.backfill = StatsBackfill(
            config, self.snapshots.weights, wall_clock=wall_clock, on_done=self._stats_changed
        )
        #: Active/standby (``ha_group``): the lease that says whether this instance publishes.
        self.lease = (
            Lease(config.redis_url, config.ha_group, config.ha_lease_ms)
            if config.ha_group
            else None
        )
        #: The recent trades of each symbol, kept in every role: a takeover publishes
        #: those after the last one in the trade stream (the old active's, or this
        #: instance's own that its lapsed lease kept from going out).
        self._held_trades: dict[str, deque[AggTrade]] = {}
        #: Symbols whose held trades a takeover has not published yet: new ones wait behind.
        self._resuming: set[str] = set()
        self.partial_mode = False
        #: State and last update id of every book when the service stopped.
        self.final_books: dict[str, tuple[BookState, int]] = {}
        self.connections: list[FeedConnection] = []
        self.started = False
        self.stopping = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._malformed_logged_at = -1e9
        self._malformed_since_log = 0

    def _new_state(self, symbol: str) -> SymbolState:
        cfg = self.config
        book = SymbolBook(
            symbol,
            max_buffer=cfg.sync_buffer_max,
            max_levels=cfg.max_levels_per_side,
            audit_depth=cfg.order_book_depth,
            lines=cfg.feed_lines,
        )
        trade_lines = TradeLines[AggTrade](cfg.feed_lines) if cfg.feed_lines > 1 else None
        if self.history is not None:
            book.sync.on_applied = self.history.book_rows(symbol, book.sync)
        return SymbolState(
            symbol,
            book,
            trade_lines=trade_lines,
            trade_watch=TradeWatch(cfg.trades_silent_after_s),
        )

    def attach_history(self, history: HistoryHooks) -> None:
        """Hand the history pipeline the frames (recording) and every book's events (rows)."""
        self.history = history
        self._record_frame = history.frame if history.recording else None
        for state in self.symbols.values():
            state.book.sync.on_applied = history.book_rows(state.symbol, state.book.sync)

    def clock(self) -> float:
        """Monotonic seconds (from ``clock_ns``)."""
        return self.clock_ns() / 1e9

    @property
    def sinks(self) -> list[Sink]:
        return self.publisher.sinks

    @property
    def weights(self) -> WeightBudget:
        return self.snapshots.weights

    # ------------------------------------------------------------------ lifecycle

    async def run(self, shutdown: asyncio.Event) -> None:
        """Run until ``shutdown`` is set; then stop feeds and publish final states."""
        self.publisher.attach(asyncio.get_running_loop())
        connector = aiohttp.TCPConnector(ssl=_tls_context(self.config.exchange_ca_file))
        async with aiohttp.ClientSession(connector=connector) as session:
            self._session = session
            self.snapshots.start(session)
            self.backfill.start(session)
            try:
                if not await self._first_listing(shutdown):
                    return
                for state in self.symbols.values():
                    self._start_backfill(state)
                    self.publisher.mark(state)
                self._start_feeds(self._plans())
                self._supervise("market-data-refresh", self._refresh_market_data)
                self._supervise("heartbeat", self._beat)
                self._supervise("exchange-info-refresh", self._refresh_listing)
                if self.lease is not None:
                    lease = self.lease
                    self.publisher.gate = lambda: lease.active
                    for redis in self._redis_sinks():
                        redis.gate = self.publisher.gate
                    self.publisher.epoch = lambda: lease.epoch
                    self._supervise("ha-lease", lambda: lease.run(self._on_role))
                if self.config.book_refresh_interval_s > 0:
                    self._supervise("book-refresh", self._refresh_books)
                self.started = True
                await shutdown.wait()
            finally:
                self.stopping = True
                await self._stop_tasks()
                for state in self.symbols.values():  # trades still waiting for a line
                    if state.trade_lines is not None:
                        for trade in state.trade_lines.flush():
                            self._on_trade(state, trade)
                self._retire_books()
                self.publisher.flush()

    def _supervise(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run ``factory()`` as a task; if it ever ends while running, log and restart it."""
        task = asyncio.create_task(factory(), name=name)
        self._tasks[name] = task

        def ended(done: asyncio.Task[None]) -> None:
            if self.stopping or done.cancelled() or self._tasks.get(name) is not done:
                return
            exc = done.exception()
            self.counters.task_restarts[name] += 1
            log.error(
                "task %s ended (%s); restarting in %.0fs",
                name,
                repr(exc) if exc is not None else "returned",
                TASK_RESTART_DELAY_S,
                exc_info=exc,
                extra={"task": name},
            )
            loop = asyncio.get_running_loop()
            loop.call_later(TASK_RESTART_DELAY_S, self._restart, name, factory, done)

        task.add_done_callback(ended)

    def _restart(
        self,
        name: str,
        factory: Callable[[], Coroutine[Any, Any, None]],
        old: asyncio.Task[None],
    ) -> None:
        if not self.stopping and self._tasks.get(name) is old:
            self._supervise(name, factory)

    def _on_role(self, active: bool) -> None:
        """The lease changed hands: a new active publishes everything at once."""
        if active:
            self._resuming = set(self.symbols)
            self._supervise("ha-takeover", self._take_over)
        else:  # the epoch ended: nothing queued under it may go out later
            for redis in self._redis_sinks():
                redis.discard_ended_epoch()

    def _redis_sinks(self) -> list[RedisSink]:
        return [sink.sink for sink in self.publisher.sinks if isinstance(sink, RedisOutput)]

    async def _take_over(self) -> None:
        """Publish every book and market data now; resume trades after the last one published.

        The last trade the previous active published is the highest trade id
        among the newest entries of the symbol's trade stream (``trades:{SYMBOL}``);
        held trades after it go out in order, so no trade is lost or published
        twice across the failover.
        """
        # The lease's own client: long-lived, it knows every node of a cluster by now.
        assert self.lease is not None
        client = self.lease.client
        try:
            for symbol, state in list(self.symbols.items()):
                last_id = 0
                if self._held_trades.get(symbol):
                    last_id = await _last_streamed_trade(client, symbol)
                # Nothing to go by (an empty or unreadable stream): what this instance
                # sent to Redis is not sent again, the rest of the held ones all go out.
                last_id = last_id or state.published_trade_id
                # No await from here on: every held trade after last_id goes out in order,
                # then this symbol's trades are published as they come.
                for trade in self._held_trades.pop(symbol, ()):
                    if trade.a <= last_id:
                        continue
                    # encoded now, with this instance's epoch; to Redis only when this
                    # instance's own outputs had it already (as a standby, or while its
                    # lease had lapsed)
                    self._publish_trade(state, trade, local=trade.a > state.local_trade_id)
                self._resuming.discard(symbol)
                self.publisher.mark(state)
        finally:
            self._resuming.clear()
            self._tasks.pop("ha-takeover", None)
            if self.lease.active and self._held_trades:  # it failed midway: never lose them
                log.warning(
                    "ha takeover ended early: publishing the held trades of %d symbols "
                    "without checking the stream (some may be repeated)",
                    len(self._held_trades),
                )
                for symbol, held in list(self._held_trades.items()):
                    del self._held_trades[symbol]
                    if (owner := self.symbols.get(symbol)) is not None:
                        for trade in held:
                            if trade.a > owner.published_trade_id:  # not its own again
                                local = trade.a > owner.local_trade_id
                                self._publish_trade(owner, trade, local=local)

    def _start_backfill(self, state: SymbolState) -> None:
        """Fill the 24h window from klines; market_data waits for it (STATS_WAIT_S at most)."""
        state.stats_ready = False
        self.backfill.request(state, "start")
        asyncio.get_running_loop().call_later(STATS_WAIT_S, self._stats_overdue, state)

    def _stats_overdue(self, state: SymbolState) -> None:
        if not state.stats_ready:
            log.warning(
                "%s: 24h backfill still pending after %.0fs: publishing market data marked "
                "window_complete: false",
                state.symbol,
                STATS_WAIT_S,
            )
            state.stats_ready = True
            self._stats_changed(state)

    def _stats_changed(self, state: SymbolState) -> None:
        state.stats_revision += 1
        self.publisher.mark(state, book=False)

    def _retire_books(self) -> None:
        """Nobody maintains the books after a stop: publish them as not live."""
        for state in self.symbols.values():
            self.final_books[state.symbol] = (state.state, state.last_update_id)
            state.book.retire()
            self.publisher.mark(state)

    async def _beat(self) -> None:
        """``market_data:heartbeat`` every HEARTBEAT_S: consumers tell a dead publisher
        from a quiet market by it (its key expires 3 s after the last beat)."""
        lease = self.lease
        while True:
            payload = json.dumps(
                {
                    "timestamp": int(self.wall_clock() * 1000),
                    "group": self.config.ha_group,
                    "epoch": lease.epoch if lease is not None else 0,
                    "symbols": len(self.symbols),
                    # With --workers N, N beats share the channel: each names its own
                    # symbols, so a reader tells one dead worker from the others.
                    "served": sorted(self.symbols),
                },
                separators=(",", ":"),
            ).encode()
            self.publisher.publish(HeartbeatUpdate(payload))  # to Redis from the active only
            self._release_overdue_trades()
            await asyncio.sleep(HEARTBEAT_S)

    def _release_overdue_trades(self) -> None:
        """A/B lines: trades that waited for the other line too long by the local clock."""
        if not self._several_lines:
            return
        now_ms = int(self.wall_clock() * 1000)
        for state in self.symbols.values():
            lines = state.trade_lines
            if lines is not None and lines.held:
                for trade in lines.overdue(now_ms):
                    self._on_trade(state, trade)

    async def _refresh_market_data(self) -> None:
        """Republish market data of quiet symbols, so their 300 s keys never expire."""
        while True:
            await asyncio.sleep(MARKET_DATA_REFRESH_MS / 1000 / 3)
            for state in self.symbols.values():
                self.publisher.mark(state, book=False)

    def _plans(self, symbols: Sequence[str] | None = None) -> list[StreamPlan]:
        cfg = self.config
        return with_lines(self._connection_plans(symbols), cfg.feed_lines)

    def _connection_plans(self, symbols: Sequence[str] | None) -> list[StreamPlan]:
        cfg = self.config
        return plan_connections(
            cfg.exchange_ws_url,
            list(self.symbols) if symbols is None else symbols,
            depth=cfg.depth_stream,
            partial_levels=cfg.partial_depth_levels if self.partial_mode else None,
            split_routes=cfg.use_split_routes,
            per_connection=cfg.streams_per_connection,
        )

    def _start_feeds(self, plans: list[StreamPlan]) -> None:
        assert self._session is not None
        cfg = self.config
        for plan in plans:
            connection = FeedConnection(
                plan,
                self,
                self._session,
                reconnect_delay_s=cfg.reconnect_delay_s,
                max_reconnect_delay_s=cfg.max_reconnect_delay_s,
                silence_timeout_s=cfg.silence_timeout_s,
                # Lines of one connection rotate apart (5% of the age each), never together:
                # while one is replaced the other carries the books.
                max_age_s=cfg.connection_max_age_s * (1 - 0.05 * plan.line),
                clock=self.clock,
            )
            self.connections.append(connection)
            self._supervise(plan.name, connection.run)

    async def _stop_tasks(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(
            *tasks, self.snapshots.stop(), self.backfill.stop(), return_exceptions=True
        )
        self._tasks.clear()

    # ------------------------------------------------------------ feed callbacks

    def on_frame(self, raw: str | bytes, line: int = 0) -> None:
        """Decode one frame (from ``line``) and feed the core; never raises for bad input."""
        started = time.perf_counter_ns()
        counters = self.counters
        counters.frames += 1
        if self._record_frame is not None:
            self._record_frame(raw, line)
        try:
            frame = decode_frame(raw)
        except UnsupportedStreamError:
            counters.unsupported += 1
            return
        except DecodeError as exc:
            self._on_malformed(exc, raw)
            return
        state = self.symbols.get(frame[1].s)
        if state is None:
            counters.unknown_symbol += 1
            return
        if frame[0] is StreamKind.DIFF_DEPTH:
            counters.by_type["depth"] += 1
            if self._several_lines:
                self._line_delay(line, frame[1].E)
            book = state.book
            if book.on_diff(frame[1], line) and not state.dirty:
                self.publisher.mark(state)
            if book.has_outputs:
                self._handle_outputs(state)
        elif frame[0] is StreamKind.AGG_TRADE:
            counters.by_type["trade"] += 1
            if state.trade_watch.on_trade(frame[1].l):
                log.warning("%s: trades arrive again", state.symbol, extra={"symbol": state.symbol})
            if state.trade_lines is None:
                self._on_trade(state, frame[1])
            else:
                for trade in state.trade_lines.on_trade(frame[1], line):
                    self._on_trade(state, trade)
        elif frame[0] is StreamKind.PARTIAL_DEPTH:
            counters.by_type["partial_depth"] += 1
            if state.book.on_partial(frame[1]) and not state.dirty:
                self.publisher.mark(state)
        elif frame[0] is StreamKind.TICKER:
            counters.by_type["ticker"] += 1
            ticker = frame[1]
            # An older one, arriving late, is not taken: the figures shown stay the newest.
            if state.ticker is None or ticker.E >= state.ticker.E:
                state.ticker = ticker
                if not state.stats.complete_now:
                    self._stats_changed(state)  # its figures are the ones published
                if state.trade_watch.on_ticker(ticker.L, self.clock()):
                    self._on_trades_silent(state, ticker.L)
        else:
            counters.by_type["book_ticker"] += 1
        counters.latency.observe((time.perf_counter_ns() - started) / 1000.0)

    def _on_trades_silent(self, state: SymbolState, last_trade_id: int) -> None:
        self.counters.trade_silences[state.symbol] += 1
        watch = state.trade_watch
        log.error(
            "%s: no trade received for %.0fs while the exchange's ticker counts them (its "
            "last trade id %d, ours %d): the trade stream is silent; last price and trades "
            "are not current",
            state.symbol,
            watch.after_s,
            last_trade_id,
            watch.received,
            extra={"symbol": state.symbol, "event": "trades_silent"},
        )

    def _line_delay(self, line: int, event_time_ms: int) -> None:
        delays = self.counters.line_delay_ms
        delay = self.wall_clock() * 1000.0 - event_time_ms
        last = delays[line]
        delays[line] = delay if last != last else last + LINE_DELAY_WEIGHT * (delay - last)

    def on_connected(self, plan: StreamPlan) -> None:
        """A line is up: it may carry the chain again (one line: the first event syncs)."""
        if self.history is not None:
            self._record_connection("connected", plan, "")
        if self.config.feed_lines == 1:
            return
        for symbol in plan.symbols:
            state = self.symbols.get(symbol)
            if state is None:
                continue
            if plan.carries_depth:
                state.book.on_line_up(plan.line)
            if plan.carries_trades and state.trade_lines is not None:
                state.trade_lines.line_up(plan.line)

    def on_disconnected(self, plan: StreamPlan, reason: str) -> None:
        """A disconnect is a gap for its books, unless another line still carries them."""
        if self.stopping:
            return
        if self.history is not None:
            self._record_connection("disconnected", plan, reason)
        if plan.carries_trades and self.config.feed_lines > 1:
            for symbol in plan.symbols:  # trades waiting for this line go on
                state = self.symbols.get(symbol)
                if state is not None and state.trade_lines is not None:
                    for trade in state.trade_lines.line_down(plan.line):
                        self._on_trade(state, trade)
        if not plan.carries_depth:
            return
        if self._several_lines:  # its lag resumes from its next event, not from before
            self.counters.line_delay_ms[plan.line] = math.nan
        line = plan.line if self.config.feed_lines > 1 else None
        for symbol in plan.symbols:
            state = self.symbols.get(symbol)
            if state is None:
                continue
            before = state.state
            state.book.on_disconnect(line)
            if state.state is not before or state.book.has_outputs:
                self.publisher.mark(state)
                self._handle_outputs(state)

    def _record_connection(self, event: str, plan: StreamPlan, reason: str) -> None:
        assert self.history is not None
        self.history.connection(
            event,
            plan.name,
            plan.line,
            plan.symbols,
            depth=plan.carries_depth,
            trades=plan.carries_trades,
            reason=reason,
        )

    # -------------------------------------------------------------------- core

    def _on_trade(self, state: SymbolState, trade: AggTrade) -> None:
        ids = state.trade_ids
        missing, filled = ids.missing, ids.filled
        taken = ids.on_trade(trade, int(self.wall_clock() * 1000))
        for one in taken:
            self._take_trade(state, one, late=ids.filled > filled)
        if ids.missing > missing:  # trades the stream skipped: the klines have them
            self.backfill.request(state, "trade gap")

    def _take_trade(self, state: SymbolState, trade: AggTrade, late: bool = False) -> None:
        state.stats.on_trade(trade.p, trade.q, trade.T, trade.l - trade.f + 1, late)
        state.trades += 1
        history = self.history
        if history is not None and history.rows:  # in every role: history is not publishing
            history.trade(state.symbol, trade)
        lease = self.lease
        if lease is None:
            self._publish_trade(state, trade)
        else:
            held = self._held_trades.get(state.symbol)
            if held is None:
                held = self._held_trades[state.symbol] = deque(maxlen=HELD_TRADES)
            held.append(trade)
            # A standby (or a symbol being taken over): its own outputs now, Redis at the
            # take-over, from where the previous active stopped.
            to_redis = lease.active and state.symbol not in self._resuming
            self._publish_trade(state, trade, redis=to_redis)
        if not state.market_dirty:
            self.publisher.mark(state, book=False)

    def _publish_trade(
        self, state: SymbolState, trade: AggTrade, *, redis: bool = True, local: bool = True
    ) -> None:
        """To Redis (if the lease allows) and to this instance's own outputs, or to one."""
        payload = trade_payload(
            state.symbol,
            trade_id=trade.a,
            price=trade.p,
            quantity=trade.q,
            timestamp_ms=trade.T,
            is_buyer_maker=trade.m,
            epoch=self.lease.epoch if self.lease is not None else None,
        )
        update = TradeUpdate(
            state.symbol, trade.a, trade.p, trade.q, trade.T, trade.m, self.clock_ns(), payload
        )
        if self.publisher.publish(update, fenced=redis, local=local):
            state.published_trade_id = max(state.published_trade_id, trade.a)
        if local:
            state.local_trade_id = max(state.local_trade_id, trade.a)

    def _handle_outputs(self, state: SymbolState) -> None:
        for output in state.book.drain():
            if isinstance(output, SnapshotNeeded):
                if not self.stopping:
                    self.snapshots.request(state, output.reason)
            elif isinstance(output, BookReset):
                self.counters.resets[output.reason] += 1
                level = logging.INFO if output.reason == "reconnect" else logging.WARNING
                log.log(
                    level,
                    "%s: book reset (%s), resyncing",
                    state.symbol,
                    output.reason,
                    extra={"symbol": state.symbol, "reason": output.reason},
                )
                self.publisher.mark(state)
            elif isinstance(output, BookAudit):
                self._on_audit(state, output)
            elif isinstance(output, BookLive):
                log.info(
                    "%s: book live from snapshot %d (first event U=%d u=%d)",
                    state.symbol,
                    output.snapshot_id,
                    output.first_U,
                    output.first_u,
                    extra={"symbol": state.symbol, "snapshot_id": output.snapshot_id},
                )
                self.publisher.mark(state)

    def _on_audit(self, state: SymbolState, audit: BookAudit) -> None:
        """A re-base compared the live book with a fresh one: say what differed."""
        self.counters.audits += 1
        if audit.top_of_book:
            level, what = logging.ERROR, "the top of the book was wrong: resyncing"
        elif audit.top_differences:
            level, what = logging.WARNING, "levels within the published depth differed"
        elif audit.window_differences:
            level, what = logging.INFO, "stale levels beyond the published depth were dropped"
        else:
            level, what = logging.DEBUG, "no difference"
        log.log(
            level,
            "%s: audit at u=%d (snapshot %d): %d differing levels in the top %d, %d in the "
            "book; %s",
            state.symbol,
            audit.update_id,
            audit.snapshot_id,
            audit.top_differences,
            self.config.order_book_depth,
            audit.window_differences,
            what,
            extra={
                "symbol": state.symbol,
                "top_differences": audit.top_differences,
                "window_differences": audit.window_differences,
            },
        )
        self.publisher.mark(state)

    async def _refresh_books(self) -> None:
        """Re-base every live book on a fresh snapshot once per ``book_refresh_interval_s``.

        Staggered: one symbol at a time, evenly over the interval. Below the
        sync snapshots in priority: a refresh is asked for only while less than
        half of the REST weight budget is used.
        """
        cfg = self.config
        weights = self.weights
        while True:
            symbols = list(self.symbols.values())
            pause = cfg.book_refresh_interval_s / max(1, len(symbols))
            for state in symbols:
                await asyncio.sleep(pause)
                if self.partial_mode or state.symbol not in self.symbols:
                    continue
                if weights.half_used(self.wall_clock()):
                    continue
                self.refresh_book(state)

    def refresh_book(self, state: SymbolState) -> bool:
        """Ask for a re-base of one live book now; False when it is not live or busy."""
        if not state.sync.request_refresh():
            return False
        self._handle_outputs(state)
        return True

    def _on_malformed(self, exc: DecodeError, raw: str | bytes) -> None:
        """Count and skip; log at most every 10 s, with how many were skipped."""
        self.counters.malformed += 1
        self._malformed_since_log += 1
        now = self.clock()
        if now - self._malformed_logged_at >= 10.0:
            log.warning(
                "skipped %d malformed frame(s); latest: %s; frame starts %r",
                self._malformed_since_log,
                exc,
                raw[:120],
                extra={"malformed_total": self.counters.malformed},
            )
            self._malformed_logged_at = now
            self._malformed_since_log = 0

    # --------------------------------------------------------------- partial mode

    def _enter_partial_mode(self, reason: str) -> None:
        """REST is geo-blocked: serve partial-depth books instead of diff books."""
        if self.partial_mode:
            return
        self.partial_mode = True
        self.snapshots.enabled = False
        levels = self.config.partial_depth_levels
        log.warning(
            "REST snapshots unavailable (%s): switching to partial depth (top %d), "
            "published with state 'partial'",
            reason,
            levels,
            extra={"reason": reason},
        )
        for state in self.symbols.values():
            state.book.use_partial(levels)
            self.publisher.mark(state)
        self._switch_feeds_soon()
        self._supervise("rest-probe", self._probe_rest_until_it_answers)

    async def _probe_rest_until_it_answers(self) -> None:
        """While on partial depth, ask REST again every ``geo_block_retry_s``."""
        while self.partial_mode:
            await asyncio.sleep(self.config.geo_block_retry_s)
            if await self.probe_rest():
                break
        self._tasks.pop("rest-probe", None)

    async def probe_rest(self) -> bool:
        """One small snapshot request; when it answers, go back to diff books. True if it did."""
        if not self.partial_mode or not self.symbols:
            return not self.partial_mode
        assert self._session is not None
        symbol = next(iter(self.symbols))
        weight = snapshot_weight(PROBE_LIMIT)
        if self.weights.try_acquire(weight, self.wall_clock()) > 0:
            return False
        try:
            await fetch_snapshot(
                self._session,
                self.config.exchange_rest_url,
                symbol,
                PROBE_LIMIT,
                budget=self.weights,
                clock=self.wall_clock,
            )
        except RestError as exc:
            log.info("REST still unavailable (%s): staying on partial depth", exc)
            return False
        self._leave_partial_mode()
        return True

    def _leave_partial_mode(self) -> None:
        log.warning(
            "REST snapshots answer again: back to diff-depth books (resync, then live)",
            extra={"symbols": len(self.symbols)},
        )
        self.partial_mode = False
        self.snapshots.enabled = True
        for state in self.symbols.values():
            state.book.use_diff()
            self.publisher.mark(state)
        self._switch_feeds_soon()

    async def _switch_depth_feeds(self) -> None:
        """Replace the depth connections with ones of the current mode, old ones awaited.

        One switch runs at a time: if the mode changed again meanwhile, it switches again.
        """
        while True:
            partial = self.partial_mode
            old = [c for c in self.connections if c.plan.carries_depth]
            tasks = [self._tasks.pop(c.plan.name) for c in old if c.plan.name in self._tasks]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.connections = [c for c in self.connections if not c.plan.carries_depth]
            self._start_feeds([p for p in self._plans() if p.carries_depth])
            if self.partial_mode == partial:
                break
        self._tasks.pop("partial-switch", None)

    def _switch_feeds_soon(self) -> None:
        if "partial-switch" not in self._tasks:
            self._supervise("partial-switch", self._switch_depth_feeds)

    # ---------------------------------------------------------------- status

    def book_age_s(self, state: SymbolState) -> float | None:
        """Seconds since the book last changed (None before it ever did)."""
        if not state.updated_at:
            return None
        return self.clock() - state.updated_at


async def _last_streamed_trade(client: Client, symbol: str) -> int:
    """The highest trade id among the newest entries of ``trades:{symbol}`` (0: none).

    The highest of the last 100, not just the last one: a late trade filling a gap
    is appended after newer ones.
    """
    try:
        entries = await client.xrevrange(f"trades:{symbol}", count=100)
    except (RedisError, RedisClusterException, OSError):
        return 0
    highest = 0
    for _, fields in entries or ():
        try:
            highest = max(highest, int(json.loads((fields or {})[b"trade"])["trade_id"]))
        except (KeyError, ValueError, TypeError):
            continue
    return highest


def _tls_context(ca_file: str) -> ssl.SSLContext:
    """Verify the exchange's certificates against the system's CAs (plus ``ca_file``)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context
