"""The service: exchange feeds -> decoder -> sync core -> outputs.

One :class:`MarketDataService` owns a book per symbol. The feed loops call
:meth:`~MarketDataService.on_frame` for every message; the handler decodes it,
feeds the symbol's state machine and marks the symbol for publication.
Publication is conflated at the source: changed symbols are published once per
pass of the event loop (``call_soon``), so under load a symbol's book is
encoded once per batch of frames rather than once per frame, and never lags.
``market_data`` (best bid/ask, last price, 24h figures) is published when its
best prices or trades changed, and refreshed every 30 s regardless.

Snapshot requests (:class:`SnapshotNeeded`) run as tasks beside the readers,
never blocking them, within the REST weight budget, with retries. If REST
answers 451, the service switches the depth connections to partial-depth
streams and publishes those books with state ``partial``.
"""

import asyncio
import logging
import ssl
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import aiohttp

from market_data.binance.decode import (
    DecodeError,
    StreamKind,
    UnsupportedStreamError,
    decode_frame,
    decode_snapshot,
)
from market_data.binance.rest import (
    GeoBlockedError,
    RateLimitedError,
    SnapshotError,
    fetch_snapshot,
)
from market_data.binance.schemas import AggTrade, DepthUpdate
from market_data.binance.streams import StreamPlan, plan_connections
from market_data.config import Config
from market_data.core.backoff import backoff
from market_data.core.book import Level
from market_data.core.latency import LatencyHistogram
from market_data.core.partial import PartialDepthBook
from market_data.core.payloads import market_data_payload, orderbook_payload, trade_payload
from market_data.core.state import BookState
from market_data.core.stats import Rolling24h
from market_data.core.sync import BookLive, BookReset, DepthSync, SnapshotNeeded
from market_data.core.weights import WeightBudget, snapshot_weight
from market_data.io.feed import FeedConnection
from market_data.io.sinks import BookUpdate, MarketDataUpdate, Sink, TradeUpdate

log = logging.getLogger(__name__)

#: ``market_data:{SYMBOL}`` is republished at least this often even when nothing
#: changed, so its 300 s key never expires on a quiet symbol and 24h figures age.
MARKET_DATA_REFRESH_MS = 30_000


@dataclass
class SymbolState:
    """Everything the service keeps for one symbol."""

    symbol: str
    sync: DepthSync
    stats: Rolling24h = field(default_factory=Rolling24h)
    partial: PartialDepthBook | None = None
    updated_at: float = 0.0  # local monotonic time the changed book was last published
    trades: int = 0
    last_trade_id: int = 0  # aggregate trade ids are consecutive per symbol
    trade_gaps: int = 0  # trades missed (e.g. while a connection was down)
    duplicate_trades: int = 0  # re-delivered trades, dropped
    dirty: bool = False  # the book changed since it was last published
    market_dirty: bool = False  # a trade arrived since market data was last published
    # What the last market_data publication showed (best bid, best ask, trades seen)
    # and when: it is published again only when that changes, or to refresh the key.
    market_signature: tuple[float | None, float | None, int] = (None, None, -1)
    market_published_ms: int = 0

    @property
    def book_updates(self) -> int:
        """Exchange updates applied to a correct book (diffs, or partial-depth messages)."""
        return self.sync.applied + (self.partial.applied if self.partial is not None else 0)

    @property
    def event_time_ms(self) -> int:
        """Exchange time (``E``) of the last event applied to the book; 0 before any."""
        last = self.partial.last_applied if self.partial is not None else self.sync.last_applied
        return last.E if isinstance(last, DepthUpdate) else 0

    @property
    def state(self) -> BookState:
        if self.partial is not None:
            return self.partial.state
        return self.sync.state

    def top(self, depth: int) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
        book = self.partial.book if self.partial is not None else self.sync.book
        return book.top(depth)

    @property
    def last_update_id(self) -> int:
        book = self.partial.book if self.partial is not None else self.sync.book
        return book.last_update_id


@dataclass
class ServiceCounters:
    """Plain counters, read by the metrics collector at scrape time."""

    frames: int = 0
    by_type: Counter[str] = field(default_factory=Counter)
    malformed: int = 0
    unsupported: int = 0
    unknown_symbol: int = 0
    book_publishes: int = 0
    resets: Counter[str] = field(default_factory=Counter)
    snapshot_failures: Counter[str] = field(default_factory=Counter)
    sink_errors: Counter[str] = field(default_factory=Counter)
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)


class MarketDataService:
    """Books for the configured symbols, fed by the exchange, published to sinks."""

    def __init__(
        self,
        config: Config,
        sinks: Sequence[Sink],
        *,
        wall_clock: Callable[[], float] = time.time,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.sinks = list(sinks)
        self.wall_clock = wall_clock
        self.clock = clock
        self.symbols: dict[str, SymbolState] = {
            s: SymbolState(
                s,
                DepthSync(
                    s, max_buffer=config.sync_buffer_max, max_levels=config.max_levels_per_side
                ),
            )
            for s in config.symbols
        }
        self.counters = ServiceCounters()
        self.weights = WeightBudget(
            config.rest_weight_budget_per_minute, share=config.rest_weight_share
        )
        self.partial_mode = False
        #: State and last update id of every book when the service stopped.
        self.final_books: dict[str, tuple[BookState, int]] = {}
        self.connections: list[FeedConnection] = []
        self.started = False
        self.stopping = False
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._fetching: dict[str, asyncio.Task[None]] = {}
        self._session: aiohttp.ClientSession | None = None
        self._flush_scheduled = False
        self._pending: dict[str, SymbolState] = {}  # symbols marked since the last flush
        self._loop: asyncio.AbstractEventLoop | None = None
        self._malformed_logged_at = -1e9
        self._malformed_since_log = 0

    # ------------------------------------------------------------------ lifecycle

    async def run(self, shutdown: asyncio.Event) -> None:
        """Run until ``shutdown`` is set; then stop feeds and publish final states."""
        self._loop = asyncio.get_running_loop()
        connector = aiohttp.TCPConnector(ssl=_tls_context(self.config.exchange_ca_file))
        async with aiohttp.ClientSession(connector=connector) as session:
            self._session = session
            for state in self.symbols.values():
                self._mark(state)
            self._start_feeds(self._plans())
            self._tasks["market-data-refresh"] = asyncio.create_task(
                self._refresh_market_data(), name="market-data-refresh"
            )
            self.started = True
            try:
                await shutdown.wait()
            finally:
                self.stopping = True
                await self._stop_tasks()
                self._retire_books()
                self._flush()

    def _retire_books(self) -> None:
        """Nobody maintains the books after a stop: publish them as not live."""
        for state in self.symbols.values():
            self.final_books[state.symbol] = (state.state, state.last_update_id)
            if state.partial is not None:
                state.partial.on_disconnect()
            state.sync.on_disconnect()
            state.sync.drain()
            self._mark(state)

    async def _refresh_market_data(self) -> None:
        """Republish market data of quiet symbols, so their 300 s keys never expire."""
        while True:
            await asyncio.sleep(MARKET_DATA_REFRESH_MS / 1000 / 3)
            for state in self.symbols.values():
                self._mark(state, book=False)

    def _plans(self) -> list[StreamPlan]:
        cfg = self.config
        return plan_connections(
            cfg.exchange_ws_url,
            cfg.symbols,
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
                max_age_s=cfg.connection_max_age_s,
                clock=self.clock,
            )
            self.connections.append(connection)
            self._tasks[plan.name] = asyncio.create_task(connection.run(), name=f"feed-{plan.name}")

    async def _stop_tasks(self) -> None:
        tasks = [*self._tasks.values(), *self._fetching.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._fetching.clear()

    # ------------------------------------------------------------ feed callbacks

    def on_frame(self, raw: str | bytes) -> None:
        """Decode one frame and feed the core; never raises for bad input."""
        started = time.perf_counter_ns()
        counters = self.counters
        counters.frames += 1
        try:
            kind, data = decode_frame(raw)
        except UnsupportedStreamError:
            counters.unsupported += 1
            return
        except DecodeError as exc:
            self._on_malformed(exc, raw)
            return
        state = self.symbols.get(data.s)
        if state is None:
            counters.unknown_symbol += 1
            return
        if kind is StreamKind.DIFF_DEPTH:
            counters.by_type["depth"] += 1
            if state.partial is None:
                sync = state.sync
                if sync.on_depth(data):  # type: ignore[arg-type]
                    self._book_changed(state)
                if sync.has_outputs:
                    self._handle_outputs(state)
        elif kind is StreamKind.AGG_TRADE:
            counters.by_type["trade"] += 1
            self._on_trade(state, data)  # type: ignore[arg-type]
        elif kind is StreamKind.PARTIAL_DEPTH:
            counters.by_type["partial_depth"] += 1
            if state.partial is not None and state.partial.on_partial(data):  # type: ignore[arg-type]
                self._book_changed(state)
        else:
            counters.by_type["book_ticker"] += 1
        counters.latency.observe((time.perf_counter_ns() - started) / 1000.0)

    def on_connected(self, plan: StreamPlan) -> None:
        """Nothing to do: the first depth event will ask for a snapshot."""

    def on_disconnected(self, plan: StreamPlan, reason: str) -> None:
        """Every disconnect is a gap for the books that connection carried."""
        if not plan.carries_depth or self.stopping:
            return
        for symbol in plan.symbols:
            state = self.symbols.get(symbol)
            if state is None:
                continue
            if state.partial is not None:
                state.partial.on_disconnect()
                self._mark(state)
            else:
                state.sync.on_disconnect()
                self._handle_outputs(state)

    # -------------------------------------------------------------------- core

    def _book_changed(self, state: SymbolState) -> None:
        if not state.dirty:
            self._mark(state)

    def _on_trade(self, state: SymbolState, trade: AggTrade) -> None:
        last = state.last_trade_id
        if last:
            if trade.a <= last:  # re-delivered (e.g. after a reconnect): already published
                state.duplicate_trades += 1
                return
            if trade.a != last + 1:
                state.trade_gaps += trade.a - last - 1
        state.last_trade_id = trade.a
        state.stats.on_trade(trade.p, trade.q, trade.T)
        state.trades += 1
        update = TradeUpdate(
            state.symbol,
            trade.a,
            trade.p,
            trade.q,
            trade.T,
            trade.m,
            time.monotonic_ns(),
            trade_payload(
                state.symbol,
                trade_id=trade.a,
                price=trade.p,
                quantity=trade.q,
                timestamp_ms=trade.T,
                is_buyer_maker=trade.m,
            ),
        )
        self._publish(update)
        if not state.market_dirty:
            self._mark(state, book=False)

    def _handle_outputs(self, state: SymbolState) -> None:
        for output in state.sync.drain():
            if isinstance(output, SnapshotNeeded):
                self._request_snapshot(state, output.reason)
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
                self._mark(state)
            elif isinstance(output, BookLive):
                log.info(
                    "%s: book live from snapshot %d (first event U=%d u=%d)",
                    state.symbol,
                    output.snapshot_id,
                    output.first_U,
                    output.first_u,
                    extra={"symbol": state.symbol, "snapshot_id": output.snapshot_id},
                )
                self._mark(state)

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

    # ------------------------------------------------------------- publication

    def _mark(self, state: SymbolState, book: bool = True) -> None:
        """Schedule a publication: of the book (and market data), or market data only."""
        if book:
            state.dirty = True
        else:
            state.market_dirty = True
        self._pending[state.symbol] = state  # the flush visits only changed symbols
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        """Publish every changed symbol once: the latest book and market data."""
        self._flush_scheduled = False
        now_ms = int(self.wall_clock() * 1000)
        local_ns = time.monotonic_ns()
        depth = self.config.order_book_depth
        pending = self._pending
        self._pending = {}
        for state in pending.values():
            if state.dirty:
                state.dirty = False
                bids, asks = self._publish_book(state, depth, now_ms, local_ns)
            elif state.market_dirty:
                bids, asks = state.top(1) if state.state.trusted else ([], [])
            else:
                continue
            state.market_dirty = False
            self._publish_market_data(state, bids, asks, now_ms)

    def _publish_book(
        self, state: SymbolState, depth: int, now_ms: int, local_ns: int
    ) -> tuple[list[Level], list[Level]]:
        """Publish the top of the book; a book that is not live goes out without levels."""
        book_state = state.state
        trusted = book_state.trusted
        bids, asks = state.top(depth) if trusted else ([], [])
        last_id = state.last_update_id if trusted else 0
        if trusted:
            state.updated_at = self.clock()  # freshness, once per publication not per event
        event_time_ms = state.event_time_ms
        payload = orderbook_payload(
            state.symbol,
            bids,
            asks,
            last_update_id=last_id,
            event_time_ms=event_time_ms,
            now_ms=now_ms,
            state=book_state,
        )
        self._publish(
            BookUpdate(
                state.symbol,
                book_state,
                last_id,
                event_time_ms,
                local_ns,
                bids,
                asks,
                payload,
            )
        )
        self.counters.book_publishes += 1
        return bids, asks

    def _publish_market_data(
        self, state: SymbolState, bids: list[Level], asks: list[Level], now_ms: int
    ) -> None:
        """Publish market data when best prices or trades changed, or to refresh the key."""
        best_bid = bids[0][0] if bids else None
        best_ask = asks[0][0] if asks else None
        signature = (best_bid, best_ask, state.trades)
        if (
            signature == state.market_signature
            and now_ms - state.market_published_ms < MARKET_DATA_REFRESH_MS
        ):
            return
        state.market_signature = signature
        state.market_published_ms = now_ms
        payload = market_data_payload(
            state.symbol,
            best_bid=best_bid,
            best_ask=best_ask,
            stats=state.stats.snapshot(now_ms),
            now_ms=now_ms,
        )
        self._publish(MarketDataUpdate(state.symbol, payload))

    def _publish(self, update: BookUpdate | TradeUpdate | MarketDataUpdate) -> None:
        """Hand an update to every output; one failing output never stops the others."""
        for sink in self.sinks:
            try:
                sink.publish(update)
            except Exception as exc:  # an output bug or a full ring: count, log rarely
                name = type(sink).__name__
                errors = self.counters.sink_errors
                errors[name] += 1
                if errors[name] in (1, 10, 100, 1000) or errors[name] % 10_000 == 0:
                    log.error(
                        "%s failed to publish (%d so far): %s",
                        name,
                        errors[name],
                        exc,
                        extra={"sink": name, "errors": errors[name]},
                    )

    # --------------------------------------------------------------- snapshots

    def _request_snapshot(self, state: SymbolState, reason: str) -> None:
        if state.symbol in self._fetching or self.stopping or self._session is None:
            return
        log.debug("%s: snapshot needed (%s)", state.symbol, reason)
        self._fetching[state.symbol] = asyncio.create_task(
            self._fetch_until_done(state), name=f"snapshot-{state.symbol}"
        )

    async def _fetch_until_done(self, state: SymbolState) -> None:
        """Fetch until the book no longer needs a snapshot, backing off on failure."""
        cfg = self.config
        weight = snapshot_weight(cfg.snapshot_limit)
        delays = backoff(cfg.reconnect_delay_s, cfg.max_reconnect_delay_s)
        session = self._session
        assert session is not None
        try:
            while state.sync.snapshot_pending and not self.partial_mode:
                wait = self.weights.try_acquire(weight, self.wall_clock())
                if wait > 0:
                    log.warning(
                        "REST weight budget used up: waiting %.1fs", wait, extra={"wait_s": wait}
                    )
                    await asyncio.sleep(wait)
                    continue
                try:
                    body, used = await fetch_snapshot(
                        session, cfg.exchange_rest_url, state.symbol, cfg.snapshot_limit
                    )
                    if used is not None:
                        self.weights.observe_server_count(used, self.wall_clock())
                    snapshot = decode_snapshot(body)
                except GeoBlockedError as exc:
                    self.counters.snapshot_failures["geo_blocked"] += 1
                    self._enter_partial_mode(str(exc))
                    return
                except (SnapshotError, DecodeError) as exc:
                    kind = "rate_limited" if isinstance(exc, RateLimitedError) else "error"
                    self.counters.snapshot_failures[kind] += 1
                    delay = next(delays)
                    if isinstance(exc, RateLimitedError):
                        delay = max(delay, exc.retry_after_s)
                    log.warning(
                        "%s: %s; retrying in %.2fs",
                        state.symbol,
                        exc,
                        delay,
                        extra={"symbol": state.symbol, "retry_s": round(delay, 3)},
                    )
                    state.sync.on_snapshot_failed(str(exc))
                    self._handle_outputs(state)
                    await asyncio.sleep(delay)
                    continue
                state.sync.on_snapshot(snapshot)
                self._handle_outputs(state)
                if state.sync.snapshot_pending:
                    await asyncio.sleep(next(delays))
        except Exception:  # a bug must not leave the book waiting forever
            log.exception("%s: snapshot task failed; asking again", state.symbol)
            self.counters.snapshot_failures["internal"] += 1
            await asyncio.sleep(next(delays))  # still in _fetching: shutdown cancels it here
            self._fetching.pop(state.symbol, None)
            state.sync.on_snapshot_failed("internal error")
            self._handle_outputs(state)
        finally:
            if self._fetching.get(state.symbol) is asyncio.current_task():
                self._fetching.pop(state.symbol, None)

    def _enter_partial_mode(self, reason: str) -> None:
        """REST is geo-blocked: serve partial-depth books instead of diff books."""
        if self.partial_mode:
            return
        self.partial_mode = True
        levels = self.config.partial_depth_levels
        log.warning(
            "REST snapshots unavailable (%s): switching to partial depth (top %d), "
            "published with state 'partial'",
            reason,
            levels,
            extra={"reason": reason},
        )
        for state in self.symbols.values():
            state.partial = PartialDepthBook(state.symbol, levels)
            state.sync.on_disconnect()
            state.sync.drain()
            self._mark(state)
        depth_names = [
            plan.name for plan in (c.plan for c in self.connections) if plan.carries_depth
        ]
        for name in depth_names:
            self._tasks.pop(name).cancel()
        self.connections = [c for c in self.connections if c.plan.name not in depth_names]
        self._start_feeds([p for p in self._plans() if p.carries_depth and p.name in depth_names])

    # ---------------------------------------------------------------- status

    def book_age_s(self, state: SymbolState) -> float | None:
        """Seconds since the book last changed (None before it ever did)."""
        if not state.updated_at:
            return None
        return self.clock() - state.updated_at


def _tls_context(ca_file: str) -> ssl.SSLContext:
    """Verify the exchange's certificates against the system's CAs (plus ``ca_file``)."""
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(ca_file)
    return context
